package ipam_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	ironlbv1beta1 "github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/controller/ipam"
	"github.com/ironlb/ironlb/internal/daemon"
	"github.com/ironlb/ironlb/internal/testenv"
)

const ns = "ironlb-system"

// cluster is a real API server with ironlb's CRDs and namespace.
type cluster struct {
	t   *testing.T
	env *testenv.Env
	c   client.Client
}

func newCluster(t *testing.T) *cluster {
	env := testenv.Start(t, testenv.Options{CRDs: true})
	cl := &cluster{t: t, env: env, c: env.Client}
	for _, name := range []string{ns, "shop"} {
		cl.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}
	return cl
}

func (cl *cluster) create(obj client.Object) {
	cl.t.Helper()
	if err := cl.c.Create(context.Background(), obj); err != nil {
		cl.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// startController runs the IPAM in a manager until the returned function is
// called, which stops it and waits for it to end: a controller restart.
func (cl *cluster) startController() (stop func()) {
	cl.t.Helper()
	opts, err := (&daemon.Flags{Namespace: ns, MetricsAddr: "0", HealthAddr: "0"}).ManagerOptions()
	if err != nil {
		cl.t.Fatal(err)
	}
	skip := true
	opts.Controller = config.Controller{SkipNameValidation: &skip}
	mgr, err := ctrl.NewManager(cl.env.Config, opts)
	if err != nil {
		cl.t.Fatal(err)
	}
	metrics, err := ipam.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		cl.t.Fatal(err)
	}
	m := ipam.New(mgr.GetClient(), ipam.Options{Namespace: ns, Recorder: mgr.GetEventRecorder("ironlb-controller"), Metrics: metrics})
	if err := m.SetupWithManager(mgr, 4); err != nil {
		cl.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				cl.t.Errorf("controller: %v", err)
			}
		})
	}
	cl.t.Cleanup(stop)
	return stop
}

func pool(name string, addresses ...string) *ironlbv1beta1.IPAddressPool {
	return &ironlbv1beta1.IPAddressPool{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       ironlbv1beta1.IPAddressPoolSpec{Addresses: addresses},
	}
}

func lbService(name string, mutate ...func(*corev1.Service)) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	for _, f := range mutate {
		f(svc)
	}
	return svc
}

func annotate(key, value string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[key] = value
	}
}

func dualStack(s *corev1.Service) {
	p := corev1.IPFamilyPolicyPreferDualStack
	s.Spec.IPFamilyPolicy = &p
}

// wait polls the Service until cond holds, or fails the test after a while.
func (cl *cluster) wait(name string, what string, cond func(*corev1.Service) bool) *corev1.Service {
	cl.t.Helper()
	var svc corev1.Service
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cl.c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: name}, &svc)
		if err == nil && cond(&svc) {
			return &svc
		}
		if time.Now().After(deadline) {
			cl.t.Fatalf("Service shop/%s: %s did not happen (err %v); status %+v, annotations %v", name, what, err, svc.Status, svc.Annotations)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ips(svc *corev1.Service) string {
	var s []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		s = append(s, in.IP)
	}
	return strings.Join(s, ",")
}

// waitIPs waits until the Service shows the addresses want ("a,b").
func (cl *cluster) waitIPs(name, want string) *corev1.Service {
	cl.t.Helper()
	return cl.wait(name, "addresses "+want, func(s *corev1.Service) bool { return ips(s) == want })
}

// waitRefused waits until the Service's condition is False for reason.
func (cl *cluster) waitRefused(name, reason string) *metav1.Condition {
	cl.t.Helper()
	svc := cl.wait(name, "condition reason "+reason, func(s *corev1.Service) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, ipam.ConditionIPAllocated)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == reason
	})
	if len(svc.Status.LoadBalancer.Ingress) != 0 {
		cl.t.Errorf("Service %s was refused (%s) but shows addresses %s", name, reason, ips(svc))
	}
	return meta.FindStatusCondition(svc.Status.Conditions, ipam.ConditionIPAllocated)
}

func (cl *cluster) update(name string, mutate func(*corev1.Service)) {
	cl.t.Helper()
	ctx := context.Background()
	for {
		var svc corev1.Service
		if err := cl.c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: name}, &svc); err != nil {
			cl.t.Fatal(err)
		}
		mutate(&svc)
		err := cl.c.Update(ctx, &svc)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "the object has been modified") {
			cl.t.Fatalf("update Service %s: %v", name, err)
		}
	}
}

