// gobgp's listeners, which only the receiving routers of these tests use,
// come from net.ListenConfig, which makes Multipath TCP sockets since Go
// 1.24; the kernel refuses TCP MD5 and IP_TTL on those. The speaker never
// listens, and its dialer makes plain TCP sockets.
//
//go:debug multipathtcp=0

package gobgp

// These tests run the Router against real gobgp routers in the same
// process, peering over loopback: each receiving router listens on its own
// loopback address and a free high port, and the Router dials it with
// ListenPort -1 and RemotePort.
//
// gobgp v3.37.0 writes two package variables in StartBgp that every
// server reads when it selects best paths (fixed upstream by
// osrg/gobgp#3659, in no release served here), which the race detector
// reports when one server starts while another computes. So these tests
// do not run in parallel, start every server before routes flow, and
// fence the receivers (one management call each, which orders their later
// work after the starts) after every call that starts a server.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"

	ibgp "github.com/ironlb/ironlb/speaker/bgp"
)

const (
	speakerASN = 64512
	routerASN  = 64513
	// waitTime bounds every wait for a session or a route: gobgp's first
	// dial waits 1 to 2 s, and a retry as long again.
	waitTime = 15 * time.Second
)

var (
	speakerV4 = netip.MustParseAddr("127.0.0.1")
	speakerV6 = netip.MustParseAddr("::1")
	// nodeV4 and nodeV6 are the node's addresses the Router gives as next
	// hops of routes of the other family than the session's.
	nodeV4 = netip.MustParseAddr("198.51.100.11")
	nodeV6 = netip.MustParseAddr("2001:db8:1::11")
)

// neighborOf is a receiving router's view of the speaker.
type neighborOf struct {
	addr     netip.Addr
	asn      uint32
	password string
}

// receiver is a gobgp router that listens for the speaker's sessions and
// keeps what it is sent.
type receiver struct {
	srv  *server.BgpServer
	addr netip.Addr
	port uint16
}

// newReceiver starts a router in AS asn that listens on addr, on a free
// port, for sessions from the neighbors.
func newReceiver(t testing.TB, addr string, asn uint32, routerID string, neighbors ...neighborOf) *receiver {
	t.Helper()
	rc := &receiver{addr: netip.MustParseAddr(addr), port: freePort(t, addr)}
	logs := &syncBuffer{}
	rc.srv = server.NewBgpServer(server.LoggerOption(newLogger(slog.New(slog.NewTextHandler(logs, nil)))))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("receiver %s's log:\n%s", addr, logs)
		}
	})
	go rc.srv.Serve()
	ctx := context.Background()
	err := rc.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: routerID, ListenPort: int32(rc.port), ListenAddresses: []string{addr},
	}})
	if err != nil {
		t.Fatalf("start receiver %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = rc.srv.StopBgp(context.Background(), &api.StopBgpRequest{}) })
	for _, n := range neighbors {
		p := &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: n.addr.String(), PeerAsn: n.asn, AuthPassword: n.password},
			Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3}},
			Transport: &api.Transport{PassiveMode: true},
		}
		for _, afi := range families {
			p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}, Enabled: true}})
		}
		if err := rc.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
			t.Fatalf("receiver %s: add neighbor %s: %v", addr, n.addr, err)
		}
	}
	return rc
}

