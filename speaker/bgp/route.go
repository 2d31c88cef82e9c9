package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ironlb/ironlb/config"
)

// Peer is one BGP session as a speaker opens it: the settings of a
// config.BGPPeer. Two Peers are equal with == exactly when the session
// needs no reset to go from one to the other.
type Peer struct {
	// Name is the BGPPeer's name; it identifies the session.
	Name string
	// MyASN is the speaker's AS number.
	MyASN uint32
	// ASN is the router's AS number.
	ASN uint32
	// Address is the router's address.
	Address netip.Addr
	// SourceAddress is the local address the session starts from; the
	// zero Addr lets the kernel choose.
	SourceAddress netip.Addr
	// Port is the router's BGP port.
	Port uint16
	// HoldTime is the proposed hold time; 0 means no keepalives.
	HoldTime time.Duration
	// KeepaliveTime is the keepalive interval.
	KeepaliveTime time.Duration
	// ConnectTime is the time between attempts to connect.
	ConnectTime time.Duration
	// RouterID is the BGP identifier to announce; the zero Addr leaves the
	// choice to the Router (the node's IPv4 address).
	RouterID netip.Addr
	// Password is the TCP MD5 password (RFC 2385); empty means none. It
	// prints as "<redacted>".
	Password config.Password
	// EBGPMultiHop lets an eBGP session reach a router more than one hop
	// away.
	EBGPMultiHop bool
	// GracefulRestart announces the graceful restart capability (RFC 4724),
	// so that the router keeps the speaker's routes while it restarts.
	GracefulRestart bool
}

// PeerFromConfig returns the session settings of a BGPPeer.
func PeerFromConfig(p *config.BGPPeer) Peer {
	return Peer{
		Name:            p.Name,
		MyASN:           p.MyASN,
		ASN:             p.ASN,
		Address:         p.Address,
		SourceAddress:   p.SourceAddress,
		Port:            p.Port,
		HoldTime:        p.HoldTime,
		KeepaliveTime:   p.KeepaliveTime,
		ConnectTime:     p.ConnectTime,
		RouterID:        p.RouterID,
		Password:        p.Password,
		EBGPMultiHop:    p.EBGPMultiHop,
		GracefulRestart: p.GracefulRestart,
	}
}

// IBGP reports whether the session is internal: both ends in one AS.
func (p Peer) IBGP() bool {
	return p.MyASN == p.ASN
}

// Route is one route a speaker advertises to one peer. Its next hop is
// left to the Router: the session's local address, or the node's address
// of the route's family when the session is of the other family.
type Route struct {
	// Prefix is the destination: a Service IP as a /32 or /128, or the
	// prefix that aggregates it. It is always masked.
	Prefix netip.Prefix
	// Communities are the route's standard and large communities, sorted
	// by config.Community.Compare and without duplicates.
	Communities []config.Community
	// LocalPref is the route's LOCAL_PREF, set only on iBGP sessions; 0
	// means none is given and the Router uses its default (100).
	LocalPref uint32
}

// Equal reports whether r and o are the same route with the same
// attributes.
func (r Route) Equal(o Route) bool {
	return r.Prefix == o.Prefix && r.LocalPref == o.LocalPref && slices.Equal(r.Communities, o.Communities)
}

// String returns the route as "203.0.113.0/24 communities=[65535:65282]
// localPref=200", leaving out the attributes it does not have.
func (r Route) String() string {
	var b strings.Builder
	b.WriteString(r.Prefix.String())
	if len(r.Communities) > 0 {
		parts := make([]string, len(r.Communities))
		for i, c := range r.Communities {
			parts[i] = c.String()
		}
		fmt.Fprintf(&b, " communities=[%s]", strings.Join(parts, " "))
	}
	if r.LocalPref != 0 {
		fmt.Fprintf(&b, " localPref=%d", r.LocalPref)
	}
	return b.String()
}

// clone returns a copy of r that shares no memory with it.
func (r Route) clone() Route {
	r.Communities = slices.Clone(r.Communities)
	return r
}

// PeerRoute is a route and the peer it is advertised to.
type PeerRoute struct {
	// Peer is the name of the peer.
	Peer string
	// Route is the route.
	Route Route
}

// String returns the route and its peer, as `peer "rtr1": 203.0.113.7/32`.
func (pr PeerRoute) String() string {
	return fmt.Sprintf("peer %q: %s", pr.Peer, pr.Route)
}

// comparePeerRoutes orders routes by peer name, then by prefix.
func comparePeerRoutes(a, b PeerRoute) int {
	if c := strings.Compare(a.Peer, b.Peer); c != 0 {
		return c
	}
	return a.Route.Prefix.Compare(b.Route.Prefix)
}
