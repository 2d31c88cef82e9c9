package e2etest

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ironlbv1beta1 "github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/e2etest/lab"
)

// BenchmarkL2GracefulStop measures a layer-2 handover on SIGTERM. It
// signals the speaker of the node that owns a Service's address
// ($IRONLB_BENCH_STOPS times, default 20; the speaker starts again after
// each stop and takes its address back), with the layer-2 client probing
// the address over HTTP every 10 ms, and reports:
//
//   - ms-garp-p50/p99/max: signal to the first gratuitous ARP for the
//     address from another node, at the client's kernel receive time;
//   - lost-probes: probes sent from the signal until a second after the
//     speaker exited that nobody answered, over all stops;
//   - reset-probes: probes of the same span whose connection was reset:
//     opened through the old owner, its later packets went to the new one,
//     which knows nothing of it. Moving an address to another node breaks
//     the connections open through the old one at that instant; these are
//     not a gap in the announcement.
//
// A stopping speaker leaves the gossip membership before it goes quiet, so
// the next owner announces while the old one still answers. The Service is
// the one BenchmarkL2Failover uses: externalTrafficPolicy Local, a pod on
// every node. Run it with -benchtime 1x.
func BenchmarkL2GracefulStop(b *testing.B) {
	stops := benchCount(b, "IRONLB_BENCH_STOPS", 20)
	for b.Loop() {
		garp, lost, reset := runGracefulStops(b, stops)
		reportLatencies(b, "garp", garp)
		b.ReportMetric(float64(lost), "lost-probes")
		b.ReportMetric(float64(reset), "reset-probes")
	}
}

func runGracefulStops(b *testing.B, stops int) (garp []time.Duration, lost, reset int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	l := newL2Lab(b, ctx, 3, l2PoolYAML)
	vip := createWeb(b, ctx, l, corev1.ServiceExternalTrafficPolicyLocal)
	capture, err := l.L2Client.CaptureARP()
	if err != nil {
		b.Fatal(err)
	}
	defer capture.Close()
	probes := startProber(ctx, l, vip)
	defer probes.stop()

	for i := range stops {
		owner := waitL2Owner(b, ctx, l, "")
		if _, ok := probes.answeredBy(time.Now(), "", 30*time.Second); !ok {
			b.Fatalf("stop %d: no answer from %s before the stop", i, vip)
		}
		node := l.Node(owner)
		mac, err := node.MAC(ctx)
		if err != nil {
			b.Fatal(err)
		}
		speaker := node.Speaker()
		signalled := time.Now()
		if err := speaker.Signal(syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		p, err := capture.First(wctx, signalled, func(p lab.ARP) bool {
			return lab.Announces(vip)(p) && p.SenderMAC != mac
		})
		wcancel()
		if err != nil {
			b.Fatalf("stop %d of %s: no gratuitous ARP for %s from another node: %v", i, owner, vip, err)
		}
		garp = append(garp, p.Time.Sub(signalled))
		if err := speaker.Wait(10 * time.Second); err != nil {
			b.Fatalf("stop %d: the speaker of %s did not exit cleanly on SIGTERM: %v", i, owner, err)
		}
		exited := time.Now()
		time.Sleep(time.Second)
		failed := probes.failures(signalled, exited.Add(time.Second))
		for _, err := range failed {
			if errors.Is(err, syscall.ECONNRESET) {
				reset++
			} else {
				lost++
			}
		}
		b.Logf("stop %d of %s: gratuitous ARP from %s after %v, speaker gone after %v, %d probes failed %v",
			i, owner, p.SenderMAC, p.Time.Sub(signalled).Round(10*time.Microsecond), exited.Sub(signalled).Round(time.Millisecond), len(failed), failed)
		// The speaker comes back and takes its address back; the last of
		// its repeated gratuitous ARPs goes out two seconds later.
		if _, err := node.StartSpeaker(ctx); err != nil {
			b.Fatal(err)
		}
		time.Sleep(3 * time.Second)
	}
	return garp, lost, reset
}

// BenchmarkL2FirstGARP creates a Service over and over
// ($IRONLB_BENCH_CREATES times, default 20) and reports, in
// ms-garp-p50/p99/max, the time from the Create call to the first
// gratuitous ARP for its address that the layer-2 client receives: the
// controller's allocation and status write, the speakers' watch, election
// and announcement. Each Service is deleted, and gone from the speakers,
// before the next is created, which gets the same address again: an
// address announced a moment ago is announced again at once.
//
// The Service has no selector; its EndpointSlice, listing a ready pod on
// every node, exists before it, as it does for a Service created in front
// of running pods, so that the figure is ironlb's alone. Run it with
// -benchtime 1x.
func BenchmarkL2FirstGARP(b *testing.B) {
	creates := benchCount(b, "IRONLB_BENCH_CREATES", 20)
	for b.Loop() {
		reportLatencies(b, "garp", runFirstGARPs(b, creates))
	}
}

func runFirstGARPs(b *testing.B, creates int) []time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	l := newL2Lab(b, ctx, 3, l2PoolYAML)
	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "web"}}); err != nil {
		b.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-pods", Namespace: "default",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, p := range l.Pods() {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{p.IPv4.String()}, NodeName: ptr.To(p.Node.Name),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	if _, err := l.Clientset.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	pool := netip.MustParsePrefix("198.51.100.192/28") // holds the pool's IPv4 range, .200-.209
	capture, err := l.L2Client.CaptureARP()
	if err != nil {
		b.Fatal(err)
	}
	defer capture.Close()
	services := l.Clientset.CoreV1().Services("default")

	// The first Service, on a lab just started, waits for the speakers to
	// load their caches: it is not counted.
	var firsts []time.Duration
	for i := range creates + 1 {
		svc := webService(corev1.ServiceExternalTrafficPolicyCluster)
		svc.Spec.Selector = nil
		created := time.Now()
		if _, err := services.Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		p, err := capture.First(wctx, created, func(p lab.ARP) bool { return p.Gratuitous() && pool.Contains(p.TargetIP) })
		wcancel()
		if err != nil {
			b.Fatalf("create %d: no gratuitous ARP for the Service: %v", i, err)
		}
		ips, err := l.WaitServiceIP(ctx, "default", "web", 1)
		if err != nil {
			b.Fatal(err)
		}
		if ips[0] != p.TargetIP {
			b.Fatalf("create %d: the first gratuitous ARP is for %s, the Service holds %s", i, p.TargetIP, ips[0])
		}
		if i > 0 {
			firsts = append(firsts, p.Time.Sub(created))
		}
		owner := waitL2Owner(b, ctx, l, "")
		b.Logf("create %d: %s announced by %s (%s) after %v", i, ips[0], owner, p.SenderMAC, p.Time.Sub(created).Round(10*time.Microsecond))

		if err := services.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			b.Fatal(err)
		}
		waitGone(b, ctx, l, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}})
		// The owner deletes the ServiceL2Status once it stopped answering.
		waitGone(b, ctx, l, &ironlbv1beta1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{Namespace: "ironlb-system", Name: "default.web"}})
	}
	return firsts
}