// freePort returns a TCP port nothing listens on at addr.
func freePort(t testing.TB, addr string) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("find a free port on %s: %v", addr, err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// fence orders the receiver's later work after everything the test did so
// far (see the top of the file).
func (rc *receiver) fence(t testing.TB) {
	t.Helper()
	if _, err := rc.srv.GetBgp(context.Background(), &api.GetBgpRequest{}); err != nil {
		t.Fatalf("receiver %s: %v", rc.addr, err)
	}
}

// seen is a route as a receiver holds it.
type seen struct {
	Route   ibgp.Route
	NextHop netip.Addr
}

// routes returns what the receiver holds from the neighbor at from, by
// prefix.
func (rc *receiver) routes(t testing.TB, from netip.Addr) map[netip.Prefix]seen {
	t.Helper()
	out := map[netip.Prefix]seen{}
	for _, afi := range families {
		req := &api.ListPathRequest{TableType: api.TableType_ADJ_IN, Name: from.String(), Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}}
		err := rc.srv.ListPath(context.Background(), req, func(d *api.Destination) {
			for _, p := range d.GetPaths() {
				r, nh, err := routeOf(p)
				if err != nil {
					t.Errorf("receiver %s: %v", rc.addr, err)
					continue
				}
				out[r.Prefix] = seen{Route: r, NextHop: nh}
			}
		})
		if err != nil {
			t.Fatalf("receiver %s: list routes from %s: %v", rc.addr, from, err)
		}
	}
	return out
}

// neighbor returns the receiver's view of its session with from.
func (rc *receiver) neighbor(t testing.TB, from netip.Addr) *api.Peer {
	t.Helper()
	var out *api.Peer
	err := rc.srv.ListPeer(context.Background(), &api.ListPeerRequest{Address: from.String()}, func(p *api.Peer) { out = p })
	if err != nil || out == nil {
		t.Fatalf("receiver %s: no neighbor %s: %v", rc.addr, from, err)
	}
	return out
}

// established reports whether the receiver's session with from is up.
func (rc *receiver) established(t testing.TB, from netip.Addr) bool {
	t.Helper()
	return rc.neighbor(t, from).GetState().GetSessionState() == api.PeerState_ESTABLISHED
}

// waitRoutes waits until the receiver holds exactly want from from.
func (rc *receiver) waitRoutes(t testing.TB, from netip.Addr, want map[netip.Prefix]seen) {
	t.Helper()
	var diff string
	waitFor(t, fmt.Sprintf("receiver %s to hold the routes", rc.addr), func() bool {
		diff = cmp.Diff(want, rc.routes(t, from), cmpOpts)
		return diff == ""
	}, func() string { return "(-want +got):\n" + diff })
}