// waitEvent waits until the Service has an event whose "type reason: note"
// contains want. Events are sent asynchronously.
func (cl *cluster) waitEvent(name, want string) {
	cl.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev := cl.events(name)
		if strings.Contains(ev, want) {
			return
		}
		if time.Now().After(deadline) {
			cl.t.Fatalf("no event %q for Service %s; events:\n%s", want, name, ev)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (cl *cluster) events(name string) string {
	cl.t.Helper()
	var list eventsv1.EventList
	if err := cl.c.List(context.Background(), &list, client.InNamespace("shop")); err != nil {
		cl.t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out = append(out, e.Type+" "+e.Reason+": "+e.Note)
		}
	}
	return strings.Join(out, "\n")
}

// TestServicesGetAddresses follows a user through the allocation rules on a
// real API server: addresses, conditions, events, annotations, failures and
// their recovery, pool status.
func TestServicesGetAddresses(t *testing.T) {
	cl := newCluster(t)
	cl.create(pool("lan", "198.51.100.200-198.51.100.202", "2001:db8:1::1:0/126"))
	cl.startController()

	// A Service gets an address, a condition, an event and the annotation.
	cl.create(lbService("web"))
	cl.waitIPs("web", "198.51.100.200")
	// The annotation follows the status.
	web := cl.wait("web", "the pool annotation", func(s *corev1.Service) bool {
		return s.Annotations[ipam.AnnotationAllocatedFromPool] != ""
	})
	cond := meta.FindStatusCondition(web.Status.Conditions, ipam.ConditionIPAllocated)
	if cond == nil || cond.Status != metav1.ConditionTrue || cond.Message != `assigned 198.51.100.200 from pool "lan"` {
		t.Errorf("condition = %+v, want True, assigned 198.51.100.200 from pool lan", cond)
	}
	if m := web.Status.LoadBalancer.Ingress[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeVIP {
		t.Errorf("ipMode = %v, want VIP", m)
	}
	if got := web.Annotations[ipam.AnnotationAllocatedFromPool]; got != "lan" {
		t.Errorf("annotation %s = %q, want lan", ipam.AnnotationAllocatedFromPool, got)
	}

	// Dual stack: one address of each family from one pool.
	cl.create(lbService("dual", dualStack))
	cl.waitIPs("dual", "198.51.100.201,2001:db8:1::1:0")

	// A request for an address another Service holds is refused, with a
	// reason and an event, and never silently gets another one.
	cl.create(lbService("thief", annotate("ironlb.io/loadBalancerIPs", "198.51.100.200")))
	c := cl.waitRefused("thief", "RequestedIPInUse")
	if !strings.Contains(c.Message, "198.51.100.200") {
		t.Errorf("RequestedIPInUse message %q does not name the address", c.Message)
	}
	// A MetalLB annotation naming a pool that does not exist.
	cl.create(lbService("lost", annotate("metallb.universe.tf/address-pool", "nope")))
	c = cl.waitRefused("lost", "NoMatchingPool")
	if !strings.Contains(c.Message, `"nope"`) {
		t.Errorf("NoMatchingPool message %q does not name the pool", c.Message)
	}
	cl.create(lbService("bad", annotate("ironlb.io/loadBalancerIPs", "banana")))
	cl.waitRefused("bad", "InvalidRequest")

	// The last IPv4 address, then exhaustion.
	cl.create(lbService("third"))
	cl.waitIPs("third", "198.51.100.202")
	cl.create(lbService("fourth"))
	cl.waitRefused("fourth", "PoolExhausted")
	cl.waitEvent("fourth", "Warning AllocationFailed: ")
	cl.waitEvent("web", `Normal IPAllocated: assigned 198.51.100.200 from pool "lan"`)

	// Pool status counts what is held and free.
	var p ironlbv1beta1.IPAddressPool
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := cl.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "lan"}, &p); err != nil {
			t.Fatal(err)
		}
		s := p.Status
		if s.AssignedIPv4 == 3 && s.AvailableIPv4 == 0 && s.AssignedIPv6 == 1 && s.AvailableIPv6 == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool status = %+v, want 3 IPv4 assigned, 0 available, 1 IPv6 assigned, 3 available", s)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Switching a Service to ClusterIP releases its address, clears its
	// status, and lets the waiting Service have it; no other moves.
	cl.update("third", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP })
	third := cl.wait("third", "status cleared", func(s *corev1.Service) bool {
		return len(s.Status.LoadBalancer.Ingress) == 0 && meta.FindStatusCondition(s.Status.Conditions, ipam.ConditionIPAllocated) == nil &&
			s.Annotations[ipam.AnnotationAllocatedFromPool] == ""
	})
	_ = third
	cl.waitIPs("fourth", "198.51.100.202")
	// And back: now the pool is full again.
	cl.update("third", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer })
	cl.waitRefused("third", "PoolExhausted")

	// A Service of another load balancer's class is left alone.
	cl.create(lbService("other", func(s *corev1.Service) {
		class := "example.com/lb"
		s.Spec.LoadBalancerClass = &class
	}))

	// Growing the pool lets the waiting Service have an address.
	cl.update("thief", func(s *corev1.Service) { delete(s.Annotations, "ironlb.io/loadBalancerIPs") })
	patchPool(t, cl.c, "lan", func(p *ironlbv1beta1.IPAddressPool) {
		p.Spec.Addresses = append(p.Spec.Addresses, "198.51.100.203-198.51.100.204")
	})
	got := []string{ips(cl.wait("third", "an address", hasIPs)), ips(cl.wait("thief", "an address", hasIPs))}
	if strings.Join(got, " ") != "198.51.100.203 198.51.100.204" && strings.Join(got, " ") != "198.51.100.204 198.51.100.203" {
		t.Errorf("after growing the pool third and thief hold %v, want .203 and .204", got)
	}

	// An invalid change to the pool is reported and takes nothing away.
	patchPool(t, cl.c, "lan", func(p *ironlbv1beta1.IPAddressPool) {
		p.Spec.Addresses = []string{"198.51.100.300-198.51.100.310"}
	})
	waitPoolCondition(t, cl.c, "lan", metav1.ConditionFalse, "198.51.100.300")
	cl.waitIPs("web", "198.51.100.200")

	// Shrinking the pool moves the Services whose addresses left it, and
	// only those.
	before := snapshot(t, cl.c)
	patchPool(t, cl.c, "lan", func(p *ironlbv1beta1.IPAddressPool) {
		p.Spec.Addresses = []string{"198.51.100.200-198.51.100.202", "198.51.100.210-198.51.100.211", "2001:db8:1::1:0/126"}
	})
	waitPoolCondition(t, cl.c, "lan", metav1.ConditionTrue, "")
	for _, name := range []string{"third", "thief"} {
		svc := cl.wait(name, "a new address", func(s *corev1.Service) bool {
			return ips(s) == "198.51.100.210" || ips(s) == "198.51.100.211"
		})
		before[name] = ips(svc)
	}
	if diff := diffSnapshots(before, snapshot(t, cl.c)); diff != "" {
		t.Errorf("shrinking the pool moved other Services:\n%s", diff)
	}
	if other := cl.wait("other", "exists", func(*corev1.Service) bool { return true }); len(other.Status.LoadBalancer.Ingress) != 0 || len(other.Status.Conditions) != 0 {
		t.Errorf("the Service of another class was touched: %+v", other.Status)
	}

	// Sharing: web takes a sharing key (and keeps its address); a Service
	// with the same key and other ports gets web's address although the
	// pool is full; one with a common port does not.
	cl.update("web", annotate("ironlb.io/allow-shared-ip", "front"))
	cl.create(lbService("dns", annotate("metallb.io/allow-shared-ip", "front"), func(s *corev1.Service) {
		s.Spec.Ports = []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}
	}))
	cl.waitIPs("dns", "198.51.100.200")
	cl.create(lbService("web2", annotate("ironlb.io/allow-shared-ip", "front")))
	cl.waitRefused("web2", "PoolExhausted")
	cl.waitIPs("web", "198.51.100.200")

	// A Service waiting for an address gets one when the pool grows.
	patchPool(t, cl.c, "lan", func(p *ironlbv1beta1.IPAddressPool) {
		p.Spec.Addresses = append(p.Spec.Addresses, "198.51.100.220-198.51.100.221")
	})
	cl.waitIPs("web2", "198.51.100.220")

	// PreferDualStack takes its second family when its pool gains it.
	cl.create(lbService("later", dualStack, annotate("ironlb.io/address-pool", "v4first")))
	cl.create(pool("v4first", "203.0.113.10/32"))
	cl.waitIPs("later", "203.0.113.10")
	patchPool(t, cl.c, "v4first", func(p *ironlbv1beta1.IPAddressPool) {
		p.Spec.Addresses = append(p.Spec.Addresses, "2001:db8:8::/126")
	})
	cl.waitIPs("later", "203.0.113.10,2001:db8:8::")
}

