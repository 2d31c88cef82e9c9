package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Router is a BGP speaker that holds sessions and advertises routes on
// them: the small, vendor-neutral interface that the Reconciler applies
// changes through. Package speaker/bgp/gobgp implements it with an
// embedded gobgp; FakeRouter implements it in memory for tests.
//
// Routes are per session: a route advertised to one peer is not
// advertised to another. Each method acts on one session and leaves the
// others untouched.
//
// A Router is safe for concurrent use. The Reconciler calls Advertise and
// Withdraw concurrently, about different prefixes, on one session and on
// several; it never calls AddPeer, UpdatePeer or DeletePeer while a route
// call runs.
type Router interface {
	// AddPeer opens a session. It has no routes yet. Adding a peer whose
	// name the Router holds already is an error.
	AddPeer(ctx context.Context, p Peer) error
	// UpdatePeer gives the session named p.Name new settings and
	// re-establishes it. The session keeps its routes, which the router
	// receives again once the session is back.
	UpdatePeer(ctx context.Context, p Peer) error
	// DeletePeer closes the session named name and forgets its routes; the
	// router withdraws them. Deleting a peer the Router does not hold is
	// not an error.
	DeletePeer(ctx context.Context, name string) error
	// Advertise advertises r on the session named peer, or changes the
	// attributes of the route to r.Prefix advertised there already.
	Advertise(ctx context.Context, peer string, r Route) error
	// Withdraw withdraws the route to prefix from the session named peer.
	// Withdrawing a route that is not advertised is not an error.
	Withdraw(ctx context.Context, peer string, prefix netip.Prefix) error
	// Peers returns the state of every session, sorted by name.
	Peers(ctx context.Context) ([]PeerState, error)
}

// SessionState is the state of a BGP session: a state of the finite state
// machine of RFC 4271 section 8.2.2.
type SessionState uint8

// The states of a session.
const (
	// SessionUnknown is a state the Router could not tell.
	SessionUnknown SessionState = iota
	// SessionIdle refuses connections and waits to start.
	SessionIdle
	// SessionConnect waits for the TCP connection to complete.
	SessionConnect
	// SessionActive tries to acquire the router by connecting, or waits
	// for it to connect.
	SessionActive
	// SessionOpenSent has sent an OPEN and waits for the router's.
	SessionOpenSent
	// SessionOpenConfirm waits for the KEEPALIVE that confirms the OPEN.
	SessionOpenConfirm
	// SessionEstablished exchanges routes.
	SessionEstablished
)

// String returns the state's name as RFC 4271 writes it, such as
// "Established".
func (s SessionState) String() string {
	switch s {
	case SessionIdle:
		return "Idle"
	case SessionConnect:
		return "Connect"
	case SessionActive:
		return "Active"
	case SessionOpenSent:
		return "OpenSent"
	case SessionOpenConfirm:
		return "OpenConfirm"
	case SessionEstablished:
		return "Established"
	case SessionUnknown:
		return "Unknown"
	}
	return fmt.Sprintf("SessionState(%d)", uint8(s))
}

// PeerState is what a Router reports about one session, for the BGPPeer's
// status, metrics and logs.
type PeerState struct {
	// Name is the peer's name.
	Name string
	// Address is the router's address.
	Address netip.Addr
	// Session is the state of the session.
	Session SessionState
	// EstablishedAt is when the session last became Established; it is the
	// zero Time unless Session is SessionEstablished.
	EstablishedAt time.Time
	// Uptime is how long the session has been Established, as of the call;
	// 0 unless Session is SessionEstablished.
	Uptime time.Duration
	// PrefixesSent is the number of routes, of both families, advertised
	// to the router.
	PrefixesSent uint64
	// PrefixesReceived is the number of routes the router advertised to
	// the speaker, which it ignores.
	PrefixesReceived uint64
	// UpdatesSent is the number of UPDATE messages sent on the session.
	UpdatesSent uint64
}