// waitFor polls cond until it holds, failing the test after waitTime with
// what explain says.
func waitFor(t testing.TB, what string, cond func() bool, explain func() string) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			if explain != nil {
				msg = explain()
			}
			t.Fatalf("timed out after %s waiting for %s %s", waitTime, what, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the Router's goroutines and gobgp's.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testRouter is a Router under test, the log it writes, everything but
// gobgp's per-message debug lines, and the session states it reported.
type testRouter struct {
	*Router
	logs *syncBuffer

	mu     sync.Mutex
	states map[string][]ibgp.SessionState
}

// newRouter returns a Router with the node's addresses and router ID
// 10.0.0.11, closed when the test ends.
func newRouter(t *testing.T) *testRouter {
	tr := &testRouter{logs: &syncBuffer{}, states: map[string][]ibgp.SessionState{}}
	tr.Router = New(Options{
		RouterID: netip.MustParseAddr("10.0.0.11"),
		IPv4:     nodeV4,
		IPv6:     nodeV6,
		Logger:   slog.New(slog.NewTextHandler(tr.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnSessionState: func(peer string, s ibgp.SessionState) {
			tr.mu.Lock()
			defer tr.mu.Unlock()
			tr.states[peer] = append(tr.states[peer], s)
		},
	})
	t.Cleanup(func() {
		tr.Close()
		if t.Failed() {
			t.Logf("router's log:\n%s", tr.logs)
		}
	})
	return tr
}

// sessionStates returns the states the session named peer went through.
func (tr *testRouter) sessionStates(peer string) []ibgp.SessionState {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]ibgp.SessionState(nil), tr.states[peer]...)
}

// peerState returns the Router's state of the session named name.
func (tr *testRouter) peerState(t *testing.T, name string) ibgp.PeerState {
	t.Helper()
	states, err := tr.Peers(context.Background())
	if err != nil {
		t.Fatalf("Peers: %v", err)
	}
	for _, s := range states {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("Peers() = %+v, has no %q", states, name)
	return ibgp.PeerState{}
}

// peerTo returns a session to the receiver from AS speakerASN, with short
// timers.
func peerTo(name string, rc *receiver, asn uint32) ibgp.Peer {
	source := speakerV4
	if rc.addr.Is6() {
		source = speakerV6
	}
	return ibgp.Peer{
		Name: name, MyASN: speakerASN, ASN: asn, Address: rc.addr, SourceAddress: source, Port: rc.port,
		HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second, ConnectTime: time.Second,
	}
}

func route(p string, communities ...string) ibgp.Route {
	r := ibgp.Route{Prefix: netip.MustParsePrefix(p)}
	for _, c := range communities {
		r.Communities = append(r.Communities, community(c))
	}
	return r
}

func mustDo(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestAdvertiseAndWithdraw(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t, "127.0.0.2", routerASN, "10.255.0.2", neighborOf{addr: speakerV4, asn: speakerASN})
	r := newRouter(t)
	mustDo(t, "AddPeer", r.AddPeer(ctx, peerTo("frr", rc, routerASN)))
	rc.fence(t)

	v4 := route("203.0.113.7/32", "65535:65282", "large:64512:1:2")
	v6 := route("2001:db8:100::7/128", "64512:7")
	mustDo(t, "Advertise", r.Advertise(ctx, "frr", v4))
	mustDo(t, "Advertise", r.Advertise(ctx, "frr", v6))
	// eBGP: the session's address for IPv4, the node's IPv6 address for
	// IPv6 over this IPv4 session.
	rc.waitRoutes(t, speakerV4, map[netip.Prefix]seen{
		v4.Prefix: {Route: v4, NextHop: speakerV4},
		v6.Prefix: {Route: v6, NextHop: nodeV6},
	})

	st := r.peerState(t, "frr")
	if st.Session != ibgp.SessionEstablished || st.Address != rc.addr || st.PrefixesSent != 2 || st.UpdatesSent < 2 || st.EstablishedAt.IsZero() || st.Uptime < 0 {
		t.Errorf("Peers() = %+v, want frr Established with 2 prefixes sent in at least 2 updates", st)
	}
	if got := r.sessionStates("frr"); len(got) == 0 || got[len(got)-1] != ibgp.SessionEstablished {
		t.Errorf("OnSessionState saw %v, want it to end Established", got)
	}
	routes, hops, err := r.Advertised(ctx, "frr")
	mustDo(t, "Advertised", err)
	if diff := cmp.Diff([]ibgp.Route{v4, v6}, routes, cmpOpts); diff != "" {
		t.Errorf("Advertised() routes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]netip.Addr{speakerV4, nodeV6}, hops, cmpOpts); diff != "" {
		t.Errorf("Advertised() next hops (-want +got):\n%s", diff)
	}

	// New attributes replace the route.
	v4b := route("203.0.113.7/32", "1:1")
	mustDo(t, "Advertise", r.Advertise(ctx, "frr", v4b))
	rc.waitRoutes(t, speakerV4, map[netip.Prefix]seen{
		v4.Prefix: {Route: v4b, NextHop: speakerV4},
		v6.Prefix: {Route: v6, NextHop: nodeV6},
	})

	mustDo(t, "Withdraw", r.Withdraw(ctx, "frr", v4.Prefix))
	mustDo(t, "Withdraw of a route not advertised", r.Withdraw(ctx, "frr", netip.MustParsePrefix("203.0.113.99/32")))
	rc.waitRoutes(t, speakerV4, map[netip.Prefix]seen{v6.Prefix: {Route: v6, NextHop: nodeV6}})
	mustDo(t, "Withdraw", r.Withdraw(ctx, "frr", v6.Prefix))
	rc.waitRoutes(t, speakerV4, map[netip.Prefix]seen{})

	if err := r.Advertise(ctx, "nobody", v4); !errors.Is(err, ErrNoPeer) {
		t.Errorf("Advertise to an unknown peer: error %v, want %v", err, ErrNoPeer)
	}
	if err := r.AddPeer(ctx, peerTo("frr", rc, routerASN)); err == nil {
		t.Error("AddPeer of a peer held already succeeded")
	}
}

func TestIBGPLocalPref(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t, "127.0.0.2", speakerASN, "10.255.0.2", neighborOf{addr: speakerV4, asn: speakerASN})
	r := newRouter(t)
	mustDo(t, "AddPeer", r.AddPeer(ctx, peerTo("core", rc, speakerASN)))
	rc.fence(t)

	preferred := route("203.0.113.7/32", "65535:65281")
	preferred.LocalPref = 300
	plain := route("2001:db8:100::/64")
	mustDo(t, "Advertise", r.Advertise(ctx, "core", preferred))
	mustDo(t, "Advertise", r.Advertise(ctx, "core", plain))
	// gobgp gives iBGP routes without LOCAL_PREF its default, 100.
	plainSeen := plain
	plainSeen.LocalPref = 100
	rc.waitRoutes(t, speakerV4, map[netip.Prefix]seen{
		preferred.Prefix: {Route: preferred, NextHop: speakerV4},
		plain.Prefix:     {Route: plainSeen, NextHop: nodeV6},
	})
}

func TestIPv6Session(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t, "::1", routerASN, "10.255.0.6", neighborOf{addr: speakerV6, asn: speakerASN})
	r := newRouter(t)
	mustDo(t, "AddPeer", r.AddPeer(ctx, peerTo("v6", rc, routerASN)))
	rc.fence(t)

	v4, v6 := route("203.0.113.7/32"), route("2001:db8:100::7/128", "large:1:2:3")
	mustDo(t, "Advertise", r.Advertise(ctx, "v6", v4))
	mustDo(t, "Advertise", r.Advertise(ctx, "v6", v6))
	// The node's IPv4 address for IPv4 over this IPv6 session; the
	// session's address for IPv6.
	rc.waitRoutes(t, speakerV6, map[netip.Prefix]seen{
		v4.Prefix: {Route: v4, NextHop: nodeV4},
		v6.Prefix: {Route: v6, NextHop: speakerV6},
	})
}

// TestRoutesPerPeer drives two receivers through the Reconciler: each gets
// its own routes with its own attributes, and a second reconcile changes
// nothing.
func TestRoutesPerPeer(t *testing.T) {
	ctx := context.Background()
	rcA := newReceiver(t, "127.0.0.2", routerASN, "10.255.0.2", neighborOf{addr: speakerV4, asn: speakerASN})
	rcB := newReceiver(t, "127.0.0.3", routerASN, "10.255.0.3", neighborOf{addr: speakerV4, asn: speakerASN})
	r := newRouter(t)
	rec := ibgp.NewReconciler(r)

	a, b := peerTo("a", rcA, routerASN), peerTo("b", rcB, routerASN)
	r1, r2 := route("203.0.113.1/32"), route("2001:db8:100::2/128")
	r3a, r3b := route("203.0.113.0/24", "1:1"), route("203.0.113.0/24", "2:2", "large:64512:0:2")
	desired := ibgp.State{
		Peers: map[string]ibgp.Peer{"a": a, "b": b},
		Routes: map[string]map[netip.Prefix]ibgp.Route{
			"a": {r1.Prefix: r1, r3a.Prefix: r3a},
			"b": {r2.Prefix: r2, r3b.Prefix: r3b},
		},
	}
	if _, err := rec.Reconcile(ctx, desired); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	rcA.fence(t)
	rcB.fence(t)
	if changes, err := rec.Reconcile(ctx, desired); err != nil || !changes.Empty() {
		t.Fatalf("second Reconcile = %+v, %v; want no changes", changes, err)
	}
	rcA.waitRoutes(t, speakerV4, map[netip.Prefix]seen{r1.Prefix: {r1, speakerV4}, r3a.Prefix: {r3a, speakerV4}})
	rcB.waitRoutes(t, speakerV4, map[netip.Prefix]seen{r2.Prefix: {r2, nodeV6}, r3b.Prefix: {r3b, speakerV4}})

	// The aggregate leaves a only.
	delete(desired.Routes["a"], r3a.Prefix)
	changes, err := rec.Reconcile(ctx, desired)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if diff := cmp.Diff(ibgp.Changes{Withdraw: []ibgp.PeerRoute{{Peer: "a", Route: r3a}}}, changes, cmpOpts); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	rcA.waitRoutes(t, speakerV4, map[netip.Prefix]seen{r1.Prefix: {r1, speakerV4}})
	rcB.waitRoutes(t, speakerV4, map[netip.Prefix]seen{r2.Prefix: {r2, nodeV6}, r3b.Prefix: {r3b, speakerV4}})

	// Deleting b closes its session, which withdraws its routes.
	delete(desired.Peers, "b")
	if _, err := rec.Reconcile(ctx, desired); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	waitFor(t, "b's session to close", func() bool { return !rcB.established(t, speakerV4) }, nil)
	rcB.waitRoutes(t, speakerV4, map[netip.Prefix]seen{})
	states, err := r.Peers(ctx)
	mustDo(t, "Peers", err)
	if len(states) != 1 || states[0].Name != "a" || states[0].Session != ibgp.SessionEstablished || states[0].PrefixesSent != 1 {
		t.Errorf("Peers() = %+v, want only a, Established, 1 prefix sent", states)
	}
}

// TestUpdatePeerResetsOnlyThatSession changes one peer's timers: its
// session is re-established with its routes, the other's is untouched.
func TestUpdatePeerResetsOnlyThatSession(t *testing.T) {
	ctx := context.Background()
	rcA := newReceiver(t, "127.0.0.2", routerASN, "10.255.0.2", neighborOf{addr: speakerV4, asn: speakerASN})
	rcB := newReceiver(t, "127.0.0.3", routerASN, "10.255.0.3", neighborOf{addr: speakerV4, asn: speakerASN})
	r := newRouter(t)
	a, b := peerTo("a", rcA, routerASN), peerTo("b", rcB, routerASN)
	mustDo(t, "AddPeer", r.AddPeer(ctx, a))
	mustDo(t, "AddPeer", r.AddPeer(ctx, b))
	rcA.fence(t)
	rcB.fence(t)
	ra, rb := route("203.0.113.1/32"), route("203.0.113.2/32")
	mustDo(t, "Advertise", r.Advertise(ctx, "a", ra))
	mustDo(t, "Advertise", r.Advertise(ctx, "b", rb))
	rcA.waitRoutes(t, speakerV4, map[netip.Prefix]seen{ra.Prefix: {ra, speakerV4}})
	rcB.waitRoutes(t, speakerV4, map[netip.Prefix]seen{rb.Prefix: {rb, speakerV4}})
	bBefore := r.sessionStates("b")
	bOpens := rcB.neighbor(t, speakerV4).GetState().GetMessages().GetReceived().GetOpen()
	aOpens := rcA.neighbor(t, speakerV4).GetState().GetMessages().GetReceived().GetOpen()

	a.HoldTime, a.KeepaliveTime = 12*time.Second, 4*time.Second
	mustDo(t, "UpdatePeer", r.UpdatePeer(ctx, a))
	waitFor(t, "a's session to be re-established", func() bool {
		n := rcA.neighbor(t, speakerV4)
		return n.GetState().GetMessages().GetReceived().GetOpen() > aOpens && n.GetState().GetSessionState() == api.PeerState_ESTABLISHED
	}, nil)
	rcA.waitRoutes(t, speakerV4, map[netip.Prefix]seen{ra.Prefix: {ra, speakerV4}})

	if got := rcB.neighbor(t, speakerV4).GetState().GetMessages().GetReceived().GetOpen(); got != bOpens || !rcB.established(t, speakerV4) {
		t.Errorf("b's session was reset: %d OPENs received, had %d", got, bOpens)
	}
	if diff := cmp.Diff(bBefore, r.sessionStates("b")); diff != "" {
		t.Errorf("b's session changed state (-before +after):\n%s", diff)
	}
	if err := r.UpdatePeer(ctx, peerTo("nobody", rcA, routerASN)); !errors.Is(err, ErrNoPeer) {
		t.Errorf("UpdatePeer of an unknown peer: error %v, want %v", err, ErrNoPeer)
	}
}

// TestUpdatePeerNewRouterID restarts the session's gobgp server, since the
// router ID is the server's. The session has no routes: a receiver
// dropping routes while a server starts is the race described at the top.
func TestUpdatePeerNewRouterID(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t, "127.0.0.2", routerASN, "10.255.0.2", neighborOf{addr: speakerV4, asn: speakerASN})
	r := newRouter(t)
	p := peerTo("frr", rc, routerASN)
	mustDo(t, "AddPeer", r.AddPeer(ctx, p))
	rc.fence(t)
	remoteID := func() string { return rc.neighbor(t, speakerV4).GetState().GetRouterId() }
	waitFor(t, "the session", func() bool { return remoteID() == "10.0.0.11" && rc.established(t, speakerV4) }, nil)

	p.RouterID = netip.MustParseAddr("10.0.0.99")
	mustDo(t, "UpdatePeer", r.UpdatePeer(ctx, p))
	rc.fence(t)
	waitFor(t, "the session with the new router ID", func() bool { return remoteID() == "10.0.0.99" && rc.established(t, speakerV4) },
		func() string { return "router ID " + remoteID() })
}

