// Package layer2 announces a node's load-balancer addresses on its local
// networks: it makes the node's interfaces answer ARP (IPv4) and Neighbor
// Discovery (IPv6) for the addresses the node owns, and tells the segment
// at once when the node takes an address over.
//
// What the node announces is decided elsewhere (eligibility, then the
// election) and given to an Announcer as a Desired state: for each owned
// address, the interfaces to answer on. Plan, a pure function, compares it
// with what is being answered and returns the changes; the Announcer
// applies them to one Responder per interface and address family, which a
// Factory opens: Listener opens the real ones of packages arp and ndp.
//
// On every address it starts answering on an interface, the Announcer sends
// a gratuitous ARP or an unsolicited Neighbor Advertisement at once, from
// Apply itself, and repeats it on its Schedule, so that hosts that missed
// the first one still move to this node. Addresses it stops answering are
// removed from their Responder before Apply returns.
package layer2
