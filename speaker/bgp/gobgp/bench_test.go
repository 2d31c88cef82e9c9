package gobgp

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	ibgp "github.com/ironlb/ironlb/speaker/bgp"
)

// benchRoutes is how many routes the benchmarks advertise to each peer:
// DESIGN.md's 10,000 Service IPs.
const benchRoutes = 10000

// hostRoutes returns n IPv4 host routes with one community each.
func hostRoutes(n int) map[netip.Prefix]ibgp.Route {
	out := make(map[netip.Prefix]ibgp.Route, n)
	for i := range n {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
		out[p] = route(p.String(), "64512:100")
	}
	return out
}

// BenchmarkAdvertise advertises benchRoutes routes to each of two gobgp
// routers through the Reconciler, waits until both hold them all, then
// withdraws them all, reporting the time each phase took: figures, not
// limits.
func BenchmarkAdvertise(b *testing.B) {
	for range b.N {
		b.StopTimer()
		ctx := context.Background()
		rcA := newReceiver(b, "127.0.0.2", routerASN, "10.255.0.2", neighborOf{addr: speakerV4, asn: speakerASN})
		rcB := newReceiver(b, "127.0.0.3", routerASN, "10.255.0.3", neighborOf{addr: speakerV4, asn: speakerASN})
		r := New(Options{RouterID: netip.MustParseAddr("10.0.0.11")})
		rec := ibgp.NewReconciler(r)
		desired := ibgp.State{
			Peers:  map[string]ibgp.Peer{"a": peerTo("a", rcA, routerASN), "b": peerTo("b", rcB, routerASN)},
			Routes: map[string]map[netip.Prefix]ibgp.Route{"a": {}, "b": {}},
		}
		if _, err := rec.Reconcile(ctx, desired); err != nil {
			b.Fatal(err)
		}
		rcA.fence(b)
		rcB.fence(b)
		for _, rc := range []*receiver{rcA, rcB} {
			waitFor(b, "the session", func() bool { return rc.established(b, speakerV4) }, nil)
		}
		desired.Routes["a"], desired.Routes["b"] = hostRoutes(benchRoutes), hostRoutes(benchRoutes)

		b.StartTimer()
		start := time.Now()
		if _, err := rec.Reconcile(ctx, desired); err != nil {
			b.Fatal(err)
		}
		applied := time.Since(start)
		for _, rc := range []*receiver{rcA, rcB} {
			waitFor(b, "every route", func() bool { return len(rc.routes(b, speakerV4)) == benchRoutes }, nil)
		}
		received := time.Since(start)

		start = time.Now()
		desired.Routes = map[string]map[netip.Prefix]ibgp.Route{"a": {}, "b": {}}
		if _, err := rec.Reconcile(ctx, desired); err != nil {
			b.Fatal(err)
		}
		for _, rc := range []*receiver{rcA, rcB} {
			waitFor(b, "no route", func() bool { return len(rc.routes(b, speakerV4)) == 0 }, nil)
		}
		withdrawn := time.Since(start)
		b.StopTimer()
		r.Close()

		b.ReportMetric(float64(applied.Milliseconds()), "ms/apply")
		b.ReportMetric(float64(received.Milliseconds()), "ms/received")
		b.ReportMetric(float64(withdrawn.Milliseconds()), "ms/withdrawn")
	}
}

// BenchmarkRouterHeap measures the heap a Router holds for benchRoutes
// routes on each of two peers: sessions that never establish, so that
// only the speaker's side is counted.
func BenchmarkRouterHeap(b *testing.B) {
	for range b.N {
		b.StopTimer()
		ctx := context.Background()
		r := New(Options{RouterID: netip.MustParseAddr("10.0.0.11")})
		rec := ibgp.NewReconciler(r)
		down := &receiver{addr: netip.MustParseAddr("127.0.0.9"), port: freePort(b, "127.0.0.9")}
		down2 := &receiver{addr: netip.MustParseAddr("127.0.0.10"), port: freePort(b, "127.0.0.10")}
		desired := ibgp.State{
			Peers:  map[string]ibgp.Peer{"a": peerTo("a", down, routerASN), "b": peerTo("b", down2, routerASN)},
			Routes: map[string]map[netip.Prefix]ibgp.Route{"a": {}, "b": {}},
		}
		if _, err := rec.Reconcile(ctx, desired); err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		desired.Routes["a"], desired.Routes["b"] = hostRoutes(benchRoutes), hostRoutes(benchRoutes)
		b.StartTimer()
		if _, err := rec.Reconcile(ctx, desired); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		desired = ibgp.State{}
		runtime.GC()
		runtime.ReadMemStats(&after)
		r.Close()
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "MiB-heap")
	}
}