func TestMD5(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("IRONLB_REQUIRE_E2E") == "1" {
			t.Fatal("TCP MD5 needs root (CAP_NET_ADMIN to set TCP_MD5SIG on a listener); IRONLB_REQUIRE_E2E=1 forbids skipping")
		}
		t.Skip("SKIPPED: TCP MD5 needs root (CAP_NET_ADMIN to set TCP_MD5SIG on a listener); run as root or set IRONLB_REQUIRE_E2E=1 to require it")
	}
	ctx := context.Background()
	const password, wrong = "s3cret-md5", "not-the-password"
	rcGood := newReceiver(t, "127.0.0.2", routerASN, "10.255.0.2", neighborOf{addr: speakerV4, asn: speakerASN, password: password})
	rcBad := newReceiver(t, "127.0.0.3", routerASN, "10.255.0.3", neighborOf{addr: speakerV4, asn: speakerASN, password: password})
	r := newRouter(t)
	good, bad := peerTo("good", rcGood, routerASN), peerTo("bad", rcBad, routerASN)
	good.Password, bad.Password = password, wrong
	mustDo(t, "AddPeer", r.AddPeer(ctx, good))
	mustDo(t, "AddPeer", r.AddPeer(ctx, bad))
	rcGood.fence(t)
	rcBad.fence(t)
	ra := route("203.0.113.1/32")
	mustDo(t, "Advertise", r.Advertise(ctx, "good", ra))
	mustDo(t, "Advertise", r.Advertise(ctx, "bad", ra))

	rcGood.waitRoutes(t, speakerV4, map[netip.Prefix]seen{ra.Prefix: {ra, speakerV4}})
	// By now the wrong password had as long as the right one; give it two
	// more connection attempts.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if rcBad.established(t, speakerV4) || r.peerState(t, "bad").Session == ibgp.SessionEstablished {
			t.Fatal("a session with the wrong MD5 password was established")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := rcBad.routes(t, speakerV4); len(got) != 0 {
		t.Errorf("the receiver with the other password holds %v", got)
	}
	if logs := r.logs.String(); strings.Contains(logs, password) || strings.Contains(logs, wrong) {
		t.Errorf("the router's log reveals a password:\n%s", logs)
	}
}

