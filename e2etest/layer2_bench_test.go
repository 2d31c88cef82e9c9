package e2etest

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

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
	kills := 20
	if v := os.Getenv("IRONLB_BENCH_KILLS"); v != "" {
		var err error
		if kills, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		traffic, neigh := runFailovers(b, kills)
		slices.Sort(traffic)
		slices.Sort(neigh)
		b.ReportMetric(ms(percentile(traffic, 50)), "ms-traffic-p50")
		b.ReportMetric(ms(percentile(traffic, 99)), "ms-traffic-p99")
		b.ReportMetric(ms(traffic[len(traffic)-1]), "ms-traffic-max")
		if len(neigh) > 0 {
			b.ReportMetric(ms(percentile(neigh, 50)), "ms-neigh-p50")
		}
	}
}

func runFailovers(b *testing.B, kills int) (traffic, neigh []time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	l := lab.New(b, lab.Config{Nodes: 3, NoRouters: true})
	if err := l.InstallIronLB(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := l.StartController(ctx); err != nil {
		b.Fatal(err)
	}
	for _, n := range l.Nodes {
		if _, err := n.StartSpeaker(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "web"}}); err != nil {
		b.Fatal(err)
	}
	if err := l.Apply(ctx, l2PoolYAML); err != nil {
		b.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := l.Clientset.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	ips, err := l.WaitServiceIP(ctx, "default", "web", 1)
	if err != nil {
		b.Fatal(err)
	}
	vip := ips[0]
	mon, err := l.L2Client.Monitor(ctx)
	if err != nil {
		b.Fatal(err)
	}
	hc := l.L2Client.HTTPClient(100 * time.Millisecond)

	// The prober: one request every 10 ms; it records who answered when.
	type answer struct {
		at   time.Time
		node string
	}
	var mu sync.Mutex
	var answers []answer
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-probeCtx.Done():
				return
			case <-t.C:
			}
			if a, err := l.L2Client.Get(probeCtx, hc, vip, 80); err == nil {
				mu.Lock()
				answers = append(answers, answer{time.Now(), a.Node})
				mu.Unlock()
			}
		}
	}()
	answeredBy := func(since time.Time, not string, timeout time.Duration) (time.Time, bool) {
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			mu.Lock()
			for _, a := range answers {
				if a.at.After(since) && a.node != not {
					mu.Unlock()
					return a.at, true
				}
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
		return time.Time{}, false
	}

	for i := range kills {
		owner := waitL2Owner(b, ctx, l, "")
		// Traffic flows through the owner before the kill.
		if _, ok := answeredBy(time.Now(), "", 30*time.Second); !ok {
			b.Fatalf("kill %d: no answer from %s before the kill", i, vip)
		}
		dead := l.Node(owner)
		from := mon.Len()
		killed, err := dead.Kill(ctx)
		if err != nil {
			b.Fatal(err)
		}
		at, ok := answeredBy(killed, owner, 30*time.Second)
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
