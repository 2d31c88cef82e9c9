package bgp

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Op is a Router method, as FakeRouter records it.
type Op uint8

// The Router methods that change something.
const (
	OpAddPeer Op = iota + 1
	OpUpdatePeer
	OpDeletePeer
	OpAdvertise
	OpWithdraw
)

// String returns the method's name, such as "AddPeer".
func (o Op) String() string {
	switch o {
	case OpAddPeer:
		return "AddPeer"
	case OpUpdatePeer:
		return "UpdatePeer"
	case OpDeletePeer:
		return "DeletePeer"
	case OpAdvertise:
		return "Advertise"
	case OpWithdraw:
		return "Withdraw"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Call is one call of a Router method that changes something.
type Call struct {
	// Op is the method.
	Op Op
	// Peer is the name of the peer it acts on.
	Peer string
	// Prefix is the route's prefix, for OpAdvertise and OpWithdraw.
	Prefix netip.Prefix
}

// String returns the call as "Advertise rtr1 203.0.113.7/32".
func (c Call) String() string {
	if c.Prefix.IsValid() {
		return fmt.Sprintf("%s %s %s", c.Op, c.Peer, c.Prefix)
	}
	return fmt.Sprintf("%s %s", c.Op, c.Peer)
}

// FakeRouter is a Router in memory, for tests. It records every call that
// changes something, holds sessions and routes as a real Router would,
// and reports every session Established. It enforces the Router contract:
// adding a peer it holds, or updating, advertising to or withdrawing from
// one it does not hold, is an error.
//
// The zero FakeRouter is ready to use and safe for concurrent use.
type FakeRouter struct {
	// Fail, if set, is asked before each call that changes something; the
	// call fails with the error it returns, changing nothing.
	Fail func(Call) error

	mu     sync.Mutex
	calls  []Call
	peers  map[string]Peer
	routes map[string]map[netip.Prefix]Route
	resets map[string]int
}

var _ Router = (*FakeRouter)(nil)

// call records c and returns the error Fail gives it.
func (f *FakeRouter) call(c Call) error {
	if f.peers == nil {
		f.peers = map[string]Peer{}
		f.routes = map[string]map[netip.Prefix]Route{}
		f.resets = map[string]int{}
	}
	f.calls = append(f.calls, c)
	if f.Fail != nil {
		return f.Fail(c)
	}
	return nil
}

// AddPeer opens a session with no routes.
func (f *FakeRouter) AddPeer(_ context.Context, p Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(Call{Op: OpAddPeer, Peer: p.Name}); err != nil {
		return err
	}
	if _, ok := f.peers[p.Name]; ok {
		return fmt.Errorf("add peer %q: the peer exists already", p.Name)
	}
	f.peers[p.Name] = p
	f.routes[p.Name] = map[netip.Prefix]Route{}
	return nil
}

// UpdatePeer changes a session's settings, keeping its routes, and counts
// a reset.
func (f *FakeRouter) UpdatePeer(_ context.Context, p Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(Call{Op: OpUpdatePeer, Peer: p.Name}); err != nil {
		return err
	}
	if _, ok := f.peers[p.Name]; !ok {
		return fmt.Errorf("update peer %q: no such peer", p.Name)
	}
	f.peers[p.Name] = p
	f.resets[p.Name]++
	return nil
}

// DeletePeer closes a session and forgets its routes.
func (f *FakeRouter) DeletePeer(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(Call{Op: OpDeletePeer, Peer: name}); err != nil {
		return err
	}
	delete(f.peers, name)
	delete(f.routes, name)
	return nil
}

// Advertise adds or replaces a route on a session.
func (f *FakeRouter) Advertise(_ context.Context, peer string, r Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(Call{Op: OpAdvertise, Peer: peer, Prefix: r.Prefix}); err != nil {
		return err
	}
	routes, ok := f.routes[peer]
	if !ok {
		return fmt.Errorf("advertise %s: no peer %q", r.Prefix, peer)
	}
	routes[r.Prefix] = r.clone()
	return nil
}

// Withdraw removes a route from a session.
func (f *FakeRouter) Withdraw(_ context.Context, peer string, prefix netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(Call{Op: OpWithdraw, Peer: peer, Prefix: prefix}); err != nil {
		return err
	}
	routes, ok := f.routes[peer]
	if !ok {
		return fmt.Errorf("withdraw %s: no peer %q", prefix, peer)
	}
	delete(routes, prefix)
	return nil
}

// Peers reports every session Established, with its number of routes as
// PrefixesSent.
func (f *FakeRouter) Peers(context.Context) ([]PeerState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]PeerState, 0, len(f.peers))
	for _, name := range slices.Sorted(maps.Keys(f.peers)) {
		out = append(out, PeerState{
			Name:          name,
			Address:       f.peers[name].Address,
			Session:       SessionEstablished,
			EstablishedAt: time.Unix(0, 0).UTC(),
			PrefixesSent:  uint64(len(f.routes[name])),
		})
	}
	return out, nil
}

// Calls returns the calls recorded so far, in order.
func (f *FakeRouter) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// ResetCalls forgets the calls recorded so far.
func (f *FakeRouter) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// Resets returns how many times the session named peer was reset by
// UpdatePeer.
func (f *FakeRouter) Resets(peer string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.resets[peer]
}

// State returns the sessions and routes the FakeRouter holds.
func (f *FakeRouter) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return State{Peers: f.peers, Routes: f.routes}.Clone()
}