// TestRunLeavesGracefulSessions stops the Router by its context: sessions
// without graceful restart close at once, those with it stay open for the
// process to exit under them, until Close.
func TestRunLeavesGracefulSessions(t *testing.T) {
	ctx := context.Background()
	rcGR := newReceiver(t, "127.0.0.2", routerASN, "10.255.0.2", neighborOf{addr: speakerV4, asn: speakerASN})
	rcPlain := newReceiver(t, "127.0.0.3", routerASN, "10.255.0.3", neighborOf{addr: speakerV4, asn: speakerASN})
	r := newRouter(t)
	gr, plain := peerTo("gr", rcGR, routerASN), peerTo("plain", rcPlain, routerASN)
	gr.GracefulRestart = true
	mustDo(t, "AddPeer", r.AddPeer(ctx, gr))
	mustDo(t, "AddPeer", r.AddPeer(ctx, plain))
	rcGR.fence(t)
	rcPlain.fence(t)
	waitFor(t, "both sessions", func() bool { return rcGR.established(t, speakerV4) && rcPlain.established(t, speakerV4) }, nil)

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	cancel()
	select {
	case err := <-done:
		mustDo(t, "Run", err)
	case <-time.After(waitTime):
		t.Fatal("Run did not return after its context ended")
	}
	waitFor(t, "the session without graceful restart to close", func() bool { return !rcPlain.established(t, speakerV4) }, nil)
	if !rcGR.established(t, speakerV4) {
		t.Error("the session with graceful restart was closed by Run")
	}
	if err := r.AddPeer(ctx, peerTo("late", rcPlain, routerASN)); !errors.Is(err, ErrClosed) {
		t.Errorf("AddPeer after Run: error %v, want %v", err, ErrClosed)
	}

	r.Close()
	waitFor(t, "Close to close the graceful session", func() bool { return !rcGR.established(t, speakerV4) }, nil)
}

