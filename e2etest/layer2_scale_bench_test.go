package e2etest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// l2ManyYAML is the pool of BenchmarkL2TenThousand: 65,536 IPv6 addresses
// on the node segment, announced in layer 2 from eth0.
const l2ManyYAML = `
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: many, namespace: ironlb-system}
spec:
  addresses: ["2001:db8:1::2:0/112"]
  autoAssign: false
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: many, namespace: ironlb-system}
spec:
  ipAddressPools: [many]
  interfaces: [eth0]
`

// l2SampleSize is how many of the announced addresses
// BenchmarkL2TenThousand asks the speakers for from the layer-2 client.
const l2SampleSize = 20

// BenchmarkL2TenThousand announces 10,000 Services (or
// $IRONLB_BENCH_L2_SERVICES) in layer 2 from a lab of two nodes, and
// reports (figures, not limits):
//
//   - s-created-to-announced: from the last Service created until the
//     speakers' ironlb_speaker_layer2_announced_ips, summed over the
//     nodes, counts every address;
//   - MiB-speaker-peak-rss and MiB-speaker-rss: the largest speaker's
//     peak resident memory (VmHWM) and its resident memory once all are
//     announced (VmRSS). Every speaker caches every Service and
//     EndpointSlice, whichever node announces it;
//   - MiB-speaker-rss-anon: the part of MiB-speaker-rss that is not the
//     program's own file mapped in (RssAnon): the heap, the stacks;
//   - unanswered-of-20: of 20 addresses spread over the Services, those
//     the layer-2 client could not resolve to a node's MAC.
//
// The Services are single-stack IPv6 (the lab's IPv4 cluster-IP range
// holds 64 Services), with a pod on each node behind them, as 32 clients
// create them at once. The lab goes with the Services when the benchmark
// ends; a further iteration adds as many again. Run it with -benchtime 1x:
//
//	IRONLB_REQUIRE_E2E=1 go test -run '^$' -bench L2TenThousand -benchtime 1x -timeout 60m ./e2etest/
func BenchmarkL2TenThousand(b *testing.B) {
	n := benchCount(b, "IRONLB_BENCH_L2_SERVICES", 10000)
	if n > 65536 {
		b.Fatalf("IRONLB_BENCH_L2_SERVICES=%d: the pool holds 65,536 addresses", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	l := newL2Lab(b, ctx, 2, l2ManyYAML)
	keepController(b, ctx, l)
	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "web"}}); err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		names := make([]string, n)
		for k := range names {
			names[k] = fmt.Sprintf("many-%d-%05d", i, k)
		}
		created := createIPv6Services(b, ctx, l, "many", names)
		want := (i + 1) * n
		bgpEventually(b, ctx, 20*time.Minute, fmt.Sprintf("%d addresses announced", want), func(ctx context.Context) (bool, string, error) {
			sum, err := l2Announced(ctx, l)
			return sum == want, fmt.Sprint(sum), err
		})
		b.ReportMetric(time.Since(created).Seconds(), "s-created-to-announced")

		var peak, rss, anon float64
		for _, node := range l.Nodes {
			pid := node.Speaker().PID()
			peak = max(peak, procStatusMiB(pid, "VmHWM"))
			rss = max(rss, procStatusMiB(pid, "VmRSS"))
			anon = max(anon, procStatusMiB(pid, "RssAnon"))
		}
		b.ReportMetric(peak, "MiB-speaker-peak-rss")
		b.ReportMetric(rss, "MiB-speaker-rss")
		b.ReportMetric(anon, "MiB-speaker-rss-anon")
		b.ReportMetric(float64(l2Unanswered(b, ctx, l, names)), "unanswered-of-20")
	}
}

