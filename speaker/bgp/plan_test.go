package bgp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/config"
)

// testPeer returns an eBGP peer named name.
func testPeer(name string) Peer {
	return Peer{
		Name: name, MyASN: 64512, ASN: 64513, Address: netip.MustParseAddr("198.51.100.1"), Port: 179,
		HoldTime: 90 * time.Second, KeepaliveTime: 30 * time.Second, ConnectTime: 10 * time.Second,
	}
}

// state returns a State of the peers, each with routes to the prefixes
// listed for it in routes.
func state(peers []Peer, routes map[string][]Route) State {
	s := State{Peers: map[string]Peer{}, Routes: map[string]map[netip.Prefix]Route{}}
	for _, p := range peers {
		s.Peers[p.Name] = p
		s.Routes[p.Name] = map[netip.Prefix]Route{}
		for _, r := range routes[p.Name] {
			s.Routes[p.Name][r.Prefix] = r
		}
	}
	return s
}

func route(p string, communities ...string) Route {
	r := Route{Prefix: prefix(p)}
	for _, c := range communities {
		r.Communities = append(r.Communities, community(c))
	}
	return r
}

func TestPlanCalculate(t *testing.T) {
	a, b, c := testPeer("a"), testPeer("b"), testPeer("c")
	aNewPassword := with(a, func(p *Peer) { p.Password = config.Password("s3cret") })
	bNewHold := with(b, func(p *Peer) { p.HoldTime = 30 * time.Second; p.KeepaliveTime = 10 * time.Second })
	r1, r2, r3 := route("203.0.113.1/32"), route("203.0.113.2/32"), route("2001:db8:100::1/128")

	tests := []struct {
		name             string
		current, desired State
		want             Changes
	}{{
		name: "nothing to nothing",
	}, {
		name:    "from nothing",
		desired: state([]Peer{b, a}, map[string][]Route{"a": {r3, r1}, "b": {r2}}),
		want: Changes{
			AddPeers: []Peer{a, b},
			Add:      []PeerRoute{{"a", r1}, {"a", r3}, {"b", r2}},
		},
	}, {
		name:    "to nothing: peers deleted, their routes not withdrawn one by one",
		current: state([]Peer{a, b}, map[string][]Route{"a": {r1, r3}, "b": {r2}}),
		want:    Changes{DeletePeers: []string{"a", "b"}},
	}, {
		name:    "unchanged",
		current: state([]Peer{a, b}, map[string][]Route{"a": {r1, r3}, "b": {r2}}),
		desired: state([]Peer{a, b}, map[string][]Route{"a": {r1, r3}, "b": {r2}}),
	}, {
		name:    "a password change resets only that peer, which keeps its routes",
		current: state([]Peer{a, b}, map[string][]Route{"a": {r1}, "b": {r2}}),
		desired: state([]Peer{aNewPassword, b}, map[string][]Route{"a": {r1}, "b": {r2}}),
		want:    Changes{ResetPeers: []Peer{aNewPassword}},
	}, {
		name:    "a timer change resets only that peer",
		current: state([]Peer{a, b, c}, nil),
		desired: state([]Peer{a, bNewHold, c}, nil),
		want:    Changes{ResetPeers: []Peer{bNewHold}},
	}, {
		name:    "a new service adds only its routes",
		current: state([]Peer{a, b}, map[string][]Route{"a": {r1}, "b": {r1}}),
		desired: state([]Peer{a, b}, map[string][]Route{"a": {r1, r2}, "b": {r1, r2}}),
		want:    Changes{Add: []PeerRoute{{"a", r2}, {"b", r2}}},
	}, {
		name:    "a service gone withdraws only its routes",
		current: state([]Peer{a, b}, map[string][]Route{"a": {r1, r2, r3}, "b": {r1, r2}}),
		desired: state([]Peer{a, b}, map[string][]Route{"a": {r1, r3}, "b": {r1}}),
		want:    Changes{Withdraw: []PeerRoute{{"a", r2}, {"b", r2}}},
	}, {
		name:    "new attributes update the route",
		current: state([]Peer{a}, map[string][]Route{"a": {r1, r2}}),
		desired: state([]Peer{a}, map[string][]Route{"a": {route("203.0.113.1/32", "1:1"), with(r2, func(r *Route) { r.LocalPref = 200 })}}),
		want: Changes{Update: []PeerRoute{
			{"a", route("203.0.113.1/32", "1:1")},
			{"a", with(r2, func(r *Route) { r.LocalPref = 200 })},
		}},
	}, {
		name:    "a new aggregation adds the aggregate and withdraws the host routes",
		current: state([]Peer{a}, map[string][]Route{"a": {r1, r2}}),
		desired: state([]Peer{a}, map[string][]Route{"a": {route("203.0.113.0/24")}}),
		want: Changes{
			Add:      []PeerRoute{{"a", route("203.0.113.0/24")}},
			Withdraw: []PeerRoute{{"a", r1}, {"a", r2}},
		},
	}, {
		name:    "peers come and go, one stays",
		current: state([]Peer{a, b}, map[string][]Route{"a": {r1}, "b": {r1}}),
		desired: state([]Peer{b, c}, map[string][]Route{"b": {r1}, "c": {r1}}),
		want: Changes{
			AddPeers:    []Peer{c},
			DeletePeers: []string{"a"},
			Add:         []PeerRoute{{"c", r1}},
		},
	}, {
		name:    "routes of a peer that is not desired are ignored",
		desired: State{Peers: map[string]Peer{"a": a}, Routes: map[string]map[netip.Prefix]Route{"ghost": {r1.Prefix: r1}}},
		want:    Changes{AddPeers: []Peer{a}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Plan{Current: tt.current, Desired: tt.desired}.Calculate()
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("Calculate() (-want +got):\n%s", diff)
			}
			if got.Empty() != tt.want.Empty() {
				t.Errorf("Empty() = %t, want %t", got.Empty(), tt.want.Empty())
			}
			// From the desired State there is nothing left to do.
			if again := (Plan{Current: tt.desired, Desired: tt.desired}).Calculate(); !again.Empty() {
				t.Errorf("Plan{desired, desired}.Calculate() = %+v, want no changes", again)
			}
		})
	}
}