// TestRoutesFromRoutersAreIgnored has the router advertise the speaker's
// own prefix back, with a high LOCAL_PREF over iBGP: the speaker keeps
// none of it, so its own route is still the one it advertises.
func TestRoutesFromRoutersAreIgnored(t *testing.T) {
	ctx := context.Background()
	rc := newReceiver(t, "127.0.0.2", speakerASN, "10.255.0.2", neighborOf{addr: speakerV4, asn: speakerASN})
	r := newRouter(t)
	mustDo(t, "AddPeer", r.AddPeer(ctx, peerTo("core", rc, speakerASN)))
	rc.fence(t)
	mine := route("203.0.113.7/32", "1:1")
	mustDo(t, "Advertise", r.Advertise(ctx, "core", mine))
	mineSeen := mine
	mineSeen.LocalPref = 100
	rc.waitRoutes(t, speakerV4, map[netip.Prefix]seen{mine.Prefix: {mineSeen, speakerV4}})

	// The router originates the same prefix and another one.
	for _, p := range []string{"203.0.113.7/32", "198.51.100.0/24"} {
		path, err := pathOf(ibgp.Route{Prefix: netip.MustParsePrefix(p), LocalPref: 1000}, netip.MustParseAddr("127.0.0.2"), true)
		mustDo(t, "pathOf", err)
		_, err = rc.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path})
		mustDo(t, "receiver AddPath", err)
	}
	waitFor(t, "the speaker to receive the router's routes", func() bool { return r.peerState(t, "core").PrefixesReceived == 2 }, nil)

	r.mu.Lock()
	srv := r.sessions["core"].srv
	r.mu.Unlock()
	var inRIB []string
	for _, afi := range families {
		err := srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}}, func(d *api.Destination) {
			for _, p := range d.GetPaths() {
				if !p.GetIsFromExternal() && p.GetNeighborIp() != "" && p.GetNeighborIp() != "<nil>" {
					inRIB = append(inRIB, d.GetPrefix()+" from "+p.GetNeighborIp())
				}
			}
		})
		mustDo(t, "ListPath", err)
	}
	if len(inRIB) > 0 {
		t.Errorf("the speaker's RIB holds the router's routes: %v", inRIB)
	}
	routes, _, err := r.Advertised(ctx, "core")
	mustDo(t, "Advertised", err)
	if diff := cmp.Diff([]ibgp.Route{mineSeen}, routes, cmpOpts); diff != "" {
		t.Errorf("Advertised() (-want +got):\n%s", diff)
	}
}
