package e2etest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ironlbv1beta1 "github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/e2etest/lab"
)

const l2PoolYAML = `
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ironlb-system}
spec:
  addresses: [198.51.100.200-198.51.100.209, "2001:db8:1::1:0/124"]
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ironlb-system}
spec:
  ipAddressPools: [lan]
  interfaces: [eth0]
`

// TestLayer2 runs ironlb's layer-2 mode end to end: a dual-stack Service
// gets its addresses, the layer-2 client reaches it over IPv4 and IPv6
// through the node its ServiceL2Status names, and when that node dies
// another node answers for both addresses.
func TestLayer2(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := newL2Lab(t, ctx, 3, l2PoolYAML)
	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "web"}}); err != nil {
		t.Fatal(err)
	}
	dual := corev1.IPFamilyPolicyRequireDualStack
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, IPFamilyPolicy: &dual,
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := l.Clientset.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ips, err := l.WaitServiceIP(ctx, "default", "web", 2)
	if err != nil {
		t.Fatal(err)
	}

	// The node named in the ServiceL2Status answers for both addresses.
	owner := waitL2Owner(t, ctx, l, "")
	for _, ip := range ips {
		a := waitCurl(t, ctx, l.L2Client, ip)
		announcer := neighbourNode(t, ctx, l, ip)
		if announcer != owner {
			t.Errorf("%s is announced by %s (the client's neighbour entry), the ServiceL2Status says %s", ip, announcer, owner)
		}
		t.Logf("curl %s: announced by %s, answered by %s on %s", ip, announcer, a.Pod, a.Node)
		if n, err := l.L2Client.Ping(ctx, ip, 3, 200*time.Millisecond); err != nil || n == 0 {
			t.Errorf("ping %s: %d of 3 answered: %v", ip, n, err)
		}
	}

	// The owner dies: another node takes both addresses over.
	dead := l.Node(owner)
	killed, err := dead.Kill(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Pods() {
		if p.Node == dead {
			p.SetReady(false) // what the cluster does for a dead node
		}
	}
	for _, ip := range ips {
		deadline := time.Now().Add(30 * time.Second)
		for {
			a, err := l.L2Client.Curl(ctx, ip, 80)
			if err == nil {
				announcer := neighbourNode(t, ctx, l, ip)
				if announcer == owner {
					t.Fatalf("%s still resolves to the dead %s", ip, owner)
				}
				t.Logf("after %s died: curl %s answered by %s, announced by %s, %v after the kill", owner, ip, a.Node, announcer, time.Since(killed).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the client cannot reach %s 30 s after %s died: %v", ip, owner, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if now := waitL2Owner(t, ctx, l, owner); now == owner {
		t.Errorf("the ServiceL2Status still names the dead %s", owner)
	}
}

// newL2Lab starts a lab of n nodes without routers, ironlb's controller
// and a speaker on every node, and applies config.
func newL2Lab(t testing.TB, ctx context.Context, n int, config string) *lab.Lab {
	t.Helper()
	l := lab.New(t, lab.Config{Nodes: n, NoRouters: true})
	startIronLB(t, ctx, l, config)
	return l
}

// waitL2Owner waits until default/web's ServiceL2Status names a node other
// than not, and returns it.
func waitL2Owner(t testing.TB, ctx context.Context, l *lab.Lab, not string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st ironlbv1beta1.ServiceL2Status
		err := l.Client.Get(ctx, client.ObjectKey{Namespace: "ironlb-system", Name: "default.web"}, &st)
		if err == nil && st.Status.Node != "" && st.Status.Node != not {
			return st.Status.Node
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ServiceL2Status for default/web naming a node other than %q: %v %+v", not, err, st.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitCurl(t testing.TB, ctx context.Context, c *lab.Client, ip netip.Addr) lab.Answer {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, err := c.Curl(ctx, ip, 80)
		if err == nil {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client cannot reach %s: %v", ip, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// neighbourNode returns the node whose MAC the client's neighbour entry
// for ip holds.
func neighbourNode(t testing.TB, ctx context.Context, l *lab.Lab, ip netip.Addr) string {
	t.Helper()
	n, ok, err := l.L2Client.Neighbor(ctx, ip)
	if err != nil || !ok || n.MAC == "" {
		t.Fatalf("the client has no neighbour entry for %s: %v %+v", ip, err, n)
	}
	node, err := l.NodeByMAC(ctx, n.MAC)
	if err != nil || node == nil {
		t.Fatalf("no node has MAC %s: %v", n.MAC, err)
	}
	return node.Name
}
