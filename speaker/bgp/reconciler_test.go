package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config"
)

// calls parses "Op peer [prefix]" lines into Calls.
func calls(lines ...string) []Call {
	out := make([]Call, 0, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		c := Call{Peer: f[1]}
		for op := OpAddPeer; op <= OpWithdraw; op++ {
			if op.String() == f[0] {
				c.Op = op
			}
		}
		if c.Op == 0 {
			panic("unknown op in " + l)
		}
		if len(f) == 3 {
			c.Prefix = prefix(f[2])
		}
		out = append(out, c)
	}
	return out
}

// checkCalls checks that got makes the calls of want, which lists them in
// an order a Reconcile may make them: the session calls first, in want's
// order, then the route calls, each session's concurrently with the
// others' and among themselves but its advertisements before its
// withdrawals.
func checkCalls(t *testing.T, what string, want, got []Call) {
	t.Helper()
	byString := cmpopts.SortSlices(func(a, b Call) bool { return a.String() < b.String() })
	if diff := cmp.Diff(want, got, cmpOpts, byString); diff != "" {
		t.Errorf("%s: calls (-want +got):\n%s", what, diff)
		return
	}
	isRoute := func(c Call) bool { return c.Op == OpAdvertise || c.Op == OpWithdraw }
	firstRoute := slices.IndexFunc(got, isRoute)
	if firstRoute < 0 {
		firstRoute = len(got)
	}
	if diff := cmp.Diff(slices.DeleteFunc(slices.Clone(want), isRoute), got[:firstRoute], cmpOpts); diff != "" {
		t.Errorf("%s: session calls before the first route call (-want +got):\n%s\nall calls: %v", what, diff, got)
	}
	withdrew := map[string]bool{}
	for _, c := range got[firstRoute:] {
		switch {
		case c.Op == OpWithdraw:
			withdrew[c.Peer] = true
		case c.Op == OpAdvertise && withdrew[c.Peer]:
			t.Errorf("%s: %v after a withdrawal from the same peer: %v", what, c, got)
		case !isRoute(c):
			t.Errorf("%s: %v after the first route call: %v", what, c, got)
		}
	}
}

// TestReconcileSteps replays a speaker's life, one change at a time, and
// checks that each step makes exactly the calls it needs, that the router
// then holds the desired State, and that a second reconcile makes none.
func TestReconcileSteps(t *testing.T) {
	web := Service{Key: "default/web", IPs: addrs("203.0.113.7", "2001:db8:100::7"), Pool: "bgp"}
	api := Service{Key: "default/api", IPs: addrs("203.0.113.9"), Pool: "bgp"}

	resources := withAdvs(bgpAdv("all", "bgp"))
	resources.Pools[0] = ipPool("bgp", "203.0.113.0/24", "2001:db8:100::/64")
	services := []Service{web}

	steps := []struct {
		name   string
		change func()
		want   []Call
	}{{
		name: "start: both sessions, one service",
		want: calls(
			"AddPeer bird", "AddPeer frr",
			"Advertise bird 203.0.113.7/32", "Advertise bird 2001:db8:100::7/128",
			"Advertise frr 203.0.113.7/32", "Advertise frr 2001:db8:100::7/128",
		),
	}, {
		name:   "a service added: only its routes",
		change: func() { services = []Service{web, api} },
		want:   calls("Advertise bird 203.0.113.9/32", "Advertise frr 203.0.113.9/32"),
	}, {
		name:   "a service removed: only its routes withdrawn",
		change: func() { services = []Service{api} },
		want: calls(
			"Withdraw bird 203.0.113.7/32", "Withdraw bird 2001:db8:100::7/128",
			"Withdraw frr 203.0.113.7/32", "Withdraw frr 2001:db8:100::7/128",
		),
	}, {
		name: "frr gets a password: only frr reset",
		change: func() {
			resources.Secrets = []corev1.Secret{secret("frr-password", "s3cret")}
			resources.BGPPeers[0].Spec.PasswordSecret = corev1.SecretReference{Name: "frr-password"}
		},
		want: calls("UpdatePeer frr"),
	}, {
		name:   "frr's password changes: only frr reset",
		change: func() { resources.Secrets = []corev1.Secret{secret("frr-password", "0ther")} },
		want:   calls("UpdatePeer frr"),
	}, {
		name:   "bird's hold time changes: only bird reset",
		change: func() { resources.BGPPeers[1].Spec.HoldTime = &metav1.Duration{Duration: 30 * time.Second} },
		want:   calls("UpdatePeer bird"),
	}, {
		name: "communities and localPref change: routes updated in place",
		change: func() {
			resources.BGPAdvertisements[0].Spec.Communities = []string{"65535:65282"}
			resources.BGPAdvertisements[0].Spec.LocalPref = 150
		},
		want: calls("Advertise bird 203.0.113.9/32", "Advertise frr 203.0.113.9/32"),
	}, {
		name:   "aggregation to /24: the aggregate first, then the host route goes",
		change: func() { resources.BGPAdvertisements[0].Spec.AggregationLength = ptrTo[int32](24) },
		want: calls(
			"Advertise bird 203.0.113.0/24", "Advertise frr 203.0.113.0/24",
			"Withdraw bird 203.0.113.9/32", "Withdraw frr 203.0.113.9/32",
		),
	}, {
		name:   "a second service in the same /24: nothing to do",
		change: func() { services = []Service{api, {Key: "default/other", IPs: addrs("203.0.113.200"), Pool: "bgp"}} },
	}, {
		name:   "the advertisement now goes to bird only",
		change: func() { resources.BGPAdvertisements[0].Spec.Peers = []string{"bird"} },
		want:   calls("Withdraw frr 203.0.113.0/24"),
	}, {
		name:   "frr moves: its session is reset",
		change: func() { resources.BGPPeers[0].Spec.Address = "198.51.100.3" },
		want:   calls("UpdatePeer frr"),
	}, {
		name:   "bird leaves this node",
		change: func() { resources.BGPPeers[1].Spec.NodeSelectors = selector("rack", "r2") },
		want:   calls("DeletePeer bird"),
	}, {
		name: "bird is back with its routes",
		change: func() {
			resources.BGPPeers[1].Spec.NodeSelectors = nil
		},
		want: calls("AddPeer bird", "Advertise bird 203.0.113.0/24"),
	}, {
		name:   "every service gone",
		change: func() { services = nil },
		want:   calls("Withdraw bird 203.0.113.0/24"),
	}, {
		name: "every peer gone",
		change: func() {
			resources.BGPPeers = nil
			resources.BGPAdvertisements[0].Spec.Peers = nil
		},
		want: calls("DeletePeer bird", "DeletePeer frr"),
	}}

	router := &FakeRouter{}
	r := NewReconciler(router)
	ctx := context.Background()
	for _, step := range steps {
		if step.change != nil {
			step.change()
		}
		desired := Compute(build(t, resources), node, services).State
		router.ResetCalls()
		if _, err := r.Reconcile(ctx, desired); err != nil {
			t.Fatalf("%s: Reconcile: %v", step.name, err)
		}
		checkCalls(t, step.name, step.want, router.Calls())
		checkHolds(t, router, desired)

		router.ResetCalls()
		changes, err := r.Reconcile(ctx, desired)
		if err != nil {
			t.Fatalf("%s: second Reconcile: %v", step.name, err)
		}
		if got := router.Calls(); len(got) > 0 || !changes.Empty() {
			t.Errorf("%s: second Reconcile made calls %v, changes %+v; want none", step.name, got, changes)
		}
	}
	if got := router.Resets("bird"); got != 1 {
		t.Errorf("bird was reset %d times, want 1", got)
	}
}

