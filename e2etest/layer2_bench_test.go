package e2etest

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// BenchmarkL2Failover kills the node that announces a Service in layer 2,
// over and over ($IRONLB_BENCH_KILLS times, default 20), while the layer-2
// client sends an HTTP request every 10 ms, and reports:
//
//   - ms-traffic-p50/p99/max: from the kill (the node's link going down)
//     to the first answer from another node;
//   - ms-neigh-p50: from the kill to the client's neighbour entry for the
//     address carrying another node's MAC (ip monitor's time).
//
// The Service has externalTrafficPolicy Local with a pod on every node, so
// that the new owner answers from its own pod and the figure measures
// ironlb alone, not the kube-proxy stand-in. Run it with -benchtime 1x.
func BenchmarkL2Failover(b *testing.B) {
	kills := benchCount(b, "IRONLB_BENCH_KILLS", 20)
	for b.Loop() {
		traffic, neigh := runFailovers(b, kills)
		reportLatencies(b, "traffic", traffic)
		slices.Sort(neigh)
		if len(neigh) > 0 {
			b.ReportMetric(ms(percentile(neigh, 50)), "ms-neigh-p50")
		}
	}
}

func runFailovers(b *testing.B, kills int) (traffic, neigh []time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	l := newL2Lab(b, ctx, 3, l2PoolYAML)
	vip := createWeb(b, ctx, l, corev1.ServiceExternalTrafficPolicyLocal)
	mon, err := l.L2Client.Monitor(ctx)
	if err != nil {
		b.Fatal(err)
	}
	probes := startProber(ctx, l, vip)
	defer probes.stop()

	for i := range kills {
		owner := waitL2Owner(b, ctx, l, "")
		// Traffic flows through the owner before the kill.
		if _, ok := probes.answeredBy(time.Now(), "", 30*time.Second); !ok {
			b.Fatalf("kill %d: no answer from %s before the kill", i, vip)
		}
		dead := l.Node(owner)
		from := mon.Len()
		killed, err := dead.Kill(ctx)
		if err != nil {
			b.Fatal(err)
		}
		at, ok := probes.answeredBy(killed, owner, 30*time.Second)
		if !ok {
			b.Fatalf("kill %d: no other node answered %s within 30 s of killing %s", i, vip, owner)
		}
		traffic = append(traffic, at.Sub(killed))
		deadMAC, _ := dead.MAC(ctx)
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		ev, err := mon.Wait(wctx, from, func(e lab.Event) bool {
			return e.Object == "neigh" && !e.Deleted && lab.Mentions(false, vip.String(), "lladdr")(e) && !lab.Mentions(false, deadMAC)(e)
		})
		wcancel()
		if err == nil {
			neigh = append(neigh, ev.Time.Sub(killed))
		}
		b.Logf("kill %d of %s: traffic back %v, neighbour entry moved %v", i, owner, at.Sub(killed).Round(time.Millisecond), ev.Time.Sub(killed).Round(time.Millisecond))
		// Bring the node back; its address returns to it once its
		// speaker rejoins.
		if err := dead.LinkUp(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := dead.StartSpeaker(ctx); err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Second)
	}
	return traffic, neigh
}

func percentile(d []time.Duration, p int) time.Duration {
	i := (len(d)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return d[i-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
