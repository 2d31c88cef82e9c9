package lab_test

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// TestUpDownTwice brings a lab up, checks its Nodes and its control
// plane, tears it down, checks nothing is left, and does it again: a
// second lab starts right after the first.
func TestUpDownTwice(t *testing.T) {
	for round := 1; round <= 2; round++ {
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			start := time.Now()
			l := lab.New(t, lab.Config{NoRouters: true})
			if d := time.Since(start); d > time.Minute {
				t.Errorf("lab took %v to start; want under a minute", d)
			}

			nodes, err := l.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range nodes.Items {
				ready := false
				for _, c := range n.Status.Conditions {
					ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
				}
				var addrs []string
				for _, a := range n.Status.Addresses {
					addrs = append(addrs, a.Address)
				}
				got = append(got, fmt.Sprintf("%s ready=%v %s", n.Name, ready, strings.Join(addrs, ",")))
			}
			want := []string{
				"node1 ready=true 198.51.100.11,2001:db8:1::11,node1",
				"node2 ready=true 198.51.100.12,2001:db8:1::12,node2",
				"node3 ready=true 198.51.100.13,2001:db8:1::13,node3",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Nodes (-want +got):\n%s", diff)
			}
			// kubectl works with the lab's kubeconfig.
			if out, err := l.Kubectl(ctx, "get", "nodes", "-o", "name"); err != nil || !strings.Contains(string(out), "node/node3") {
				t.Errorf("kubectl get nodes: %v\n%s", err, out)
			}
			// Every node reaches the API server through the management
			// network, and its neighbours on the segment.
			for _, n := range l.Nodes {
				if _, err := n.Exec(ctx, "curl", "-sk", "--max-time", "2", "-o", "/dev/null",
					fmt.Sprintf("https://%s:%d/readyz", l.APIServerAddr, lab.APIServerPort)); err != nil {
					t.Errorf("%s cannot reach the API server: %v", n.Name, err)
				}
				if got, err := l.L2Client.Ping(ctx, n.IPv6, 1, 200*time.Millisecond); err != nil || got != 1 {
					t.Errorf("client cannot ping %s at %s: %d answers, %v", n.Name, n.IPv6, got, err)
				}
			}

			id := l.ID
			if err := l.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			left, err := lab.Leftovers(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) > 0 {
				t.Errorf("left behind by lab %s:\n%s", id, strings.Join(left, "\n"))
			}
		})
	}
}

// TestClientReachesPodOnEachNode checks pods, EndpointSlices and the
// kube-proxy stand-in: the layer-2 client reaches a Service IP through
// each node in turn (routed to that node by hand, as no speaker answers
// ARP yet), and with externalTrafficPolicy Local the answer comes from a
// pod on that very node, which sees the client's own address; with
// Cluster, a node with no pod of its own forwards to another node's.
func TestClientReachesPodOnEachNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := lab.New(t, lab.Config{NoRouters: true})

	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "web"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "one"}, Nodes: []string{"node1"}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Apply(ctx, `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ipFamilyPolicy: RequireDualStack
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: one, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Cluster
  selector: {app: one}
  ports: [{name: http, port: 80, targetPort: 8080}]
`); err != nil {
		t.Fatal(err)
	}
	webV4, webV6 := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8:1::1:0")
	oneV4 := netip.MustParseAddr("198.51.100.201")
	if err := l.SetServiceIngress(ctx, "default", "web", webV4, webV6); err != nil {
		t.Fatal(err)
	}
	if err := l.SetServiceIngress(ctx, "default", "one", oneV4); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []netip.Addr{webV4, webV6, oneV4} {
		if err := l.WaitProxy(ctx, ip); err != nil {
			t.Fatal(err)
		}
	}

	c := l.L2Client
	for _, n := range l.Nodes {
		for _, tc := range []struct {
			vip, via, from netip.Addr
		}{
			{webV4, n.IPv4, c.IPv4},
			{webV6, n.IPv6, c.IPv6},
		} {
			if err := c.RouteVia(ctx, tc.vip, tc.via); err != nil {
				t.Fatal(err)
			}
			a, err := c.Curl(ctx, tc.vip, 80)
			if err != nil {
				t.Errorf("curl %s via %s: %v", tc.vip, n.Name, err)
				continue
			}
			if a.Node != n.Name || a.From.Addr() != tc.from {
				t.Errorf("curl %s via %s (Local): answered by %s, which saw %s; want %s, seeing %s", tc.vip, n.Name, a.Node, a.From, n.Name, tc.from)
			}
		}
		// Cluster: node2 and node3 have no pod of "one"; they forward to
		// node1's, masquerading.
		if err := c.RouteVia(ctx, oneV4, n.IPv4); err != nil {
			t.Fatal(err)
		}
		a, err := c.Curl(ctx, oneV4, 80)
		if err != nil {
			t.Errorf("curl %s via %s: %v", oneV4, n.Name, err)
			continue
		}
		wantFrom := c.IPv4
		if n.Name != "node1" {
			wantFrom = n.IPv4
		}
		if a.Node != "node1" || a.From.Addr() != wantFrom {
			t.Errorf("curl %s via %s (Cluster): answered by %s, which saw %s; want node1, seeing %s", oneV4, n.Name, a.Node, a.From, wantFrom)
		}
	}

	// A terminating pod keeps serving while no ready one is left; with no
	// pod at all, the node rejects.
	pods := l.Pods()
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	var onePod *lab.Pod
	for _, p := range pods {
		if p.Labels["app"] == "one" {
			onePod = p
		}
	}
	onePod.Terminate()
	waitSlice(t, ctx, l, "one", func(ready, serving, terminating bool) bool { return !ready && serving && terminating })
	if err := c.RouteVia(ctx, oneV4, l.Nodes[0].IPv4); err != nil {
		t.Fatal(err)
	}
	if a, err := c.Curl(ctx, oneV4, 80); err != nil || a.Node != "node1" {
		t.Errorf("curl a Service whose only pod terminates: %v, %v; want an answer from node1", a, err)
	}
	if err := onePod.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	waitRules(t, ctx, l, "node1", "daddr 198.51.100.201 tcp dport 80 reject")
	if a, err := c.Curl(ctx, oneV4, 80); err == nil {
		t.Errorf("curl a Service with no pod: got %+v, want an error", a)
	}
}

