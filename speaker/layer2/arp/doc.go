// Package arp answers ARP requests (RFC 826) for a set of IPv4 addresses on
// one network interface, and announces those addresses with gratuitous ARP,
// so that hosts on the segment send traffic for them to this interface.
//
// A Responder answers a request whose target address it holds with a reply
// carrying the interface's hardware address, sent to the requester. It
// answers ARP probes too (sender address 0.0.0.0, RFC 5227 section 2.1.1),
// so that a host probing for a load-balancer address learns it is taken.
// It ignores gratuitous ARP, frames it sent itself, frames with a VLAN tag
// and requests addressed to another host's hardware address.
//
// Gratuitous ARP is sent in the request form of RFC 5227 section 3 (sender
// and target protocol address both the announced address, target hardware
// address zero, broadcast): Linux updates an existing neighbour entry from
// it even within its lock time, which the reply form does not do.
//
// Packets are parsed and built by github.com/mdlayher/arp and
// github.com/mdlayher/ethernet. Unlike arp.Client, a Responder does not need
// the interface to carry an IPv4 address of its own.
package arp