// createIPv6Services creates in namespace default, 32 at once, a
// Service for each of names: single-stack IPv6, of type LoadBalancer
// without node ports, its address from pool, in front of the app=web
// pods. It tries each create up to five times, logs how long they took,
// and returns when the last was created.
func createIPv6Services(b *testing.B, ctx context.Context, l *lab.Lab, pool string, names []string) time.Time {
	b.Helper()
	svcs := l.Clientset.CoreV1().Services("default")
	start := time.Now()
	bgpParallel(b, names, func(name string) error {
		svc := lbService(name, pool, "web", corev1.ServiceExternalTrafficPolicyCluster, corev1.IPFamilyPolicySingleStack)
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		noNodePorts := false
		svc.Spec.AllocateLoadBalancerNodePorts = &noNodePorts
		// An API server or etcd short of CPU fails requests now and then
		// (timeouts, "failed to allocate IP: etcdserver: request timed
		// out"); a create that timed out may have gone through all the
		// same.
		var err error
		for try := 1; try <= 5; try++ {
			if _, err = svcs.Create(ctx, svc, metav1.CreateOptions{}); err == nil || try > 1 && apierrors.IsAlreadyExists(err) {
				return nil
			}
			time.Sleep(time.Second)
		}
		return err
	})
	created := time.Now()
	b.Logf("%d Services created in %v", len(names), created.Sub(start).Round(time.Millisecond))
	return created
}

// l2Announced returns the addresses the lab's speakers announce in layer
// 2, summed over the nodes.
func l2Announced(ctx context.Context, l *lab.Lab) (int, error) {
	var sum float64
	for _, node := range l.Nodes {
		m, err := scrape(ctx, node.SpeakerMetricsURL())
		if err != nil {
			return 0, err
		}
		sum += m["ironlb_speaker_layer2_announced_ips"]
	}
	return int(sum), nil
}

// l2Unanswered asks, from the layer-2 client, for the addresses of
// l2SampleSize of the named Services spread over them all, and returns
// how many no node answered for.
func l2Unanswered(b *testing.B, ctx context.Context, l *lab.Lab, names []string) int {
	b.Helper()
	if err := l.L2Client.FlushNeighbors(ctx); err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var unanswered []string
	for k := range l2SampleSize {
		name := names[k*len(names)/l2SampleSize]
		wg.Go(func() {
			ips, err := l.ServiceIPs(ctx, "default", name)
			if err != nil || len(ips) != 1 {
				b.Errorf("default/%s: addresses %v: %v", name, ips, err)
				return
			}
			if resolves(ctx, l.L2Client, ips[0]) {
				return
			}
			mu.Lock()
			unanswered = append(unanswered, fmt.Sprintf("%s (%s)", ips[0], name))
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(unanswered) > 0 {
		b.Logf("no node answered for %s", strings.Join(unanswered, ", "))
	}
	return len(unanswered)
}

// resolves reports whether c resolves ip to a hardware address within
// three tries: the ping makes its kernel ask, and nothing answers the
// echo itself.
func resolves(ctx context.Context, c *lab.Client, ip netip.Addr) bool {
	for range 3 {
		_, _ = c.Ping(ctx, ip, 1, time.Second)
		if n, ok, err := c.Neighbor(ctx, ip); err == nil && ok && n.MAC != "" {
			return true
		}
	}
	return false
}

// procStatusMiB returns a field of /proc/PID/status counted in kB
// (VmRSS, VmHWM...) in MiB; 0 if unknown.
func procStatusMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	return 0
}

// keepController restarts the lab's controller whenever it exits, as a
// kubelet would, until the benchmark ends: a leader-elected controller
// exits when an API server short of CPU lets its lease lapse, and the
// lab has no kubelet.
func keepController(b *testing.B, ctx context.Context, l *lab.Lab) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if p := l.ControllerProcess(); p == nil || !p.Exited() {
				continue
			}
			b.Log("the controller exited; restarting it as a kubelet would")
			if _, err := l.StartController(ctx); err != nil && ctx.Err() == nil {
				b.Logf("restart the controller: %v", err)
			}
		}
	}()
	b.Cleanup(func() {
		cancel()
		<-done
	})
}