func hasIPs(s *corev1.Service) bool { return len(s.Status.LoadBalancer.Ingress) > 0 }

func patchPool(t *testing.T, c client.Client, name string, mutate func(*ironlbv1beta1.IPAddressPool)) {
	t.Helper()
	var p ironlbv1beta1.IPAddressPool
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	orig := p.DeepCopy()
	mutate(&p)
	if err := c.Patch(context.Background(), &p, client.MergeFrom(orig)); err != nil {
		t.Fatalf("patch pool %s: %v", name, err)
	}
}

func waitPoolCondition(t *testing.T, c client.Client, name string, status metav1.ConditionStatus, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var p ironlbv1beta1.IPAddressPool
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			t.Fatal(err)
		}
		cond := meta.FindStatusCondition(p.Status.Conditions, ironlbv1beta1.ConditionValid)
		if cond != nil && cond.Status == status && cond.ObservedGeneration == p.Generation && strings.Contains(cond.Message, msg) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool %s condition %s = %+v, want %s mentioning %q", name, ironlbv1beta1.ConditionValid, cond, status, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// snapshot returns every Service's addresses by name.
func snapshot(t *testing.T, c client.Client) map[string]string {
	t.Helper()
	var list corev1.ServiceList
	if err := c.List(context.Background(), &list, client.InNamespace("shop")); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for i := range list.Items {
		m[list.Items[i].Name] = ips(&list.Items[i])
	}
	return m
}

