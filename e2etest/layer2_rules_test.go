package e2etest

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ironlbv1beta1 "github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/ironlb/ironlb/speaker/election"
)

// The tests here show the layer-2 announcement rules in the lab: who may
// announce, what moves when, and what survives the API server's absence.

// TestLayer2ExternalTrafficPolicyLocal shows that a Service with
// externalTrafficPolicy Local is announced by a node that holds one of its
// endpoints, follows the endpoints when they move, and is announced by
// nobody when no endpoint is left.
func TestLayer2ExternalTrafficPolicyLocal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := newL2Lab(t, ctx, 3, l2PoolYAML)
	first := runPod(t, ctx, l, "local", "node2")
	svc := lbService("local", "lan", "local", corev1.ServiceExternalTrafficPolicyLocal, corev1.IPFamilyPolicyRequireDualStack)
	if _, err := l.Clientset.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ips, err := l.WaitServiceIP(ctx, "default", "local", 2)
	if err != nil {
		t.Fatal(err)
	}
	waitAnnouncedBy(t, ctx, l, "local", ips, "node2")

	// The endpoint moves from node2 to node3: so does the announcement.
	runPod(t, ctx, l, "local", "node3")
	if err := first.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	waitAnnouncedBy(t, ctx, l, "local", ips, "node3")

	// No endpoint left: nobody announces; the client's pings (which the
	// lab's kube-proxy stand-in would not answer anyway) make it ask for
	// the addresses, and nobody answers.
	for _, p := range l.Pods() {
		if p.Labels["app"] == "local" {
			if err := p.Delete(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitNoL2Status(t, ctx, l, "local")
	if err := l.L2Client.FlushNeighbors(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		if got, err := l.L2Client.Ping(ctx, ip, 3, 200*time.Millisecond); err != nil || got != 0 {
			t.Errorf("%s answered %d pings with no endpoint left (%v)", ip, got, err)
		}
		if n, ok, _ := l.L2Client.Neighbor(ctx, ip); ok && n.MAC != "" {
			t.Errorf("%s resolved to %s with no endpoint left", ip, n.MAC)
		}
	}
}

// TestLayer2NodeSelection shows that a node the L2Advertisement does not
// select, and a node labelled exclude-from-external-load-balancers, never
// announce, answer or send a gratuitous packet, and that every Service's
// owner is the one the election picks among the nodes left.
func TestLayer2NodeSelection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const config = `
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
  nodeSelectors:
  - matchLabels: {example.com/edge: "true"}
`
	l := lab.New(t, lab.Config{Nodes: 3, NoRouters: true})
	// node1 is selected but excluded, node2 not selected, node3 both
	// selected and not excluded: the only node that may announce.
	for node, labels := range map[string][][2]string{
		"node1": {{"example.com/edge", "true"}, {"node.kubernetes.io/exclude-from-external-load-balancers", "true"}},
		"node3": {{"example.com/edge", "true"}},
	} {
		for _, kv := range labels {
			if err := l.Node(node).Label(ctx, kv[0], kv[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	startIronLB(t, ctx, l, config)
	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "web"}}); err != nil {
		t.Fatal(err)
	}
	// Five dual-stack Services: were all three nodes eligible, the
	// chance that one node would win them all is 1 in 81.
	services := createWebServices(t, ctx, l, 5)
	for name, ips := range services {
		waitAnnouncedBy(t, ctx, l, name, ips, "node3")
	}
	assertSilent(t, ctx, l, "node1", "node2")

	// node2 joins the selection: each Service goes to the node the
	// election picks among node2 and node3; node1 stays silent.
	if err := l.Node("node2").Label(ctx, "example.com/edge", "true"); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for name, ips := range services {
		key, _ := election.ServiceKey(ips)
		want, _ := election.Owner([]string{"node2", "node3"}, key)
		waitAnnouncedBy(t, ctx, l, name, ips, want)
		if want == "node2" {
			moved++
		}
	}
	t.Logf("%d of %d Services moved to node2 once it was selected", moved, len(services))
	assertSilent(t, ctx, l, "node1")
}

// TestLayer2SpeakerRestart restarts the speaker of a node that announces a
// Service and shows that no Service announced by another node changes
// owner meanwhile, in the ServiceL2Statuses or at the client, and that the
// restarted node's Services come back to it.
func TestLayer2SpeakerRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := newL2Lab(t, ctx, 3, l2PoolYAML)
	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "web"}}); err != nil {
		t.Fatal(err)
	}
	services := createWebServices(t, ctx, l, 5)
	owners := map[string]string{}
	for name, ips := range services {
		key, _ := election.ServiceKey(ips)
		owners[name], _ = election.Owner([]string{"node1", "node2", "node3"}, key)
		waitAnnouncedBy(t, ctx, l, name, ips, owners[name])
	}
	restarted := owners["web0"]
	t.Logf("owners %v; restarting the speaker of %s", owners, restarted)

	// Watch, while the speaker restarts, the ServiceL2Statuses and the
	// client's neighbour entries of every other node's Services.
	mon, err := l.L2Client.Monitor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	from := mon.Len()
	var (
		mu      sync.Mutex
		changes []string
	)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			var list ironlbv1beta1.ServiceL2StatusList
			if err := l.Client.List(watchCtx, &list, client.InNamespace("ironlb-system")); err == nil {
				for _, st := range list.Items {
					name := st.Status.ServiceName
					if owner, ok := owners[name]; ok && owner != restarted && st.Status.Node != owner {
						mu.Lock()
						changes = append(changes, fmt.Sprintf("%s: ServiceL2Status names %s, not %s", name, st.Status.Node, owner))
						mu.Unlock()
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	if _, err := l.Node(restarted).RestartSpeaker(ctx); err != nil {
		t.Fatal(err)
	}
	for name, ips := range services {
		if owners[name] == restarted {
			waitAnnouncedBy(t, ctx, l, name, ips, restarted)
		}
	}
	// Give a Service that would move wrongly time to do it.
	time.Sleep(3 * time.Second)
	stopWatch()
	<-watched
	for name, ips := range services {
		if owners[name] == restarted {
			continue
		}
		mac, err := l.Node(owners[name]).MAC(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ip := range ips {
			for _, ev := range mon.Events()[from:] {
				if ev.Object == "neigh" && lab.Mentions(false, ip.String(), "lladdr")(ev) && !lab.Mentions(false, mac)(ev) {
					changes = append(changes, fmt.Sprintf("%s: the client saw %q", name, ev.Line))
				}
			}
		}
		if a := waitCurl(t, ctx, l.L2Client, ips[0]); neighbourNode(t, ctx, l, ips[0]) != owners[name] {
			t.Errorf("%s: %s resolves to %s, not %s (answered by %s)", name, ips[0], neighbourNode(t, ctx, l, ips[0]), owners[name], a.Node)
		}
	}
	for _, c := range changes {
		t.Errorf("moved while %s's speaker restarted: %s", restarted, c)
	}
}

// TestLayer2APIServerDown stops the API server for 30 seconds while the
// layer-2 client sends a request every 100 ms to a Service: the speakers
// keep announcing what they last knew, and once the API server is back
// they catch up with a Service created then.
func TestLayer2APIServerDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := newL2Lab(t, ctx, 3, l2PoolYAML)
	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "web"}}); err != nil {
		t.Fatal(err)
	}
	svc := lbService("web", "lan", "web", corev1.ServiceExternalTrafficPolicyCluster, corev1.IPFamilyPolicyRequireDualStack)
	if _, err := l.Clientset.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ips, err := l.WaitServiceIP(ctx, "default", "web", 2)
	if err != nil {
		t.Fatal(err)
	}
	owner := waitL2Owner(t, ctx, l, "")
	for _, ip := range ips {
		waitCurl(t, ctx, l.L2Client, ip)
	}

	sent, failed := probeDuring(ctx, l.L2Client, ips, func() {
		if err := l.StopAPIServer(5 * time.Second); err != nil {
			t.Error(err)
			return
		}
		t.Log("API server stopped")
		time.Sleep(30 * time.Second)
		if err := l.StartAPIServer(ctx); err != nil {
			t.Error(err)
		}
		t.Log("API server started")
	})
	t.Logf("%d requests during the outage, %d failed", sent, failed)
	if sent < 500 || failed > sent/100 {
		t.Errorf("%d of %d requests to %v failed while the API server was down", failed, sent, ips)
	}
	for _, n := range l.Nodes {
		if n.Speaker().Exited() {
			t.Errorf("the speaker of %s exited while the API server was down:\n%s", n.Name, l.Logs(20))
		}
	}
	// A leader-elected controller exits when it cannot renew its lease;
	// the kubelet restarts it. The lab has no kubelet.
	if l.ControllerProcess().Exited() {
		t.Log("the controller lost its lease and exited; restarting it as the kubelet would")
		if _, err := l.RestartController(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if now := waitL2Owner(t, ctx, l, ""); now != owner {
		t.Errorf("default/web moved from %s to %s over the outage", owner, now)
	}

	// Back: a Service created now is announced like any other, once the
	// programs' watches are back: client-go retries them with a backoff
	// that grows to 30 s during the outage, jittered up to twice that.
	created := time.Now()
	svc = lbService("after", "lan", "web", corev1.ServiceExternalTrafficPolicyCluster, corev1.IPFamilyPolicyRequireDualStack)
	if _, err := l.Clientset.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	after, err := l.WaitServiceIP(ctx, "default", "after", 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("default/after got %v %v after it was created", after, time.Since(created).Round(time.Millisecond))
	key, _ := election.ServiceKey(after)
	want, _ := election.Owner([]string{"node1", "node2", "node3"}, key)
	bgpEventually(t, ctx, 150*time.Second, "a ServiceL2Status for default/after", func(ctx context.Context) (bool, string, error) {
		var st ironlbv1beta1.ServiceL2Status
		err := l.Client.Get(ctx, client.ObjectKey{Namespace: "ironlb-system", Name: "default.after"}, &st)
		return err == nil, "", err
	})
	t.Logf("default/after announced %v after it was created", time.Since(created).Round(time.Millisecond))
	waitAnnouncedBy(t, ctx, l, "after", after, want)
}

// createWebServices creates n dual-stack Services web0…web<n-1> of the
// lan pool selecting app=web, and returns their addresses by name.
func createWebServices(t testing.TB, ctx context.Context, l *lab.Lab, n int) map[string][]netip.Addr {
	t.Helper()
	services := map[string][]netip.Addr{}
	for i := range n {
		name := fmt.Sprintf("web%d", i)
		svc := lbService(name, "lan", "web", corev1.ServiceExternalTrafficPolicyCluster, corev1.IPFamilyPolicyRequireDualStack)
		if _, err := l.Clientset.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		ips, err := l.WaitServiceIP(ctx, "default", name, 2)
		if err != nil {
			t.Fatal(err)
		}
		services[name] = ips
	}
	return services
}

// startIronLB installs ironlb into lab l, starts its controller and a
// speaker on every node, and applies config.
func startIronLB(t testing.TB, ctx context.Context, l *lab.Lab, config string) {
	t.Helper()
	if err := l.InstallIronLB(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartController(ctx); err != nil {
		t.Fatal(err)
	}
	for _, node := range l.Nodes {
		if _, err := node.StartSpeaker(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Apply(ctx, config); err != nil {
		t.Fatal(err)
	}
}

// runPod runs one pod labelled app on node.
func runPod(t testing.TB, ctx context.Context, l *lab.Lab, app, node string) *lab.Pod {
	t.Helper()
	pods, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": app}, Nodes: []string{node}})
	if err != nil {
		t.Fatal(err)
	}
	return pods[0]
}

// waitAnnouncedBy waits until default/name's ServiceL2Status names node,
// then checks that the client reaches each of ips through node's MAC.
func waitAnnouncedBy(t testing.TB, ctx context.Context, l *lab.Lab, name string, ips []netip.Addr, node string) {
	t.Helper()
	bgpEventually(t, ctx, 30*time.Second, fmt.Sprintf("default/%s announced by %s", name, node), func(ctx context.Context) (bool, string, error) {
		var st ironlbv1beta1.ServiceL2Status
		if err := l.Client.Get(ctx, client.ObjectKey{Namespace: "ironlb-system", Name: "default." + name}, &st); err != nil {
			return false, "", err
		}
		return st.Status.Node == node, "ServiceL2Status names " + st.Status.Node, nil
	})
	mac, err := l.Node(node).MAC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		bgpEventually(t, ctx, 30*time.Second, fmt.Sprintf("%s reached through %s (%s)", ip, node, mac), func(ctx context.Context) (bool, string, error) {
			if _, err := l.L2Client.Curl(ctx, ip, 80); err != nil {
				return false, "", err
			}
			n, _, err := l.L2Client.Neighbor(ctx, ip)
			return n.MAC == mac, "neighbour " + n.MAC + " " + n.State, err
		})
	}
}

// waitNoL2Status waits until default/name has no ServiceL2Status.
func waitNoL2Status(t testing.TB, ctx context.Context, l *lab.Lab, name string) {
	t.Helper()
	bgpEventually(t, ctx, 30*time.Second, fmt.Sprintf("default/%s announced by nobody", name), func(ctx context.Context) (bool, string, error) {
		var st ironlbv1beta1.ServiceL2Status
		err := l.Client.Get(ctx, client.ObjectKey{Namespace: "ironlb-system", Name: "default." + name}, &st)
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		return false, "ServiceL2Status names " + st.Status.Node, err
	})
}

// assertSilent checks, through their metrics, that the speakers of nodes
// announce nothing and never answered a request or sent a gratuitous
// packet.
func assertSilent(t testing.TB, ctx context.Context, l *lab.Lab, nodes ...string) {
	t.Helper()
	for _, name := range nodes {
		m, err := scrape(ctx, l.Node(name).SpeakerMetricsURL())
		if err != nil {
			t.Fatal(err)
		}
		for _, metric := range []string{
			"ironlb_speaker_layer2_announced_ips",
			"ironlb_speaker_layer2_requests_answered_total",
			"ironlb_speaker_layer2_gratuitous_sent_total",
		} {
			if m[metric] != 0 {
				t.Errorf("%s: %s = %v, want 0", name, metric, m[metric])
			}
		}
	}
}

// scrape reads a Prometheus text endpoint and returns each metric's sum
// over its label sets.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sums := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		name, _, _ := strings.Cut(line[:max(i, 0)], "{")
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			return nil, fmt.Errorf("%s: bad line %q", url, line)
		}
		sums[name] += v
	}
	return sums, sc.Err()
}

// probeDuring sends a request from c to each of ips every 100 ms while
// during runs, and returns how many it sent and how many failed.
func probeDuring(ctx context.Context, c *lab.Client, ips []netip.Addr, during func()) (sent, failed int) {
	hc := c.HTTPClient(time.Second)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, ip := range slices.Clone(ips) {
		wg.Go(func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				_, err := c.Get(ctx, hc, ip, 80)
				mu.Lock()
				sent++
				if err != nil {
					failed++
				}
				mu.Unlock()
			}
		})
	}
	during()
	close(done)
	wg.Wait()
	return sent, failed
}