// waitSlice waits until the IPv4 EndpointSlice of a Service has one
// endpoint with the wanted conditions.
func waitSlice(t *testing.T, ctx context.Context, l *lab.Lab, svc string, want func(ready, serving, terminating bool) bool) {
	t.Helper()
	for ctx.Err() == nil {
		s, err := l.Clientset.DiscoveryV1().EndpointSlices("default").Get(ctx, svc+"-lab-ipv4", metav1.GetOptions{})
		if err == nil && len(s.Endpoints) == 1 {
			c := s.Endpoints[0].Conditions
			if want(*c.Ready, *c.Serving, *c.Terminating) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("EndpointSlice of %s never reached the wanted state", svc)
}

// waitRules waits until a node's kube-proxy rules contain s.
func waitRules(t *testing.T, ctx context.Context, l *lab.Lab, node, s string) {
	t.Helper()
	for ctx.Err() == nil {
		if strings.Contains(l.ProxyRules(node), s) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("rules of %s never contained %q:\n%s", node, s, l.ProxyRules(node))
}

// TestRouters checks that FRR and BIRD start with a neighbour per node
// address, answer their CLIs, and hold no route until a speaker sends
// one; and that the routed client reaches a node through FRR.
func TestRouters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := lab.New(t, lab.Config{Nodes: 2, FRR: &lab.RouterConfig{Password: "s3cret"}})

	var wantPeers []netip.Addr
	for _, n := range l.Nodes {
		wantPeers = append(wantPeers, n.IPv4)
	}
	for _, n := range l.Nodes {
		wantPeers = append(wantPeers, n.IPv6)
	}
	peersOf := func(ss []lab.Session) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, s.Peer)
			if s.State == lab.Established {
				t.Errorf("session with %s is established, with no speaker running", s.Peer)
			}
		}
		return out
	}
	frr, err := l.FRR.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantPeers, peersOf(frr), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("FRR's neighbours (-want +got):\n%s", diff)
	}
	bird, err := l.BIRD.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantPeers, peersOf(bird), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("BIRD's neighbours (-want +got):\n%s", diff)
	}
	for name, routes := range map[string]func(context.Context) ([]lab.Route, error){"FRR": l.FRR.Routes, "BIRD": l.BIRD.Routes} {
		rs, err := routes(ctx)
		if err != nil {
			t.Errorf("%s routes: %v", name, err)
		} else if len(rs) != 0 {
			t.Errorf("%s holds routes with no speaker: %v", name, rs)
		}
	}
	if out, err := l.FRR.VTY(ctx, "show running-config"); err != nil || !strings.Contains(string(out), "password s3cret") {
		t.Errorf("FRR's configuration lacks the MD5 password: %v\n%s", err, out)
	}
	// The routed client reaches the nodes through FRR, both families.
	for _, n := range l.Nodes {
		for _, a := range []netip.Addr{n.IPv4, n.IPv6} {
			if got, err := l.RoutedClient.Ping(ctx, a, 1, 200*time.Millisecond); err != nil || got != 1 {
				t.Errorf("routed client cannot ping %s at %s: %v", n.Name, a, err)
			}
		}
	}
}