func diffSnapshots(want, got map[string]string) string {
	var out []string
	for name, w := range want {
		if got[name] != w {
			out = append(out, fmt.Sprintf("%s: %q -> %q", name, w, got[name]))
		}
	}
	return strings.Join(out, "\n")
}

// TestRestartKeepsEveryAddress assigns 1,000 Services, restarts the
// controller, and shows that not one address changed; then deletes one
// Service and shows that no other moved.
func TestRestartKeepsEveryAddress(t *testing.T) {
	const n = 1000
	cl := newCluster(t)
	cl.create(pool("big", "198.51.100.0/24", "203.0.113.0/24", "2001:db8:2::/64"))
	stop := cl.startController()

	// A quarter dual stack, a quarter IPv4, half IPv6: 500 of the 512
	// IPv4 addresses are taken.
	createServices(t, cl.c, n, func(i int, s *corev1.Service) {
		switch i % 4 {
		case 0:
			dualStack(s)
		case 1:
		default:
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		}
	})
	before := waitAll(t, cl.c, n)
	stop()

	// Addresses in the Services' status are reloaded before any other is
	// handed out: a Service created while the controller is down gets a
	// free address, not one of theirs.
	cl.create(lbService("late"))
	cl.startController()
	late := ips(cl.wait("late", "an address", hasIPs))
	for name, a := range before {
		if strings.Contains(","+a+",", ","+late+",") {
			t.Fatalf("the late Service got %s, which %s held", late, name)
		}
	}
	// Give the restarted controller time to reconcile every Service; any
	// change it made would show.
	time.Sleep(2 * time.Second)
	after := snapshot(t, cl.c)
	delete(after, "late")
	if diff := diffSnapshots(before, after); diff != "" {
		t.Fatalf("the restart changed addresses:\n%s", diff)
	}

	if err := cl.c.Delete(context.Background(), lbService("svc-0500")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	after = snapshot(t, cl.c)
	delete(after, "late")
	delete(before, "svc-0500")
	if diff := diffSnapshots(before, after); diff != "" {
		t.Fatalf("deleting one Service moved others:\n%s", diff)
	}
}

// createServices creates n LoadBalancer Services svc-0000... in parallel.
func createServices(t testing.TB, c client.Client, n int, mutate func(int, *corev1.Service)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				svc := lbService(fmt.Sprintf("svc-%04d", i))
				if mutate != nil {
					mutate(i, svc)
				}
				if err := c.Create(context.Background(), svc); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("create Service: %v", err)
	}
}

// waitAll waits until n Services hold addresses, and returns them.
func waitAll(t testing.TB, c client.Client, n int) map[string]string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var list corev1.ServiceList
		if err := c.List(context.Background(), &list, client.InNamespace("shop")); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for i := range list.Items {
			if a := ips(&list.Items[i]); a != "" {
				m[list.Items[i].Name] = a
			}
		}
		if len(m) >= n {
			return maps.Clone(m)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d Services hold addresses", len(m), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(m.Run())
}
