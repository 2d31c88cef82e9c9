package bgp

import (
	"maps"
	"net/netip"
	"slices"
)

// State is what a speaker advertises: its sessions and the routes on each.
// The zero State has no sessions.
type State struct {
	// Peers are the sessions, by name.
	Peers map[string]Peer
	// Routes are the routes advertised on each session, by peer name and
	// prefix. Routes of a peer missing from Peers are ignored.
	Routes map[string]map[netip.Prefix]Route
}

// Clone returns a copy of s that shares no memory with it.
func (s State) Clone() State {
	out := State{Peers: maps.Clone(s.Peers), Routes: make(map[string]map[netip.Prefix]Route, len(s.Routes))}
	if out.Peers == nil {
		out.Peers = map[string]Peer{}
	}
	for name, routes := range s.Routes {
		c := make(map[netip.Prefix]Route, len(routes))
		for prefix, r := range routes {
			c[prefix] = r.clone()
		}
		out.Routes[name] = c
	}
	return out
}

// PeerNames returns the names of the sessions, sorted.
func (s State) PeerNames() []string {
	return slices.Sorted(maps.Keys(s.Peers))
}

// SortedRoutes returns the routes of the peer named peer, sorted by prefix.
func (s State) SortedRoutes(peer string) []Route {
	routes := s.Routes[peer]
	out := make([]Route, 0, len(routes))
	for _, prefix := range slices.SortedFunc(maps.Keys(routes), netip.Prefix.Compare) {
		out = append(out, routes[prefix])
	}
	return out
}

// Plan is a change from the Current State to the Desired one, in the
// manner of external-dns's plan.
type Plan struct {
	// Current is what is advertised now.
	Current State
	// Desired is what should be advertised.
	Desired State
}

// Changes are what turns one State into another. Every list is sorted: by
// peer name, then by prefix.
type Changes struct {
	// AddPeers are the sessions to open. They start with no routes: their
	// routes are in Add.
	AddPeers []Peer
	// ResetPeers are the sessions whose settings changed, with their new
	// settings: each is re-established, and keeps its routes.
	ResetPeers []Peer
	// DeletePeers are the names of the sessions to close. Closing a
	// session withdraws its routes, which are not listed in Withdraw.
	DeletePeers []string
	// Add are the routes to advertise that are not advertised yet.
	Add []PeerRoute
	// Update are the routes advertised already whose attributes change,
	// with their new attributes.
	Update []PeerRoute
	// Withdraw are the routes to withdraw, as they were advertised, from
	// sessions that stay open.
	Withdraw []PeerRoute
}

// Empty reports whether the changes change nothing.
func (c Changes) Empty() bool {
	return len(c.AddPeers) == 0 && len(c.ResetPeers) == 0 && len(c.DeletePeers) == 0 &&
		len(c.Add) == 0 && len(c.Update) == 0 && len(c.Withdraw) == 0
}

// Calculate returns the changes that turn p.Current into p.Desired, and
// nothing more: a session whose settings are unchanged is not reset, and a
// route whose attributes are unchanged is not advertised again.
func (p Plan) Calculate() Changes {
	var c Changes
	names := slices.Sorted(maps.Keys(p.Current.Peers))
	for _, name := range slices.Sorted(maps.Keys(p.Desired.Peers)) {
		if _, ok := p.Current.Peers[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)

	for _, name := range names {
		cur, inCurrent := p.Current.Peers[name]
		des, inDesired := p.Desired.Peers[name]
		switch {
		case !inDesired:
			c.DeletePeers = append(c.DeletePeers, name)
			continue
		case !inCurrent:
			c.AddPeers = append(c.AddPeers, des)
		case cur != des:
			c.ResetPeers = append(c.ResetPeers, des)
		}

		var curRoutes map[netip.Prefix]Route
		if inCurrent {
			curRoutes = p.Current.Routes[name]
		}
		desRoutes := p.Desired.Routes[name]
		for prefix, r := range desRoutes {
			old, ok := curRoutes[prefix]
			switch {
			case !ok:
				c.Add = append(c.Add, PeerRoute{Peer: name, Route: r.clone()})
			case !old.Equal(r):
				c.Update = append(c.Update, PeerRoute{Peer: name, Route: r.clone()})
			}
		}
		for prefix, r := range curRoutes {
			if _, ok := desRoutes[prefix]; !ok {
				c.Withdraw = append(c.Withdraw, PeerRoute{Peer: name, Route: r.clone()})
			}
		}
	}
	slices.SortFunc(c.Add, comparePeerRoutes)
	slices.SortFunc(c.Update, comparePeerRoutes)
	slices.SortFunc(c.Withdraw, comparePeerRoutes)
	return c
}