func TestReconcileRetriesWhatFailed(t *testing.T) {
	a, b := testPeer("a"), testPeer("b")
	r1, r2 := route("203.0.113.1/32"), route("203.0.113.2/32")
	desired := state([]Peer{a, b}, map[string][]Route{"a": {r1, r2}, "b": {r1}})
	errBoom := errors.New("boom")

	router := &FakeRouter{Fail: func(c Call) error {
		if c == (Call{Op: OpAdvertise, Peer: "a", Prefix: r2.Prefix}) || c == (Call{Op: OpAddPeer, Peer: "b"}) {
			return errBoom
		}
		return nil
	}}
	r := NewReconciler(router)
	_, err := r.Reconcile(context.Background(), desired)
	if !errors.Is(err, errBoom) {
		t.Fatalf("Reconcile error = %v, want %v", err, errBoom)
	}
	for _, want := range []string{`add peer "b"`, `advertise 203.0.113.2/32 to peer "a"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Reconcile error %q does not say %q", err, want)
		}
	}
	// b's routes were not tried: b has no session.
	checkCalls(t, "Reconcile", calls("AddPeer a", "AddPeer b", "Advertise a 203.0.113.1/32", "Advertise a 203.0.113.2/32"), router.Calls())
	if diff := cmp.Diff(routesOf(state([]Peer{a}, map[string][]Route{"a": {r1}})), routesOf(r.Applied()), cmpOpts); diff != "" {
		t.Errorf("Applied() (-want +got):\n%s", diff)
	}

	router.Fail = nil
	router.ResetCalls()
	if _, err := r.Reconcile(context.Background(), desired); err != nil {
		t.Fatalf("second Reconcile: %v", err)
	}
	checkCalls(t, "second Reconcile", calls("AddPeer b", "Advertise a 203.0.113.2/32", "Advertise b 203.0.113.1/32"), router.Calls())
	checkHolds(t, router, desired)
}

func TestReconcileFailedResetIsRetried(t *testing.T) {
	a := testPeer("a")
	r1 := route("203.0.113.1/32")
	router := &FakeRouter{}
	r := NewReconciler(router)
	ctx := context.Background()
	if _, err := r.Reconcile(ctx, state([]Peer{a}, map[string][]Route{"a": {r1}})); err != nil {
		t.Fatal(err)
	}

	aNew := with(a, func(p *Peer) { p.ASN = 64999 })
	r2 := route("203.0.113.2/32")
	desired := state([]Peer{aNew}, map[string][]Route{"a": {r1, r2}})
	router.Fail = func(c Call) error {
		if c.Op == OpUpdatePeer {
			return errors.New("boom")
		}
		return nil
	}
	router.ResetCalls()
	if _, err := r.Reconcile(ctx, desired); err == nil {
		t.Fatal("Reconcile succeeded, want the reset's error")
	}
	checkCalls(t, "Reconcile", calls("UpdatePeer a"), router.Calls())
	router.Fail = nil
	router.ResetCalls()
	if _, err := r.Reconcile(ctx, desired); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, "Reconcile", calls("UpdatePeer a", "Advertise a 203.0.113.2/32"), router.Calls())
	checkHolds(t, router, desired)
}

func TestReconcileManyFailuresMakeAShortError(t *testing.T) {
	a := testPeer("a")
	var routes []Route
	for i := range 1000 {
		routes = append(routes, route(fmt.Sprintf("203.0.%d.%d/32", i/256, i%256)))
	}
	router := &FakeRouter{Fail: func(c Call) error {
		if c.Op == OpAdvertise {
			return errors.New("no")
		}
		return nil
	}}
	_, err := NewReconciler(router).Reconcile(context.Background(), state([]Peer{a}, map[string][]Route{"a": routes}))
	if err == nil {
		t.Fatal("Reconcile succeeded, want errors")
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != maxErrors+1 {
		t.Errorf("error has %d lines, want %d:\n%v", n, maxErrors+1, err)
	}
	if !strings.Contains(err.Error(), "and 990 more errors") {
		t.Errorf("error does not count the rest:\n%v", err)
	}
}

func TestReconcileStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	router := &FakeRouter{Fail: func(c Call) error {
		if c.Op == OpAddPeer {
			cancel()
		}
		return nil
	}}
	desired := state([]Peer{testPeer("a")}, map[string][]Route{"a": {route("203.0.113.1/32")}})
	_, err := NewReconciler(router).Reconcile(ctx, desired)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Reconcile error = %v, want %v", err, context.Canceled)
	}
	checkCalls(t, "Reconcile", calls("AddPeer a"), router.Calls())
}

// FuzzReconcile reconciles a sequence of States drawn from the fuzzer's
// bytes, in the order given, and checks after each that the router holds
// exactly that State and that reconciling it again changes nothing: the
// end result does not depend on the path taken.
func FuzzReconcile(f *testing.F) {
	f.Add([]byte{0x00, 0xff, 0x13, 0x37, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03})
	f.Add([]byte("ironlb reconciles"))
	f.Fuzz(func(t *testing.T, data []byte) {
		router := &FakeRouter{}
		r := NewReconciler(router)
		ctx := context.Background()
		for len(data) > 0 {
			var desired State
			desired, data = stateFromBytes(data)
			if _, err := r.Reconcile(ctx, desired); err != nil {
				t.Fatalf("Reconcile: %v", err)
			}
			checkHolds(t, router, desired)
			if diff := cmp.Diff(routesOf(desired), routesOf(r.Applied()), cmpOpts); diff != "" {
				t.Fatalf("Applied() (-want +got):\n%s", diff)
			}
			router.ResetCalls()
			if _, err := r.Reconcile(ctx, desired); err != nil {
				t.Fatalf("second Reconcile: %v", err)
			}
			if got := router.Calls(); len(got) > 0 {
				t.Fatalf("second Reconcile made calls %v", got)
			}
		}
	})
}

// stateFromBytes draws one State from the front of data, over a small
// universe of three peers in two variants, eight prefixes and four
// communities, and returns it with the bytes it did not use.
func stateFromBytes(data []byte) (State, []byte) {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	prefixes := []netip.Prefix{
		prefix("203.0.113.1/32"), prefix("203.0.113.2/32"), prefix("203.0.113.0/24"), prefix("203.0.113.0/25"),
		prefix("2001:db8:100::1/128"), prefix("2001:db8:100::2/128"), prefix("2001:db8:100::/64"), prefix("198.51.100.130/32"),
	}
	comms := []config.Community{community("1:1"), community("65535:65282"), community("large:1:2:3"), community("large:64512:0:7")}

	s := State{Peers: map[string]Peer{}, Routes: map[string]map[netip.Prefix]Route{}}
	present := next()
	for i, name := range []string{"a", "b", "c"} {
		if present&(1<<i) == 0 {
			continue
		}
		p := testPeer(name)
		if present&(1<<(i+3)) != 0 {
			p.Password = "variant"
		}
		s.Peers[name] = p
		routes := map[netip.Prefix]Route{}
		which := next()
		for j, pfx := range prefixes {
			if which&(1<<j) == 0 {
				continue
			}
			attrs := next()
			r := Route{Prefix: pfx, LocalPref: uint32(attrs>>4) * 50}
			for k, c := range comms {
				if attrs&(1<<k) != 0 {
					r.Communities = append(r.Communities, c)
				}
			}
			routes[pfx] = r
		}
		s.Routes[name] = routes
	}
	return s, data
}