func TestStateClone(t *testing.T) {
	s := state([]Peer{testPeer("a")}, map[string][]Route{"a": {route("203.0.113.1/32", "1:1")}})
	c := s.Clone()
	c.Routes["a"][prefix("203.0.113.1/32")].Communities[0] = community("9:9")
	c.Routes["a"][prefix("203.0.113.2/32")] = route("203.0.113.2/32")
	c.Peers["b"] = testPeer("b")
	if diff := cmp.Diff(state([]Peer{testPeer("a")}, map[string][]Route{"a": {route("203.0.113.1/32", "1:1")}}), s, cmpOpts); diff != "" {
		t.Errorf("changing a clone changed the original (-want +got):\n%s", diff)
	}
	if z := (State{}).Clone(); z.Peers == nil || z.Routes == nil {
		t.Errorf("State{}.Clone() = %+v, want empty maps ready to fill", z)
	}
}

func TestRouteString(t *testing.T) {
	tests := []struct {
		r    Route
		want string
	}{
		{route("203.0.113.7/32"), "203.0.113.7/32"},
		{route("203.0.113.0/24", "65535:65282", "large:64512:1:2"), "203.0.113.0/24 communities=[65535:65282 large:64512:1:2]"},
		{Route{Prefix: prefix("2001:db8:100::/64"), LocalPref: 200}, "2001:db8:100::/64 localPref=200"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestPeerPrintsNoPassword(t *testing.T) {
	p := with(testPeer("a"), func(p *Peer) { p.Password = "hunter2" })
	for _, s := range []string{fmtAll(p), fmtAll(&p), fmtAll(Changes{ResetPeers: []Peer{p}})} {
		if containsString(s, "hunter2") {
			t.Errorf("printed peer reveals the password: %s", s)
		}
	}
}
