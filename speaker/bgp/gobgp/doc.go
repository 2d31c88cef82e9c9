// Package gobgp implements the speaker's bgp.Router with an embedded gobgp
// (github.com/osrg/gobgp/v3): the only package of ironlb that imports it.
//
// A Router opens BGP-4 sessions (RFC 4271) that carry IPv4 and IPv6
// unicast routes over multiprotocol BGP (RFC 4760), with TCP MD5
// signatures (RFC 2385), graceful restart (RFC 4724), standard communities
// (RFC 1997), large communities (RFC 8092) and, on iBGP sessions,
// LOCAL_PREF. It never listens: gobgp starts with ListenPort -1, so it
// needs no privilege to bind port 179, several speakers can share a
// network namespace, and every session is opened by the speaker.
//
// # One gobgp server per peer
//
// Routes differ per peer: each BGPAdvertisement picks its peers, and the
// communities and LOCAL_PREF of one prefix can differ from peer to peer.
// gobgp keeps one global RIB per server and advertises its best paths to
// every neighbor, so per-peer routes in one server would need an export
// policy per neighbor with a prefix set per combination of attributes,
// rewritten whenever a Service changes. Each BGPPeer also carries its own
// local AS number and router ID, and gobgp has one router ID per server.
//
// So a Router runs one gobgp server per peer, with that one neighbor, and
// puts into that server's RIB exactly the routes the peer should receive,
// with exactly their attributes. There is no policy to keep in step, a
// peer's router ID and AS number are honoured as given, and resetting one
// session cannot disturb another. The cost is one RIB per peer: memory
// grows with routes times peers, which for a speaker's host routes stays
// small. Every server keeps out of its RIB all routes the routers send (a
// global import policy that accepts only locally originated routes), so
// nothing a router says can displace the speaker's own routes; gobgp still
// keeps them in its Adj-RIB-In, so routers should be configured to send
// the speakers nothing, or little.
//
// gobgp's Serve loop never returns, so a server whose peer is deleted is
// emptied, stopped and kept for the next peer instead of being leaked.
//
// gobgp v3.37.0 keeps two route-selection settings in package variables
// that StartBgp writes and every server reads (osrg/gobgp#3659 moves them
// into each server, after that release). Every server here writes the same
// defaults, so the race is harmless, but the race detector sees it when a
// session starts while another server selects paths; the tests order
// their servers to avoid it.
//
// # Next hops
//
// Routes carry an unspecified next hop (0.0.0.0 or ::) when their family
// is the session's: gobgp then sets the session's local address, for eBGP
// and for iBGP alike (next-hop-self for locally originated routes). A
// route of the other family carries the node's own address of that family
// (Options.IPv4, Options.IPv6) as its next hop, in NEXT_HOP or in
// MP_REACH_NLRI; without one, Advertise fails with ErrNoNextHop rather
// than send a next hop the router cannot use.
package gobgp
