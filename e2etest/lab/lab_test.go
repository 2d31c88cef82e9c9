package lab_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
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

// TestBGPThroughRouters checks the routed path of the lab without a
// speaker: a BIRD playing the speaker in each node's namespace advertises
// a Service IP with communities to FRR (TCP MD5) and to the lab's BIRD;
// both routers hold it with ECMP over the nodes, and the routed client
// reaches a pod through FRR and the kube-proxy stand-in.
func TestBGPThroughRouters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const password = "s3cret"
	l := lab.New(t, lab.Config{Nodes: 2, FRR: &lab.RouterConfig{Password: password}})
	vip := netip.MustParseAddr("203.0.113.10")

	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "web"}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Apply(ctx, `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
`); err != nil {
		t.Fatal(err)
	}
	if err := l.SetServiceIngress(ctx, "default", "web", vip); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitProxy(ctx, vip); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Nodes {
		fakeSpeaker(t, l, n, vip, password)
	}

	prefix := netip.PrefixFrom(vip, 32)
	nodes := []netip.Addr{l.Nodes[0].IPv4, l.Nodes[1].IPv4}
	// FRR: both paths, ECMP in the kernel, the communities.
	var kr []lab.KernelRoute
	for ctx.Err() == nil {
		var err error
		if kr, err = l.FRR.KernelRoutes(ctx); err != nil {
			t.Fatal(err)
		}
		if len(kr) == 1 && len(kr[0].NextHops) == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	want := []lab.KernelRoute{{Prefix: prefix, NextHops: nodes}}
	eq := cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})
	if diff := cmp.Diff(want, kr, eq); diff != "" {
		sessions, _ := l.FRR.Sessions(ctx)
		summary, _ := l.FRR.VTY(ctx, "show bgp summary")
		t.Fatalf("FRR's kernel routes (-want +got):\n%s\nsessions: %+v\n%s\nFRR's log:\n%s", diff, sessions, summary, l.FRR.Log())
	}
	rt, ok, err := l.FRR.Route(ctx, prefix)
	if err != nil || !ok {
		t.Fatalf("FRR's route to %s: %v %v", prefix, ok, err)
	}
	wantPaths := []lab.Path{
		{NextHop: nodes[0], Peer: nodes[0], ASPath: "64512", Communities: []string{"64512:100", "65535:65281", "large:64512:1:1"}},
		{NextHop: nodes[1], Peer: nodes[1], ASPath: "64512", Communities: []string{"64512:100", "65535:65281", "large:64512:1:1"}},
	}
	if diff := cmp.Diff(wantPaths, rt.Paths, eq, cmpopts.IgnoreFields(lab.Path{}, "Best", "Multipath")); diff != "" {
		t.Errorf("FRR's paths to %s (-want +got):\n%s", prefix, diff)
	}
	best, multi := 0, 0
	for _, p := range rt.Paths {
		if p.Best {
			best++
		}
		if p.Multipath {
			multi++
		}
	}
	if best != 1 || multi != 2 {
		t.Errorf("FRR's paths: %d best and %d multipath, want 1 and 2: %+v", best, multi, rt.Paths)
	}
	if table, err := l.FRR.Routes(ctx); err != nil || len(table) != 1 || len(table[0].Paths) != 2 {
		t.Errorf("FRR's BGP table: %+v, %v", table, err)
	}
	// FRR's log says when each path arrived.
	if evs := l.FRR.LogEvents("rcvd", prefix.String()); len(evs) < 2 {
		t.Errorf("FRR's log has %d updates for %s, want 2:\n%s", len(evs), prefix, l.FRR.Log())
	}

	// BIRD: both paths too (no password on its sessions).
	var br []lab.Route
	for ctx.Err() == nil {
		if br, err = l.BIRD.Routes(ctx); err != nil {
			t.Fatal(err)
		}
		if len(br) == 1 && len(br[0].Paths) == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if diff := cmp.Diff(wantPaths, brPaths(br), eq, cmpopts.IgnoreFields(lab.Path{}, "Best", "Multipath")); diff != "" {
		t.Errorf("BIRD's paths (-want +got):\n%s", diff)
	}
	if bk, err := l.BIRD.KernelRoutes(ctx); err != nil || cmp.Diff(want, bk, eq) != "" {
		t.Errorf("BIRD's kernel routes: %+v, %v; want %+v", bk, err, want)
	}

	// The routed client reaches a pod through FRR; with ECMP and policy
	// Local, the pod is on the node FRR picked, and sees the client.
	a, err := l.RoutedClient.Curl(ctx, vip, 80)
	if err != nil {
		t.Fatal(err)
	}
	if a.From.Addr() != l.RoutedClient.IPv4 {
		t.Errorf("the pod saw %s, want the routed client %s", a.From, l.RoutedClient.IPv4)
	}
}

func brPaths(rs []lab.Route) []lab.Path {
	if len(rs) != 1 {
		return nil
	}
	return rs[0].Paths
}

// fakeSpeaker runs a BIRD in node n's namespace that advertises vip with
// communities to FRR (with the password) and to the lab's BIRD, as a
// speaker will.
func fakeSpeaker(t *testing.T, l *lab.Lab, n *lab.Node, vip netip.Addr, password string) {
	t.Helper()
	dir := t.TempDir()
	conf := fmt.Sprintf(`router id %[1]s;
protocol device {}
protocol static vips { ipv4; route %[2]s/32 blackhole; }
filter announce {
  bgp_community.add((65535,65281));
  bgp_community.add((64512,100));
  bgp_large_community.add((64512,1,1));
  accept;
}
protocol bgp to_frr {
  local %[1]s as 64512;
  neighbor %[3]s as 64500;
  password "%[4]s";
  ipv4 { import none; export filter announce; };
}
protocol bgp to_bird {
  local %[1]s as 64512;
  neighbor %[5]s as 64501;
  ipv4 { import none; export filter announce; };
}
`, n.IPv4, vip, l.FRR.IPv4, password, l.BIRD.IPv4)
	path := dir + "/bird.conf"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", n.Namespace, "bird", "-f", "-c", path, "-s", dir+"/bird.ctl", "-P", dir+"/bird.pid")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("BIRD speaker on %s:\n%s", n.Name, out)
		}
	})
}
