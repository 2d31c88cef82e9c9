// Package ndp answers Neighbor Solicitations (RFC 4861) for a set of IPv6
// addresses on one network interface, and announces those addresses with
// unsolicited Neighbor Advertisements, so that hosts on the segment send
// traffic for them to this interface.
//
// A Responder joins the solicited-node multicast group of every address it
// holds (on sockets of their own, up to 1,000 groups each, as Linux charges
// each membership to a socket's small option memory), and answers a valid solicitation (RFC 4861 section 7.1.1: hop
// limit 255, code 0, a unicast target) for one of them with a Neighbor
// Advertisement carrying the Solicited and Override flags and a Target
// Link-Layer Address option holding the interface's hardware address, sent
// to the soliciting host. A solicitation from the unspecified address
// (duplicate address detection, RFC 4862 section 5.4.3) is answered with
// the Solicited flag clear, to the all-nodes group, as RFC 4861 section
// 7.2.4 says.
//
// An unsolicited Neighbor Advertisement (RFC 4861 section 7.2.6) has the
// Override flag set and goes to the all-nodes group ff02::1, from the
// interface's link-local address: Linux accepts it and replaces the
// hardware address of its existing neighbour entry, although ndisc6
// ignores advertisements from a link-local source.
//
// Messages are parsed and built by github.com/mdlayher/ndp.
//
// A limit to know: the socket is an ICMPv6 socket, so it sees only
// solicitations the kernel delivers locally. Solicitations to a
// solicited-node group the Responder joined are; unicast ones sent straight
// to a load-balancer address that is not configured on the node (a
// neighbour's reachability probe, RFC 4861 section 7.3) are not. A host
// whose probes go unanswered falls back to a multicast solicitation, which
// is answered, after a few seconds.
package ndp
