package ipam_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/ironlb/ironlb/internal/testenv"
)

// BenchmarkServicesAtScale creates many LoadBalancer Services (10,000, or
// $IRONLB_BENCH_SERVICES) on a real API server with the controller program
// running, and reports:
//
//   - s-last-create-to-all: from the last create until every Service holds
//     an address (the target is under 10 s);
//   - s-first-create-to-all: from the first create until then;
//   - MiB-peak-rss: the controller's peak resident memory;
//   - s-bare-create and s-bare-status: the API server's own ceiling, the
//     same number of Services created, then their statuses written, by a
//     bare client with nothing else running; and the ratios.
//
// Each iteration starts a fresh API server; run it with -benchtime=1x and
// -count for medians.
func BenchmarkServicesAtScale(b *testing.B) {
	n := 10000
	if v := os.Getenv("IRONLB_BENCH_SERVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("IRONLB_BENCH_SERVICES=%q: %v", v, err)
		}
	}
	for b.Loop() {
		r := runScale(b, n)
		b.ReportMetric(r.lastToAll.Seconds(), "s-last-create-to-all")
		b.ReportMetric(r.firstToAll.Seconds(), "s-first-create-to-all")
		b.ReportMetric(r.peakRSS/(1<<20), "MiB-peak-rss")
		b.ReportMetric(r.bareCreate.Seconds(), "s-bare-create")
		b.ReportMetric(r.bareStatus.Seconds(), "s-bare-status")
		b.ReportMetric(r.firstToAll.Seconds()/(r.bareCreate+r.bareStatus).Seconds(), "x-bare")
	}
}

type scaleResult struct {
	lastToAll, firstToAll, bareCreate, bareStatus time.Duration
	peakRSS                                       float64
}

func runScale(b *testing.B, n int) scaleResult {
	ctx := context.Background()
	env := testenv.Start(b, testenv.Options{CRDs: true})
	cs := fastClient(b, env.Config)
	for _, name := range []string{ns, "bare", "shop"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	if err := env.Client.Create(ctx, pool("big", "2001:db8:3::/112")); err != nil {
		b.Fatal(err)
	}
	// IPv6 Services: the documentation ranges hold only 512 IPv4
	// addresses, and the allocator's work is the same for both families.
	service := func(namespace string, i int) *corev1.Service {
		svc := lbService(fmt.Sprintf("svc-%05d", i))
		svc.Namespace = namespace
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		// Node ports run out after 2,768 Services, and nothing here uses
		// them.
		noNodePorts := false
		svc.Spec.AllocateLoadBalancerNodePorts = &noNodePorts
		return svc
	}
	var r scaleResult

	// The API server's ceiling: a bare client creates the Services (of a
	// class ironlb does not serve), then writes their status, on an API
	// server of its own.
	start := time.Now()
	bare := make([]*corev1.Service, n)
	err := parallel(n, func(i int) error {
		svc := service("bare", i)
		class := "example.com/none"
		svc.Spec.LoadBalancerClass = &class
		var err error
		bare[i], err = cs.CoreV1().Services("bare").Create(ctx, svc, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		b.Fatalf("create Services: %v", err)
	}
	r.bareCreate = time.Since(start)
	start = time.Now()
	vip := corev1.LoadBalancerIPModeVIP
	err = parallel(n, func(i int) error {
		svc := bare[i]
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 4, 14: byte(i >> 8), 15: byte(i)}).String(), IPMode: &vip}}
		_, err := cs.CoreV1().Services("bare").UpdateStatus(ctx, svc, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		b.Fatalf("write Service status: %v", err)
	}
	r.bareStatus = time.Since(start)

	// The controller gets an API server of its own, so that it caches
	// exactly the Services it serves, not the bare client's too.
	env = testenv.Start(b, testenv.Options{CRDs: true})
	cs = fastClient(b, env.Config)
	for _, name := range []string{ns, "shop"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	if err := env.Client.Create(ctx, pool("big", "2001:db8:3::/112")); err != nil {
		b.Fatal(err)
	}
	d := testenv.StartDaemon(b, env, "github.com/ironlb/ironlb/controller", "--leader-elect=false", "--log-level=info")
	healthCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	d.WaitHealthy(b, healthCtx)

	// Count the Services that hold an address as the watch reports them.
	done := make(chan time.Time, 1)
	var mu sync.Mutex
	held := map[string]bool{}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("shop"))
	inf := factory.Core().V1().Services().Informer()
	see := func(obj any) {
		svc, ok := obj.(*corev1.Service)
		if !ok || len(svc.Status.LoadBalancer.Ingress) == 0 {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !held[svc.Name] {
			held[svc.Name] = true
			if len(held) == n {
				done <- time.Now()
			}
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: see, UpdateFunc: func(_, o any) { see(o) }}); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	factory.WaitForCacheSync(stop)

	first := time.Now()
	if err := parallel(n, func(i int) error {
		_, err := cs.CoreV1().Services("shop").Create(ctx, service("shop", i), metav1.CreateOptions{})
		return err
	}); err != nil {
		b.Fatalf("create Services: %v", err)
	}
	last := time.Now()
	allCtx, cancelAll := context.WithTimeout(ctx, 5*time.Minute)
	defer cancelAll()
	select {
	case all := <-done:
		r.lastToAll, r.firstToAll = all.Sub(last), all.Sub(first)
	case <-allCtx.Done():
		mu.Lock()
		b.Fatalf("%d of %d Services hold an address after %v", len(held), n, time.Since(first))
	}
	if r.peakRSS, err = peakRSS(d.Pid()); err != nil {
		b.Fatal(err)
	}
	if err := d.Stop(syscall.SIGTERM, 30*time.Second); err != nil {
		b.Errorf("controller after SIGTERM: %v", err)
	}
	b.Logf("%d Services: last create → all hold an address %v, first create → all %v; controller peak RSS %.0f MiB; bare client: create %v, status %v",
		n, r.lastToAll.Round(time.Millisecond), r.firstToAll.Round(time.Millisecond), r.peakRSS/(1<<20), r.bareCreate.Round(time.Millisecond), r.bareStatus.Round(time.Millisecond))
	return r
}

// rest config with a high rate limit, as a load generator needs.
func fastClient(b testing.TB, cfg *rest.Config) *kubernetes.Clientset {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 5000, 5000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return cs
}

// parallel runs f(i) for i in [0, n) on 16 goroutines.
func parallel(n int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// peakRSS returns a process's peak resident memory in bytes (VmHWM).
func peakRSS(pid int) (float64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%f kB", &kb); err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