// createWeb creates default/web (see webService) with pods labelled
// app=web behind it, and returns its IPv4 address once it has one.
func createWeb(b *testing.B, ctx context.Context, l *lab.Lab, policy corev1.ServiceExternalTrafficPolicy) netip.Addr {
	b.Helper()
	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "web"}}); err != nil {
		b.Fatal(err)
	}
	if _, err := l.Clientset.CoreV1().Services("default").Create(ctx, webService(policy), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	ips, err := l.WaitServiceIP(ctx, "default", "web", 1)
	if err != nil {
		b.Fatal(err)
	}
	return ips[0]
}

// webService returns the Service default/web of type LoadBalancer, port
// 80 to the app=web pods' 8080, with the given external traffic policy.
func webService(policy corev1.ServiceExternalTrafficPolicy) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: policy,
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

// waitGone waits until obj, read from the API server, no longer exists.
func waitGone(b *testing.B, ctx context.Context, l *lab.Lab, obj client.Object) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := l.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%T %s is still there after 30 s: %v", obj, client.ObjectKeyFromObject(obj), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reportLatencies reports the median, 99th percentile and maximum of d,
// which it sorts, as ms-<name>-p50, -p99 and -max.
func reportLatencies(b *testing.B, name string, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(ms(percentile(d, 50)), "ms-"+name+"-p50")
	b.ReportMetric(ms(percentile(d, 99)), "ms-"+name+"-p99")
	b.ReportMetric(ms(d[len(d)-1]), "ms-"+name+"-max")
}

// benchCount returns the count the environment variable name sets, or def.
func benchCount(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive count", name, v)
	}
	return n
}

// probe is one HTTP request of a prober.
type probe struct {
	// sent and done are when the request started and ended.
	sent, done time.Time
	// node answered, unless err says why nobody did.
	node string
	err  error
}

// prober sends an HTTP request to a Service from the layer-2 client every
// 10 ms, each on its own so that one that hangs delays no other, and
// records who answered when.
type prober struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	probes []probe
}

// startProber starts probing vip, port 80, from the layer-2 client. Each
// request times out after 100 ms.
func startProber(ctx context.Context, l *lab.Lab, vip netip.Addr) *prober {
	ctx, cancel := context.WithCancel(ctx)
	p := &prober{cancel: cancel}
	hc := l.L2Client.HTTPClient(100 * time.Millisecond)
	p.wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			p.wg.Go(func() {
				pr := probe{sent: time.Now()}
				a, err := l.L2Client.Get(ctx, hc, vip, 80)
				if ctx.Err() != nil {
					return // stopped: not an answer missed
				}
				pr.done, pr.node, pr.err = time.Now(), a.Node, err
				p.mu.Lock()
				p.probes = append(p.probes, pr)
				p.mu.Unlock()
			})
		}
	})
	return p
}

// stop ends the probing and waits for the requests in flight.
func (p *prober) stop() {
	p.cancel()
	p.wg.Wait()
}

// answeredBy waits up to timeout for an answer received after since from a
// node other than not, and returns when it came.
func (p *prober) answeredBy(since time.Time, not string, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, pr := range p.probes {
			if pr.err == nil && pr.done.After(since) && pr.node != not {
				p.mu.Unlock()
				return pr.done, true
			}
		}
		p.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	return time.Time{}, false
}

// failures returns the errors of the requests sent from from to to that
// failed.
func (p *prober) failures(from, to time.Time) []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, pr := range p.probes {
		if pr.err != nil && !pr.sent.Before(from) && pr.sent.Before(to) {
			errs = append(errs, errors.Unwrap(pr.err))
		}
	}
	return errs
}
