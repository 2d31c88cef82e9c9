package e2etest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ironlbv1beta1 "github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/e2etest/lab"
)

// The BGP suite runs ironlb's real controller and speakers against the
// lab's real FRR (AS 64500, TCP MD5 in this suite) and BIRD (AS 64501).
// Both routers hold an IPv4 and an IPv6 neighbour per node, each taking
// both families: the suite's BGPPeers (frr, bird) are IPv4 sessions that
// carry IPv6 routes too (multiprotocol BGP, the node's IPv6 address as
// next hop).

const (
	// bgpNamespace is ironlb's namespace in the lab.
	bgpNamespace = "ironlb-system"
	// bgpNodeASN is the nodes' AS number, as the lab's routers expect it.
	bgpNodeASN = 64512
	// bgpPassword is FRR's TCP MD5 password in this suite.
	bgpPassword = "s3cret"
	// bgpHoldTime is the BGPPeers' hold time: the shortest allowed, so
	// that a dead node's paths go within seconds.
	bgpHoldTime = 3 * time.Second
)

// bgpCmp compares netip values by ==.
var bgpCmp = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

// bgpSuite is the lab of the BGP suite and what the steps share.
type bgpSuite struct {
	l   *lab.Lab
	ctx context.Context
	// frrASN is FRR's AS number as the BGPPeers name it (it changes for
	// the iBGP step).
	frrASN uint32
	// gracefulRestart is enableGracefulRestart of every BGPPeer.
	gracefulRestart bool
	// localPref is the BGPAdvertisement's localPref.
	localPref uint32
	// speakerArgs are added to the speakers' command lines.
	speakerArgs []string
}

// TestBGP runs ironlb's BGP mode end to end on one lab, as a sequence of
// steps that each leave the lab in the state the next one expects:
// sessions with and without MD5, ECMP routes on FRR and BIRD for IPv4 and
// IPv6, communities, externalTrafficPolicy Local, withdrawal, graceful
// restart, iBGP with localPref across a router restart, and a dead node.
func TestBGP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l := lab.New(t, lab.Config{Nodes: 3, FRR: &lab.RouterConfig{Password: bgpPassword}})
	s := &bgpSuite{l: l, ctx: ctx, frrASN: l.FRR.Config.ASN}
	s.install(t)

	var web, local []netip.Addr // the Services' addresses, IPv4 then IPv6
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"wrong password never establishes", s.wrongPassword},
		{"sessions establish", s.sessionsEstablish},
		{"routes with ECMP", func(t *testing.T) { web = s.routesWithECMP(t) }},
		{"communities", func(t *testing.T) { s.communities(t, web) }},
		{"an IPv6 session is added and removed alone", func(t *testing.T) { s.ipv6Session(t, web) }},
		{"externalTrafficPolicy Local follows endpoints", func(t *testing.T) { local = s.localEndpoints(t) }},
		{"deleting a Service withdraws its routes", func(t *testing.T) { s.withdraw(t, local) }},
		{"graceful restart keeps routes", func(t *testing.T) { s.gracefulRestartStep(t, web) }},
		{"iBGP localPref after a router restart", func(t *testing.T) { s.iBGPLocalPref(t, web) }},
		{"killed node loses its next hop", func(t *testing.T) { s.killNode(t, web) }},
		{"routes stay while the API server is down", func(t *testing.T) { s.apiServerDown(t, web) }},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			t.Fatalf("step %q failed; the later steps depend on it", st.name)
		}
	}
}

// install installs ironlb, starts the controller and a speaker per node,
// runs a pod of app=web on every node, and applies the suite's pool,
// communities, BGPPeers (FRR's password Secret wrong at first) and
// advertisement.
func (s *bgpSuite) install(t testing.TB) {
	ctx, l := s.ctx, s.l
	if err := l.InstallIronLB(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartController(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Nodes {
		if _, err := n.StartSpeaker(ctx, s.speakerArgs...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "web"}}); err != nil {
		t.Fatal(err)
	}
	s.setPassword(t, "wrong")
	if err := l.Apply(ctx, bgpPoolYAML+bgpCommunityYAML); err != nil {
		t.Fatal(err)
	}
	s.applyPeers(t)
	s.applyAdvertisement(t)
}

const bgpPoolYAML = `
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ironlb-system}
spec:
  addresses: [203.0.113.0/25, 2001:db8:100::/120]
  autoAssign: false
---
`

const bgpCommunityYAML = `
apiVersion: ironlb.io/v1beta1
kind: Community
metadata: {name: e2e, namespace: ironlb-system}
spec:
  communities:
  - {name: cluster-services, value: "large:64512:1:1"}
  - {name: no-export-please, value: "65535:65281"}
`

// bgpCommunities are the communities the advertisement asks for, as the
// routers show them (aliases resolved, sorted).
var bgpCommunities = []string{"64512:100", "65535:65281", "large:64512:1:1", "large:64512:2:3"}

// applyAdvertisement applies the BGPAdvertisement of the routed pool,
// with the suite's localPref.
func (s *bgpSuite) applyAdvertisement(t testing.TB) {
	t.Helper()
	y := `
apiVersion: ironlb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: ironlb-system}
spec:
  ipAddressPools: [routed]
  communities: ["64512:100", "large:64512:2:3", cluster-services, no-export-please]
`
	if s.localPref != 0 {
		y += fmt.Sprintf("  localPref: %d\n", s.localPref)
	}
	if err := s.l.Apply(s.ctx, y); err != nil {
		t.Fatal(err)
	}
}

// applyPeers applies the two BGPPeers in full (server-side apply drops
// the fields an applier leaves out): frr, with FRR's password Secret, and
// bird.
func (s *bgpSuite) applyPeers(t testing.TB) {
	t.Helper()
	l := s.l
	var docs []string
	for _, p := range []struct {
		name     string
		addr     netip.Addr
		asn      uint32
		password bool
	}{
		{"frr", l.FRR.IPv4, s.frrASN, true},
		{"bird", l.BIRD.IPv4, l.BIRD.Config.ASN, false},
	} {
		d := fmt.Sprintf(`apiVersion: ironlb.io/v1beta1
kind: BGPPeer
metadata: {name: %s, namespace: ironlb-system}
spec:
  myASN: %d
  peerASN: %d
  peerAddress: "%s"
  holdTime: %s
  keepaliveTime: 1s
  connectTime: 1s
  enableGracefulRestart: %t
`, p.name, bgpNodeASN, p.asn, p.addr, bgpHoldTime, s.gracefulRestart)
		if p.password {
			d += "  passwordSecret: {name: frr-password}\n"
		}
		docs = append(docs, d)
	}
	if err := l.Apply(s.ctx, strings.Join(docs, "---\n")); err != nil {
		t.Fatal(err)
	}
}

// setPassword writes FRR's password Secret.
func (s *bgpSuite) setPassword(t testing.TB, password string) {
	t.Helper()
	secrets := s.l.Clientset.CoreV1().Secrets(bgpNamespace)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "frr-password", Namespace: bgpNamespace},
		Type:       corev1.SecretTypeBasicAuth,
		Data:       map[string][]byte{"password": []byte(password)},
	}
	_, err := secrets.Update(s.ctx, sec, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = secrets.Create(s.ctx, sec, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("write FRR's password Secret: %v", err)
	}
}

// wrongPassword: with a wrong MD5 password FRR never establishes a
// session, while BIRD (no password) does.
func (s *bgpSuite) wrongPassword(t *testing.T) {
	l := s.l
	bgpEventually(t, s.ctx, 30*time.Second, "every BIRD session Established", func(ctx context.Context) (bool, string, error) {
		ss, err := l.BIRD.Sessions(ctx)
		return s.allEstablished(ss), fmt.Sprint(ss), err
	})
	// The speakers dial every second (connectTime): watch FRR for a few
	// hold times.
	deadline := time.Now().Add(3 * bgpHoldTime)
	for time.Now().Before(deadline) {
		ss, err := l.FRR.Sessions(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ses := range ss {
			if ses.State == lab.Established {
				t.Fatalf("FRR established a session with %s although the speaker's MD5 password is wrong", ses.Peer)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, ses := range s.peerStatus(t, "frr").Sessions {
		if ses.State == ironlbv1beta1.BGPSessionEstablished {
			t.Errorf("BGPPeer frr reports node %s Established with a wrong password", ses.Node)
		}
	}
}

// sessionsEstablish: once the Secret holds FRR's password, every node
// holds a session with FRR and BIRD, IPv4 and IPv6, and every BGPPeer's
// status says Established for every node.
func (s *bgpSuite) sessionsEstablish(t *testing.T) {
	l := s.l
	s.setPassword(t, bgpPassword)
	bgpEventually(t, s.ctx, 30*time.Second, "every FRR session Established", func(ctx context.Context) (bool, string, error) {
		ss, err := l.FRR.Sessions(ctx)
		return s.allEstablished(ss), fmt.Sprint(ss), err
	})
	ss, err := l.BIRD.Sessions(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !s.allEstablished(ss) {
		t.Errorf("BIRD's sessions: %v, want one Established with each node's IPv4 address", ss)
	}
	var wantNodes []string
	for _, n := range l.Nodes {
		wantNodes = append(wantNodes, n.Name)
	}
	for _, peer := range []string{"frr", "bird"} {
		bgpEventually(t, s.ctx, 15*time.Second, "BGPPeer "+peer+" status Established on every node", func(ctx context.Context) (bool, string, error) {
			st := s.peerStatus(t, peer)
			var up []string
			for _, ses := range st.Sessions {
				if ses.State == ironlbv1beta1.BGPSessionEstablished && ses.Since != nil {
					up = append(up, ses.Node)
				}
			}
			slices.Sort(up)
			return slices.Equal(up, wantNodes), fmt.Sprintf("%+v", st.Sessions), nil
		})
	}
}

// routesWithECMP: a dual-stack Service of the routed pool reaches FRR and
// BIRD as a /32 and a /128 with a path from every node, FRR and BIRD
// install them with a next hop per node, and the routed client reaches
// the Service through FRR over both families. It returns the Service's
// addresses.
func (s *bgpSuite) routesWithECMP(t *testing.T) []netip.Addr {
	l, ctx := s.l, s.ctx
	ips := s.createService(t, "web", "web", corev1.ServiceExternalTrafficPolicyCluster)
	v4, v6 := bgpHost(ips[0]), bgpHost(ips[1])
	var nodes4, nodes6 []netip.Addr
	for _, n := range l.Nodes {
		nodes4 = append(nodes4, n.IPv4)
		nodes6 = append(nodes6, n.IPv6)
	}
	s.waitNextHops(t, v4, nodes4)
	s.waitNextHops(t, v6, nodes6)
	// FRR and BIRD install one kernel route with a next hop per node (FRR
	// gives IPv6 next hops as link-local addresses: count them).
	for _, r := range []struct {
		name   string
		routes func(context.Context) ([]lab.KernelRoute, error)
	}{{"FRR", l.FRR.KernelRoutes}, {"BIRD", l.BIRD.KernelRoutes}} {
		bgpEventually(t, ctx, 10*time.Second, r.name+" installs both routes with ECMP", func(ctx context.Context) (bool, string, error) {
			krs, err := r.routes(ctx)
			if err != nil {
				return false, "", err
			}
			n4, n6 := bgpKernelNextHops(krs, v4), bgpKernelNextHops(krs, v6)
			return len(n4) == len(nodes4) && len(n6) == len(nodes6) && slices.Equal(n4, nodes4),
				fmt.Sprintf("%s via %v, %s via %v", v4, n4, v6, n6), nil
		})
	}
	for _, ip := range ips {
		a := s.waitCurl(t, ip)
		t.Logf("routed client reached %s: answered by %s", ip, a.Pod)
	}
	return ips
}

// communities: FRR and BIRD see the advertisement's standard and large
// communities, the Community aliases resolved, on every path.
func (s *bgpSuite) communities(t *testing.T, web []netip.Addr) {
	for _, ip := range web {
		p := bgpHost(ip)
		rt, ok, err := s.l.FRR.Route(s.ctx, p)
		if err != nil || !ok {
			t.Fatalf("FRR's route to %s: %v, %v", p, ok, err)
		}
		birdRoutes, err := s.l.BIRD.Routes(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		brt, _ := bgpFind(birdRoutes, p)
		for router, paths := range map[string][]lab.Path{"FRR": rt.Paths, "BIRD": brt.Paths} {
			if len(paths) != len(s.l.Nodes) {
				t.Errorf("%s has %d paths to %s, want %d", router, len(paths), p, len(s.l.Nodes))
			}
			for _, path := range paths {
				if diff := cmp.Diff(bgpCommunities, path.Communities); diff != "" {
					t.Errorf("%s: communities of %s from %s (-want +got):\n%s", router, p, path.Peer, diff)
				}
				if path.ASPath != fmt.Sprint(bgpNodeASN) {
					t.Errorf("%s: AS path of %s from %s = %q, want %d", router, p, path.Peer, path.ASPath, bgpNodeASN)
				}
			}
		}
	}
}

// ipv6Session: a BGPPeer to BIRD's IPv6 address, for node1 only, opens
// that one session, over which both of a Service's routes reach BIRD (the
// IPv4 one with node1's IPv4 address as next hop); deleting the BGPPeer
// closes it and withdraws those paths. The other sessions stay up
// throughout.
func (s *bgpSuite) ipv6Session(t *testing.T, web []netip.Addr) {
	l, ctx := s.l, s.ctx
	n1 := l.Nodes[0]
	since := s.sessionsSince(t)
	if err := l.Apply(ctx, fmt.Sprintf(`apiVersion: ironlb.io/v1beta1
kind: BGPPeer
metadata: {name: bird6, namespace: ironlb-system}
spec:
  myASN: %d
  peerASN: %d
  peerAddress: "%s"
  holdTime: %s
  keepaliveTime: 1s
  connectTime: 1s
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: %s}}]
`, bgpNodeASN, l.BIRD.Config.ASN, l.BIRD.IPv6, bgpHoldTime, n1.Name)); err != nil {
		t.Fatal(err)
	}
	// viaIPv6Session returns the next hops of BIRD's paths to p learned
	// over node1's IPv6 session.
	viaIPv6Session := func(ctx context.Context, p netip.Prefix) ([]netip.Addr, error) {
		routes, err := l.BIRD.Routes(ctx)
		if err != nil {
			return nil, err
		}
		rt, _ := bgpFind(routes, p)
		var nhs []netip.Addr
		for _, path := range rt.Paths {
			if path.Peer == n1.IPv6 {
				nhs = append(nhs, path.NextHop)
			}
		}
		return nhs, nil
	}
	v4, v6 := bgpHost(web[0]), bgpHost(web[1])
	bgpEventually(t, ctx, 30*time.Second, "both routes over node1's IPv6 session to BIRD", func(ctx context.Context) (bool, string, error) {
		nh4, err := viaIPv6Session(ctx, v4)
		if err != nil {
			return false, "", err
		}
		nh6, err := viaIPv6Session(ctx, v6)
		return slices.Equal(nh4, []netip.Addr{n1.IPv4}) && slices.Equal(nh6, []netip.Addr{n1.IPv6}),
			fmt.Sprintf("%s via %v, %s via %v", v4, nh4, v6, nh6), err
	})
	bgpEventually(t, ctx, 15*time.Second, "BGPPeer bird6 status: node1 alone, Established", func(ctx context.Context) (bool, string, error) {
		st := s.peerStatus(t, "bird6")
		return len(st.Sessions) == 1 && st.Sessions[0].Node == n1.Name && st.Sessions[0].State == ironlbv1beta1.BGPSessionEstablished,
			fmt.Sprint(st.Sessions), nil
	})
	birdSessions, err := l.BIRD.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ses := range birdSessions {
		if ses.Peer.Is6() && ses.Peer != n1.IPv6 && ses.State == lab.Established {
			t.Errorf("BIRD established an IPv6 session with %s, which bird6's nodeSelectors leave out", ses.Peer)
		}
	}

	if err := l.Client.Delete(ctx, &ironlbv1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "bird6", Namespace: bgpNamespace}}); err != nil {
		t.Fatal(err)
	}
	bgpEventually(t, ctx, 15*time.Second, "node1's IPv6 session to BIRD closed, its paths gone", func(ctx context.Context) (bool, string, error) {
		ss, err := l.BIRD.Sessions(ctx)
		if err != nil {
			return false, "", err
		}
		for _, ses := range ss {
			if ses.Peer == n1.IPv6 && ses.State == lab.Established {
				return false, fmt.Sprint(ss), nil
			}
		}
		nh4, err := viaIPv6Session(ctx, v4)
		if err != nil {
			return false, "", err
		}
		nh6, err := viaIPv6Session(ctx, v6)
		return len(nh4) == 0 && len(nh6) == 0, fmt.Sprintf("%v %v", nh4, nh6), err
	})
	if diff := cmp.Diff(since, s.sessionsSince(t)); diff != "" {
		t.Errorf("the frr and bird sessions restarted while bird6 came and went (-before +after):\n%s", diff)
	}
}

// sessionsSince returns, for the frr and bird BGPPeers, when each node's
// session was established, as their status says.
func (s *bgpSuite) sessionsSince(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, peer := range []string{"frr", "bird"} {
		for _, ses := range s.peerStatus(t, peer).Sessions {
			since := "never"
			if ses.Since != nil {
				since = ses.Since.UTC().Format(time.RFC3339)
			}
			out[peer+"/"+ses.Node] = string(ses.State) + " since " + since
		}
	}
	return out
}

// localEndpoints: a Service with externalTrafficPolicy Local is
// advertised only by the nodes holding a ready endpoint, and its next
// hops follow the endpoints as pods turn unready and start elsewhere. It
// returns the Service's addresses.
func (s *bgpSuite) localEndpoints(t *testing.T) []netip.Addr {
	l, ctx := s.l, s.ctx
	pods, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "local"}, Nodes: []string{"node1", "node2"}})
	if err != nil {
		t.Fatal(err)
	}
	ips := s.createService(t, "local", "local", corev1.ServiceExternalTrafficPolicyLocal)
	v4, v6 := bgpHost(ips[0]), bgpHost(ips[1])
	n1, n2, n3 := l.Nodes[0], l.Nodes[1], l.Nodes[2]
	s.waitNextHops(t, v4, []netip.Addr{n1.IPv4, n2.IPv4})
	s.waitNextHops(t, v6, []netip.Addr{n1.IPv6, n2.IPv6})
	s.waitCurl(t, ips[0])
	for range 4 {
		a, err := l.RoutedClient.Curl(ctx, ips[0], 80)
		if err != nil {
			t.Errorf("routed client: %v", err)
		} else if a.Node == n3.Name || a.From.Addr() != l.RoutedClient.IPv4 {
			t.Errorf("answer %q: want a pod on node1 or node2 that sees the routed client %s", a.Body, l.RoutedClient.IPv4)
		}
	}

	// node2's pod turns unready: node2 withdraws.
	var pod2 *lab.Pod
	for _, p := range pods {
		if p.Node == n2 {
			pod2 = p
		}
	}
	pod2.SetReady(false)
	s.waitNextHops(t, v4, []netip.Addr{n1.IPv4})
	s.waitNextHops(t, v6, []netip.Addr{n1.IPv6})
	// A pod starts on node3: node3 advertises.
	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "local"}, Nodes: []string{"node3"}}); err != nil {
		t.Fatal(err)
	}
	s.waitNextHops(t, v4, []netip.Addr{n1.IPv4, n3.IPv4})
	s.waitNextHops(t, v6, []netip.Addr{n1.IPv6, n3.IPv6})
	// node2's pod is ready again.
	pod2.SetReady(true)
	s.waitNextHops(t, v4, []netip.Addr{n1.IPv4, n2.IPv4, n3.IPv4})
	return ips
}

// withdraw: deleting a Service withdraws its routes from FRR's and
// BIRD's BGP tables and kernels; the other Service's routes stay.
func (s *bgpSuite) withdraw(t *testing.T, local []netip.Addr) {
	l, ctx := s.l, s.ctx
	if err := l.Clientset.CoreV1().Services("default").Delete(ctx, "local", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range local {
		s.waitNextHops(t, bgpHost(ip), nil)
	}
	for _, r := range []struct {
		name   string
		routes func(context.Context) ([]lab.KernelRoute, error)
	}{{"FRR", l.FRR.KernelRoutes}, {"BIRD", l.BIRD.KernelRoutes}} {
		bgpEventually(t, ctx, 5*time.Second, r.name+" removes the kernel routes", func(ctx context.Context) (bool, string, error) {
			krs, err := r.routes(ctx)
			if err != nil {
				return false, "", err
			}
			left := 0
			for _, ip := range local {
				if bgpKernelNextHops(krs, bgpHost(ip)) != nil {
					left++
				}
			}
			// web's two routes stay.
			return left == 0 && len(krs) == 2, fmt.Sprint(krs), nil
		})
	}
}

// gracefulRestartStep: with graceful restart on, FRR keeps a restarting
// speaker's paths (stale) while the speaker is down and takes fresh ones
// once it is back; the kernel route keeps every next hop throughout.
func (s *bgpSuite) gracefulRestartStep(t *testing.T, web []netip.Addr) {
	l, ctx := s.l, s.ctx
	s.gracefulRestart = true
	s.applyPeers(t)
	n1 := l.Nodes[0]
	// The sessions restart with the capability: wait until FRR knows that
	// node1 can restart, and the routes are back.
	bgpEventually(t, ctx, 30*time.Second, "FRR sees node1's graceful restart capability", func(ctx context.Context) (bool, string, error) {
		mode, err := s.frrRemoteGRMode(ctx, n1.IPv4)
		return mode == "Restart", mode, err
	})
	v4 := bgpHost(web[0])
	var nodes4 []netip.Addr
	for _, n := range l.Nodes {
		nodes4 = append(nodes4, n.IPv4)
	}
	s.waitNextHops(t, v4, nodes4)
	bgpEventually(t, ctx, 10*time.Second, "no stale path", func(ctx context.Context) (bool, string, error) {
		paths, err := s.frrPaths(ctx, v4)
		return !bgpAnyStale(paths), fmt.Sprint(paths), err
	})

	type sample struct {
		at       time.Duration
		present  bool
		stale    bool
		kernelNH int
	}
	var (
		mu      sync.Mutex
		samples []sample
	)
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			paths, err := s.frrPaths(ctx, v4)
			if err != nil {
				continue
			}
			krs, _ := l.FRR.KernelRoutes(ctx)
			smp := sample{at: time.Since(start), kernelNH: len(bgpKernelNextHops(krs, v4))}
			for _, p := range paths {
				if p.peer == n1.IPv4 {
					smp.present, smp.stale = true, p.stale
				}
			}
			mu.Lock()
			samples = append(samples, smp)
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	})
	_, err := n1.RestartSpeaker(ctx)
	if err != nil {
		close(done)
		wg.Wait()
		t.Fatal(err)
	}
	restarted := time.Since(start)
	// Fresh again: the restarted speaker re-established and sent its
	// routes (and End-of-RIB).
	bgpEventually(t, ctx, 30*time.Second, "node1's path fresh again", func(ctx context.Context) (bool, string, error) {
		paths, err := s.frrPaths(ctx, v4)
		for _, p := range paths {
			if p.peer == n1.IPv4 && !p.stale {
				return len(paths) == len(l.Nodes), fmt.Sprint(paths), err
			}
		}
		return false, fmt.Sprint(paths), err
	})
	fresh := time.Since(start)
	close(done)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	staleSeen := 0
	for _, smp := range samples {
		if !smp.present || smp.kernelNH != len(l.Nodes) {
			t.Errorf("at %v FRR's path from node1 present=%t, kernel next hops %d: want the path kept and %d next hops during a graceful restart",
				smp.at.Round(time.Millisecond), smp.present, smp.kernelNH, len(l.Nodes))
		}
		if smp.stale {
			staleSeen++
		}
	}
	if staleSeen == 0 {
		t.Errorf("FRR never marked node1's path stale in %d samples: the restart went unnoticed, so this step proves nothing", len(samples))
	}
	t.Logf("speaker restarted after %v; path fresh after %v; %d of %d samples stale",
		restarted.Round(time.Millisecond), fresh.Round(time.Millisecond), staleSeen, len(samples))
}

// iBGPLocalPref: FRR restarts as AS 64512 (iBGP with the nodes); once the
// BGPPeers say so too, the sessions come back, the routes are advertised
// again, and FRR sees the advertisement's localPref, which BIRD (eBGP)
// never gets.
func (s *bgpSuite) iBGPLocalPref(t *testing.T, web []netip.Addr) {
	l, ctx := s.l, s.ctx
	s.localPref = 250
	s.applyAdvertisement(t)
	if err := l.FRR.Reconfigure(ctx, lab.RouterConfig{ASN: bgpNodeASN, NodeASN: bgpNodeASN, Password: bgpPassword}); err != nil {
		t.Fatal(err)
	}
	s.frrASN = bgpNodeASN
	s.applyPeers(t)
	bgpEventually(t, ctx, 30*time.Second, "every FRR session Established again", func(ctx context.Context) (bool, string, error) {
		ss, err := l.FRR.Sessions(ctx)
		return s.allEstablished(ss), fmt.Sprint(ss), err
	})
	for _, ip := range web {
		p := bgpHost(ip)
		bgpEventually(t, ctx, 15*time.Second, fmt.Sprintf("FRR's iBGP paths to %s with localPref 250", p), func(ctx context.Context) (bool, string, error) {
			paths, err := s.frrPaths(ctx, p)
			ok := len(paths) == len(l.Nodes)
			for _, path := range paths {
				// FRR calls an empty AS path "Local".
				ok = ok && path.localPref == 250 && (path.asPath == "" || path.asPath == "Local")
			}
			if !ok {
				ss, _ := l.FRR.Sessions(ctx)
				return false, fmt.Sprintf("%v; FRR's sessions %v", paths, ss), err
			}
			return ok, fmt.Sprint(paths), err
		})
	}
	out, err := l.BIRD.CLI(ctx, "show route all "+bgpHost(web[0]).String())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "local_pref: 250") {
		t.Errorf("BIRD (eBGP) got the iBGP localPref:\n%s", out)
	}
}

// killNode: a dead node's paths leave FRR and BIRD after the hold time, a
// crashed speaker's at once; the other nodes' stay.
func (s *bgpSuite) killNode(t *testing.T, web []netip.Addr) {
	l, ctx := s.l, s.ctx
	n3 := l.Nodes[2]
	// With graceful restart the routers would keep a dead node's paths
	// for the restart time (RFC 4724; FRR also on hold timer expiry, RFC
	// 8538): turn it off first.
	s.gracefulRestart = false
	s.applyPeers(t)
	bgpEventually(t, ctx, 30*time.Second, "FRR sees node3 without graceful restart", func(ctx context.Context) (bool, string, error) {
		mode, err := s.frrRemoteGRMode(ctx, n3.IPv4)
		return mode != "Restart" && mode != "", mode, err
	})
	v4, v6 := bgpHost(web[0]), bgpHost(web[1])
	var all4, all6 []netip.Addr
	for _, n := range l.Nodes {
		all4, all6 = append(all4, n.IPv4), append(all6, n.IPv6)
	}
	s.waitNextHops(t, v4, all4)
	s.waitNextHops(t, v6, all6)
	bgpEventually(t, ctx, 10*time.Second, "FRR sees node3 without graceful restart", func(ctx context.Context) (bool, string, error) {
		paths, err := s.frrPaths(ctx, v4)
		return len(paths) == len(l.Nodes) && !bgpAnyStale(paths), fmt.Sprint(paths), err
	})

	// node3 dies: its link goes down first, so no FIN reaches the
	// routers (lab.Node.Kill kills the speaker first, whose kernel then
	// closes the sessions at once) and only the hold timer tells them.
	killed, err := n3.LinkDown(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n3.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	s.waitNextHops(t, v4, []netip.Addr{l.Nodes[0].IPv4, l.Nodes[1].IPv4})
	s.waitNextHops(t, v6, []netip.Addr{l.Nodes[0].IPv6, l.Nodes[1].IPv6})
	gone := time.Since(killed)
	if gone > 3*bgpHoldTime || gone < bgpHoldTime/3 {
		t.Errorf("node3's paths left %v after it died, want within the hold time %v (plus polling)", gone, bgpHoldTime)
	}
	t.Logf("node3's paths gone from FRR and BIRD %v after its link went down (hold time %v)", gone.Round(time.Millisecond), bgpHoldTime)
	bgpEventually(t, ctx, 10*time.Second, "BIRD's kernel route without node3", func(ctx context.Context) (bool, string, error) {
		krs, err := l.BIRD.KernelRoutes(ctx)
		nh := bgpKernelNextHops(krs, v4)
		return slices.Equal(nh, []netip.Addr{l.Nodes[0].IPv4, l.Nodes[1].IPv4}), fmt.Sprint(nh), err
	})
	// Without a kubelet nothing marks node3's pods unready, which the
	// cluster would do for a dead node; until then the kube-proxy
	// stand-in may still send a connection to them.
	for _, p := range l.Pods() {
		if p.Node == n3 {
			p.SetReady(false)
		}
	}
	if a := s.waitCurl(t, web[0]); a.Node == n3.Name {
		t.Errorf("routed client after node3 died was answered by node3: %+v", a)
	}

	// node2's speaker crashes, its node stays up: its kernel closes the
	// sessions, and without graceful restart the routers drop its paths
	// at once.
	crashed := time.Now()
	if err := l.Nodes[1].Speaker().Kill(); err != nil {
		t.Fatal(err)
	}
	s.waitNextHops(t, v4, []netip.Addr{l.Nodes[0].IPv4})
	s.waitNextHops(t, v6, []netip.Addr{l.Nodes[0].IPv6})
	t.Logf("node2's paths gone %v after its speaker crashed", time.Since(crashed).Round(time.Millisecond))
	if d := time.Since(crashed); d >= bgpHoldTime {
		t.Errorf("node2's paths left %v after its speaker crashed, want before the hold time %v: the routers saw the sessions close", d, bgpHoldTime)
	}
	// The one live speaker removes the dead nodes' entries from the
	// BGPPeers' status.
	bgpEventually(t, ctx, 30*time.Second, "BGPPeer status with node1's sessions alone", func(ctx context.Context) (bool, string, error) {
		got := s.sessionsSince(t)
		_, frr := got["frr/node1"]
		_, bird := got["bird/node1"]
		return len(got) == 2 && frr && bird, fmt.Sprint(got), nil
	})
}

// apiServerDown stops the API server for 30 s while the routed client
// sends requests to web: the speakers keep their sessions and routes,
// and once the API server is back they advertise a Service created then.
func (s *bgpSuite) apiServerDown(t *testing.T, web []netip.Addr) {
	l, ctx := s.l, s.ctx
	prefixes := []netip.Prefix{bgpHost(web[0]), bgpHost(web[1])}
	before := map[netip.Prefix][2][]netip.Addr{}
	for _, p := range prefixes {
		frr, bird, err := s.nextHops(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(frr) == 0 || len(bird) == 0 {
			t.Fatalf("no path to %s before the outage: FRR %v, BIRD %v", p, frr, bird)
		}
		before[p] = [2][]netip.Addr{frr, bird}
	}
	var changed []string
	sent, failed := probeDuring(ctx, l.RoutedClient, web, func() {
		if err := l.StopAPIServer(5 * time.Second); err != nil {
			t.Error(err)
			return
		}
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
			for _, p := range prefixes {
				frr, bird, err := s.nextHops(ctx, p)
				if err != nil {
					t.Error(err)
					continue
				}
				if want := before[p]; !slices.Equal(frr, want[0]) || !slices.Equal(bird, want[1]) {
					changed = append(changed, fmt.Sprintf("%s: FRR %v, BIRD %v (before: %v, %v)", p, frr, bird, want[0], want[1]))
				}
			}
		}
		if err := l.StartAPIServer(ctx); err != nil {
			t.Error(err)
		}
	})
	t.Logf("routed client: %d requests during the outage, %d failed", sent, failed)
	if sent < 500 || failed > sent/100 {
		t.Errorf("%d of %d requests to %v failed while the API server was down", failed, sent, web)
	}
	for _, c := range changed {
		t.Errorf("paths changed while the API server was down: %s", c)
	}

	// A leader-elected controller exits when it cannot renew its lease;
	// the kubelet restarts it. The lab has no kubelet.
	if l.ControllerProcess().Exited() {
		t.Log("the controller lost its lease and exited; restarting it as the kubelet would")
		if _, err := l.RestartController(ctx); err != nil {
			t.Fatal(err)
		}
	}
	created := time.Now()
	svc := lbService("after-outage", "routed", "web", corev1.ServiceExternalTrafficPolicyCluster, corev1.IPFamilyPolicySingleStack)
	if _, err := l.Clientset.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 150*time.Second)
	defer cancel()
	ips, err := l.WaitServiceIP(wctx, "default", "after-outage", 1)
	if err != nil {
		t.Fatal(err)
	}
	want := before[prefixes[0]][0]
	bgpEventually(t, ctx, 150*time.Second, fmt.Sprintf("FRR's paths to %s, created after the outage, from %v", ips[0], want), func(ctx context.Context) (bool, string, error) {
		frr, _, err := s.nextHops(ctx, bgpHost(ips[0]))
		return slices.Equal(frr, want), fmt.Sprint(frr), err
	})
	t.Logf("%s created after the outage reached FRR %v after it was created", ips[0], time.Since(created).Round(time.Millisecond))
}

// waitCurl waits until the routed client reaches ip on port 80 (the
// lab's kube-proxy stand-in may follow a new Service a moment after the
// routers do) and returns the answer.
func (s *bgpSuite) waitCurl(t testing.TB, ip netip.Addr) lab.Answer {
	t.Helper()
	var a lab.Answer
	bgpEventually(t, s.ctx, 10*time.Second, "routed client reaches "+ip.String(), func(ctx context.Context) (bool, string, error) {
		var err error
		a, err = s.l.RoutedClient.Curl(ctx, ip, 80)
		return err == nil, a.Body, err
	})
	return a
}

// createService creates a dual-stack LoadBalancer Service of the routed
// pool selecting app=<app> and returns its addresses, IPv4 first.
func (s *bgpSuite) createService(t testing.TB, name, app string, policy corev1.ServiceExternalTrafficPolicy) []netip.Addr {
	t.Helper()
	svc := lbService(name, "routed", app, policy, corev1.IPFamilyPolicyRequireDualStack)
	if _, err := s.l.Clientset.CoreV1().Services("default").Create(s.ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	ips, err := s.l.WaitServiceIP(ctx, "default", name, 2)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ips, func(a, b netip.Addr) int { return bgpBool(b.Is4()) - bgpBool(a.Is4()) })
	return ips
}

// lbService returns a LoadBalancer Service in namespace default that
// takes its addresses from pool and port 80 to port 8080 of the pods
// labelled app.
func lbService(name, pool, app string, policy corev1.ServiceExternalTrafficPolicy, families corev1.IPFamilyPolicy) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "default",
			Annotations: map[string]string{"ironlb.io/address-pool": pool},
		},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: policy,
			IPFamilyPolicy:        &families,
			Selector:              map[string]string{"app": app},
			Ports:                 []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

func bgpBool(b bool) int {
	if b {
		return 1
	}
	return 0
}

// waitNextHops waits until FRR and BIRD both hold paths to p from exactly
// the nodes at want (sorted; none: no route at all).
func (s *bgpSuite) waitNextHops(t testing.TB, p netip.Prefix, want []netip.Addr) {
	t.Helper()
	bgpEventually(t, s.ctx, 30*time.Second, fmt.Sprintf("FRR's and BIRD's paths to %s from %v", p, want), func(ctx context.Context) (bool, string, error) {
		fromFRR, fromBIRD, err := s.nextHops(ctx, p)
		if err != nil {
			return false, "", err
		}
		ok := slices.Equal(fromFRR, want) && slices.Equal(fromBIRD, want)
		got := fmt.Sprintf("FRR %v, BIRD %v", fromFRR, fromBIRD)
		if len(fromFRR) > len(want) || len(fromBIRD) > len(want) {
			// More paths than nodes: show where they come from.
			af := "ipv4"
			if p.Addr().Is6() {
				af = "ipv6"
			}
			frrOut, _ := s.l.FRR.VTY(ctx, "show bgp "+af+" unicast "+p.String())
			birdOut, _ := s.l.BIRD.CLI(ctx, "show route all "+p.String())
			got += fmt.Sprintf("\nFRR:\n%s\nBIRD:\n%s", frrOut, birdOut)
		}
		return ok, got, nil
	})
}

// nextHops returns the next hops of FRR's and of BIRD's paths to p,
// sorted.
func (s *bgpSuite) nextHops(ctx context.Context, p netip.Prefix) (fromFRR, fromBIRD []netip.Addr, err error) {
	frr, err := s.frrPaths(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	for _, path := range frr {
		fromFRR = append(fromFRR, path.nextHop)
	}
	birdRoutes, err := s.l.BIRD.Routes(ctx)
	if err != nil {
		return nil, nil, err
	}
	if rt, ok := bgpFind(birdRoutes, p); ok {
		for _, path := range rt.Paths {
			fromBIRD = append(fromBIRD, path.NextHop)
		}
	}
	slices.SortFunc(fromFRR, netip.Addr.Compare)
	slices.SortFunc(fromBIRD, netip.Addr.Compare)
	return fromFRR, fromBIRD, nil
}

// frrPath is one of FRR's paths with the attributes lab.Path leaves out.
type frrPath struct {
	peer, nextHop netip.Addr
	stale         bool
	localPref     int
	asPath        string
}

func (p frrPath) String() string {
	return fmt.Sprintf("{from %s via %s stale=%t localPref=%d asPath=%q}", p.peer, p.nextHop, p.stale, p.localPref, p.asPath)
}

// frrPaths returns FRR's paths to p (`show bgp <family> unicast <p>
// json`).
func (s *bgpSuite) frrPaths(ctx context.Context, p netip.Prefix) ([]frrPath, error) {
	af := "ipv4"
	if p.Addr().Is6() {
		af = "ipv6"
	}
	out, err := s.l.FRR.VTY(ctx, "show bgp "+af+" unicast "+p.String()+" json")
	if err != nil {
		return nil, err
	}
	return parseFRRPaths(out)
}

func parseFRRPaths(out []byte) ([]frrPath, error) {
	var raw struct {
		Paths []struct {
			ASPath struct {
				String string `json:"string"`
			} `json:"aspath"`
			Stale    bool `json:"stale"`
			LocPrf   *int `json:"locPrf"`
			NextHops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
			Peer struct {
				PeerID string `json:"peerId"`
			} `json:"peer"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("parse FRR's route: %w\n%s", err, out)
	}
	var paths []frrPath
	for _, rp := range raw.Paths {
		p := frrPath{stale: rp.Stale, asPath: rp.ASPath.String, localPref: -1}
		p.peer, _ = netip.ParseAddr(rp.Peer.PeerID)
		if len(rp.NextHops) > 0 {
			p.nextHop, _ = netip.ParseAddr(rp.NextHops[0].IP)
		}
		if rp.LocPrf != nil {
			p.localPref = *rp.LocPrf
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func bgpAnyStale(paths []frrPath) bool {
	return slices.ContainsFunc(paths, func(p frrPath) bool { return p.stale })
}

// frrRemoteGRMode returns FRR's view of a neighbour's graceful restart
// mode ("Restart" once the neighbour announced it can restart).
func (s *bgpSuite) frrRemoteGRMode(ctx context.Context, peer netip.Addr) (string, error) {
	out, err := s.l.FRR.VTY(ctx, "show bgp neighbors "+peer.String()+" json")
	if err != nil {
		return "", err
	}
	var raw map[string]struct {
		GR struct {
			Remote string `json:"remoteGrMode"`
		} `json:"gracefulRestartInfo"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return "", fmt.Errorf("parse FRR's neighbour %s: %w", peer, err)
	}
	return raw[peer.String()].GR.Remote, nil
}

// peerStatus returns a BGPPeer's status.
func (s *bgpSuite) peerStatus(t testing.TB, name string) ironlbv1beta1.BGPPeerStatus {
	t.Helper()
	var p ironlbv1beta1.BGPPeer
	if err := s.l.Client.Get(s.ctx, client.ObjectKey{Namespace: bgpNamespace, Name: name}, &p); err != nil {
		t.Fatalf("get BGPPeer %s: %v", name, err)
	}
	return p.Status
}

// allEstablished reports whether a router's sessions with every node's
// IPv4 address are Established (a router lists a neighbour once per
// family).
func (s *bgpSuite) allEstablished(ss []lab.Session) bool {
	for _, n := range s.l.Nodes {
		seen := false
		for _, ses := range ss {
			if ses.Peer == n.IPv4 {
				if ses.State != lab.Established {
					return false
				}
				seen = true
			}
		}
		if !seen {
			return false
		}
	}
	return true
}

// bgpHost returns the host route to a.
func bgpHost(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// bgpFind returns the route to p among routes.
func bgpFind(routes []lab.Route, p netip.Prefix) (lab.Route, bool) {
	for _, r := range routes {
		if r.Prefix == p {
			return r, true
		}
	}
	return lab.Route{}, false
}

// bgpKernelNextHops returns the next hops of the kernel route to p
// (sorted), or nil.
func bgpKernelNextHops(krs []lab.KernelRoute, p netip.Prefix) []netip.Addr {
	for _, kr := range krs {
		if kr.Prefix == p {
			return kr.NextHops
		}
	}
	return nil
}

// bgpEventually polls check every 100 ms until it holds, failing the test
// with the last state it saw after timeout. The lab shares its machine:
// the timeouts are generous, and what a step measures it logs.
func bgpEventually(t testing.TB, ctx context.Context, timeout time.Duration, what string, check func(context.Context) (bool, string, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var last string
	var lastErr error
	for polls := 1; ; polls++ {
		ok, got, err := check(ctx)
		if ok && err == nil {
			return
		}
		if err != nil && ctx.Err() == nil {
			lastErr = err
		} else if err == nil {
			last = got
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not after %v (%d polls); last saw %s (last error %v)", what, time.Since(start).Round(time.Millisecond), polls, last, lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// bgpLatencyRounds is how many Services each iteration of
// BenchmarkBGPRouteLatency creates and deletes, one after the other.
const bgpLatencyRounds = 15

// BenchmarkBGPRouteLatency measures, for Services created and deleted one
// at a time on a lab of three nodes: Service created → its /32 in FRR's
// and in BIRD's kernel table, and Service deleted → the route gone from
// both, as `ip monitor route` in each router's namespace timestamps them.
// The whole path counts: the controller assigns the IP, the speakers
// advertise, the routers install. It reports the medians (figures, not
// limits):
//
//	IRONLB_REQUIRE_E2E=1 go test -run '^$' -bench BGPRouteLatency -benchtime 1x ./e2etest/
func BenchmarkBGPRouteLatency(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l := lab.New(b, lab.Config{Nodes: 3, FRR: &lab.RouterConfig{Password: bgpPassword}})
	s := &bgpSuite{l: l, ctx: ctx, frrASN: l.FRR.Config.ASN}
	s.install(b)
	s.setPassword(b, bgpPassword)
	for _, r := range []struct {
		name     string
		sessions func(context.Context) ([]lab.Session, error)
	}{{"FRR", l.FRR.Sessions}, {"BIRD", l.BIRD.Sessions}} {
		bgpEventually(b, ctx, time.Minute, r.name+"'s sessions Established", func(ctx context.Context) (bool, string, error) {
			ss, err := r.sessions(ctx)
			return s.allEstablished(ss), fmt.Sprint(ss), err
		})
	}
	frrMon, err := l.FRR.Monitor(ctx)
	if err != nil {
		b.Fatal(err)
	}
	birdMon, err := l.BIRD.Monitor(ctx)
	if err != nil {
		b.Fatal(err)
	}
	svcs := l.Clientset.CoreV1().Services("default")
	var assigned, addFRR, addBIRD, delFRR, delBIRD []time.Duration
	k := 0
	b.ResetTimer()
	for range b.N {
		for range bgpLatencyRounds {
			k++
			name := fmt.Sprintf("latency-%d", k)
			fromFRR, fromBIRD := frrMon.Len(), birdMon.Len()
			created := time.Now()
			if _, err := svcs.Create(ctx, lbService(name, "routed", "web", corev1.ServiceExternalTrafficPolicyCluster, corev1.IPFamilyPolicySingleStack), metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			ips, err := l.WaitServiceIP(ctx, "default", name, 1)
			if err != nil {
				b.Fatal(err)
			}
			assigned = append(assigned, time.Since(created))
			ip := ips[0].String()
			addFRR = append(addFRR, bgpEventAfter(b, ctx, frrMon, fromFRR, created, lab.Mentions(false, ip)))
			addBIRD = append(addBIRD, bgpEventAfter(b, ctx, birdMon, fromBIRD, created, lab.Mentions(false, ip)))

			fromFRR, fromBIRD = frrMon.Len(), birdMon.Len()
			deleted := time.Now()
			if err := svcs.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				b.Fatal(err)
			}
			delFRR = append(delFRR, bgpEventAfter(b, ctx, frrMon, fromFRR, deleted, lab.Mentions(true, ip)))
			delBIRD = append(delBIRD, bgpEventAfter(b, ctx, birdMon, fromBIRD, deleted, lab.Mentions(true, ip)))
		}
	}
	b.StopTimer()
	for _, m := range []struct {
		unit string
		ds   []time.Duration
	}{
		{"ms-p50-ip-assigned", assigned},
		{"ms-p50-created-to-frr-kernel", addFRR},
		{"ms-p50-created-to-bird-kernel", addBIRD},
		{"ms-p50-deleted-to-frr-gone", delFRR},
		{"ms-p50-deleted-to-bird-gone", delBIRD},
	} {
		b.ReportMetric(bgpMedianMS(m.ds), m.unit)
	}
	b.Logf("created → FRR kernel %v; → BIRD kernel %v; deleted → FRR gone %v; → BIRD gone %v",
		bgpRoundAll(addFRR), bgpRoundAll(addBIRD), bgpRoundAll(delFRR), bgpRoundAll(delBIRD))
}

// bgpEventAfter waits (30 s at most) for the first event of m at index
// from or later that match accepts, and returns how long after since it
// came.
func bgpEventAfter(b *testing.B, ctx context.Context, m *lab.Monitor, from int, since time.Time, match func(lab.Event) bool) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ev, err := m.Wait(ctx, from, match)
	if err != nil {
		b.Fatal(err)
	}
	return ev.Time.Sub(since)
}

// bgpMedianMS returns the median of ds in milliseconds.
func bgpMedianMS(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	mid := s[len(s)/2]
	if len(s)%2 == 0 {
		mid = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return float64(mid) / float64(time.Millisecond)
}

func bgpRoundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// BenchmarkBGPTenThousand advertises 10,000 Service IPs (or
// $IRONLB_BENCH_BGP_SERVICES) from a lab of two nodes to FRR and BIRD,
// and reports (figures, not limits):
//
//   - s-advertised-to-frr-table: with every Service holding its IP and
//     its endpoints in the speakers' caches and the lab's kube-proxy
//     stand-in done writing their rules, from the BGPAdvertisement of
//     their pool created until FRR's BGP table holds every IP from every
//     node; s-advertised-to-frr-kernel and s-advertised-to-bird-table the
//     same for FRR's kernel table and BIRD's table;
//   - s-unadvertised-to-frr-empty and s-unadvertised-to-bird-empty: from
//     the BGPAdvertisement deleted until no route is left;
//   - MiB-speaker-rss: the largest speaker's resident memory with every
//     IP advertised on its two sessions;
//   - s-speaker-stop: a speaker advertising every IP, from SIGTERM until
//     it has exited; s-speaker-stop-to-frr: until FRR holds none of its
//     paths;
//   - s-speaker-start-to-frr-table: from the speaker started again (its
//     cache empty, its sessions down) until FRR holds every path again;
//   - s-deleted-to-frr-empty and s-deleted-to-bird-empty: from the last
//     Service deleted until no route is left.
//
// Set IRONLB_BENCH_PROFILES to a directory to keep a speaker's CPU
// profile of the 10 s from the advertisement, its heap profile with every
// IP advertised, and a goroutine dump of the stopping speaker if it takes
// more than 2 s.
//
// The IPs are IPv6 (the documentation ranges hold only 512 IPv4
// addresses), each Service with a pod on every node so that every node
// advertises it:
//
//	IRONLB_REQUIRE_E2E=1 go test -run '^$' -bench BGPTenThousand -benchtime 1x -timeout 60m ./e2etest/
func BenchmarkBGPTenThousand(b *testing.B) {
	n := 10000
	if v := os.Getenv("IRONLB_BENCH_BGP_SERVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 65536 {
			b.Fatalf("IRONLB_BENCH_BGP_SERVICES=%q: want 1 to 65536", v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	l := lab.New(b, lab.Config{Nodes: 2, FRR: &lab.RouterConfig{Password: bgpPassword}})
	// The speakers log at info, as installed: the lab's debug level logs
	// a line for every one of 10,000 routes and events.
	s := &bgpSuite{l: l, ctx: ctx, frrASN: l.FRR.Config.ASN, speakerArgs: []string{"--log-level=info"}}
	s.install(b)
	keepController(b, ctx, l)
	s.setPassword(b, bgpPassword)
	// The lab's FRR logs every UPDATE it receives, for the tests that
	// read its log; a production router does not, and at 20,000 UPDATEs
	// the logging would be most of FRR's work.
	if _, err := l.FRR.VTY(ctx, "no debug bgp updates"); err != nil {
		b.Fatal(err)
	}
	if err := l.Apply(ctx, `
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: big, namespace: ironlb-system}
spec:
  addresses: [2001:db8:101::/112]
  autoAssign: false
`); err != nil {
		b.Fatal(err)
	}
	for _, r := range []struct {
		name     string
		sessions func(context.Context) ([]lab.Session, error)
	}{{"FRR", l.FRR.Sessions}, {"BIRD", l.BIRD.Sessions}} {
		bgpEventually(b, ctx, time.Minute, r.name+"'s sessions Established", func(ctx context.Context) (bool, string, error) {
			ss, err := r.sessions(ctx)
			return s.allEstablished(ss), fmt.Sprint(ss), err
		})
	}
	big := netip.MustParsePrefix("2001:db8:101::/112")
	svcs := l.Clientset.CoreV1().Services("default")
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("many-%05d", i)
	}
	all := bgpCounts{frrTable: n * len(l.Nodes), frrKernel: n, birdTable: n}
	none := bgpCounts{}

	for range b.N {
		// Every Service holds its IP and its endpoints before the
		// advertisement exists.
		created := createIPv6Services(b, ctx, l, "big", names)
		waitAssignedWithEndpoints(b, ctx, l, names)
		b.Logf("IPs assigned and EndpointSlices written %v after the last Service was created", time.Since(created).Round(time.Millisecond))
		settled := time.Now()
		if err := l.WaitProxyIdle(ctx, 5*time.Second); err != nil {
			b.Fatal(err)
		}
		b.Logf("the kube-proxy stand-in idle %v later", time.Since(settled).Round(time.Millisecond))
		time.Sleep(10 * time.Second) // the speakers' caches catch up
		adv := &ironlbv1beta1.BGPAdvertisement{
			ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: bgpNamespace},
			Spec:       ironlbv1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"big"}},
		}
		profiled := make(chan struct{})
		go func() {
			defer close(profiled)
			saveProfile(b, ctx, l.Nodes[0].SpeakerPprofURL()+"profile?seconds=10", "speaker-advertise-cpu.pb.gz")
		}()
		if err := l.Client.Create(ctx, adv); err != nil {
			b.Fatal(err)
		}
		times := bgpWaitCounts(b, ctx, s, big, time.Now(), all)
		<-profiled
		b.ReportMetric(times[0].Seconds(), "s-advertised-to-frr-table")
		b.ReportMetric(times[1].Seconds(), "s-advertised-to-frr-kernel")
		b.ReportMetric(times[2].Seconds(), "s-advertised-to-bird-table")
		var rss float64
		for _, node := range l.Nodes {
			rss = max(rss, bgpRSSMiB(node.Speaker().PID()))
		}
		b.ReportMetric(rss, "MiB-speaker-rss")
		saveProfile(b, ctx, l.Nodes[0].SpeakerPprofURL()+"heap", "speaker-heap.pb.gz")

		if err := l.Client.Delete(ctx, adv); err != nil {
			b.Fatal(err)
		}
		times = bgpWaitCounts(b, ctx, s, big, time.Now(), none)
		b.ReportMetric(times[0].Seconds(), "s-unadvertised-to-frr-empty")
		b.ReportMetric(times[2].Seconds(), "s-unadvertised-to-bird-empty")

		adv.ResourceVersion = ""
		if err := l.Client.Create(ctx, adv); err != nil {
			b.Fatal(err)
		}
		bgpWaitCounts(b, ctx, s, big, time.Now(), all)

		// A speaker advertising every IP stops and starts again.
		node := l.Nodes[len(l.Nodes)-1]
		sp := node.Speaker()
		stop := time.Now()
		if err := sp.Signal(syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		exited := make(chan time.Duration, 1)
		go func() {
			<-sp.Done()
			exited <- time.Since(stop)
		}()
		time.AfterFunc(2*time.Second, func() {
			if !sp.Exited() {
				saveProfile(b, ctx, node.SpeakerPprofURL()+"goroutine?debug=2", "speaker-stopping-goroutines.txt")
			}
		})
		half := bgpCounts{frrTable: n * (len(l.Nodes) - 1), frrKernel: anyCount, birdTable: anyCount}
		times = bgpWaitCounts(b, ctx, s, big, stop, half)
		b.ReportMetric(times[0].Seconds(), "s-speaker-stop-to-frr")
		if err := sp.Wait(time.Minute); err != nil {
			b.Fatalf("speaker of %s after SIGTERM: %v\n%s", node.Name, err, sp.Log())
		}
		b.ReportMetric((<-exited).Seconds(), "s-speaker-stop")
		start := time.Now()
		if _, err := node.StartSpeaker(ctx, s.speakerArgs...); err != nil {
			b.Fatal(err)
		}
		times = bgpWaitCounts(b, ctx, s, big, start, all)
		b.ReportMetric(times[0].Seconds(), "s-speaker-start-to-frr-table")

		start = time.Now()
		bgpParallel(b, names, func(name string) error {
			return svcs.Delete(ctx, name, metav1.DeleteOptions{})
		})
		deleted := time.Now()
		b.Logf("%d Services deleted in %v", n, deleted.Sub(start).Round(time.Millisecond))
		times = bgpWaitCounts(b, ctx, s, big, deleted, none)
		b.ReportMetric(times[0].Seconds(), "s-deleted-to-frr-empty")
		b.ReportMetric(times[2].Seconds(), "s-deleted-to-bird-empty")

		if err := l.Client.Delete(ctx, adv); err != nil {
			b.Fatal(err)
		}
	}
}

// saveProfile saves what url serves as file in $IRONLB_BENCH_PROFILES, if
// set: profiles of the speakers at the benchmark's interesting moments,
// for go tool pprof.
func saveProfile(b *testing.B, ctx context.Context, url, file string) {
	dir := os.Getenv("IRONLB_BENCH_PROFILES")
	if dir == "" {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		b.Error(err)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Logf("profile %s: %v", url, err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, file), body, 0o644)
	}
	if err != nil {
		b.Logf("profile %s: %v", url, err)
	}
}

// waitAssignedWithEndpoints waits until every named Service in default
// holds an IP and has an EndpointSlice.
func waitAssignedWithEndpoints(b *testing.B, ctx context.Context, l *lab.Lab, names []string) {
	b.Helper()
	want := map[string]bool{}
	for _, name := range names {
		want[name] = true
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	for {
		svcs, err := l.Clientset.CoreV1().Services("default").List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			b.Fatal(err)
		}
		assigned := 0
		for _, svc := range svcs.Items {
			if want[svc.Name] && len(svc.Status.LoadBalancer.Ingress) > 0 {
				assigned++
			}
		}
		eps, err := l.Clientset.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			b.Fatal(err)
		}
		sliced := map[string]bool{}
		for _, e := range eps.Items {
			if name := e.Labels[discoveryv1.LabelServiceName]; want[name] && len(e.Endpoints) > 0 {
				sliced[name] = true
			}
		}
		if assigned == len(names) && len(sliced) == len(names) {
			return
		}
		select {
		case <-ctx.Done():
			b.Fatalf("%d of %d Services assigned, %d with endpoints", assigned, len(names), len(sliced))
		case <-time.After(2 * time.Second):
		}
	}
}

// bgpCounts is how many routes the routers hold: paths FRR received
// (one per node and IP), routes into a prefix in FRR's kernel table,
// networks into it in BIRD's table.
type bgpCounts struct{ frrTable, frrKernel, birdTable int }

// anyCount in a wanted bgpCounts is not waited for.
const anyCount = -1

// bgpWaitCounts polls the routers until each count is the one want gives,
// and returns when each first was, after since (10 minutes at most). Each
// count is polled on its own, every 100 ms until it is reached, and each
// poll asks for a count only, never for the routes themselves: printing
// 20,000 paths would take FRR longer than installing them, and the
// pollers share the machine with what they measure.
func bgpWaitCounts(b *testing.B, ctx context.Context, s *bgpSuite, p netip.Prefix, since time.Time, want bgpCounts) [3]time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	counters := [3]struct {
		name  string
		want  int
		count func(context.Context) (int, error)
	}{
		{"FRR's table", want.frrTable, s.frrPathCount},
		{"FRR's kernel", want.frrKernel, func(ctx context.Context) (int, error) { return s.l.FRR.CountKernelRoutes(ctx, p) }},
		{"BIRD's table", want.birdTable, func(ctx context.Context) (int, error) { return s.birdNetworks(ctx, p) }},
	}
	var out [3]time.Duration
	var errs [3]error
	var wg sync.WaitGroup
	for i, c := range counters {
		if c.want == anyCount {
			continue
		}
		wg.Go(func() {
			var slowest time.Duration
			last := -1
			for {
				began := time.Now()
				n, err := c.count(ctx)
				if err != nil {
					errs[i] = fmt.Errorf("%s: %w", c.name, err)
					return
				}
				slowest, last = max(slowest, time.Since(began)), n
				if n == c.want {
					out[i] = time.Since(since)
					b.Logf("%s: %d after %v (slowest poll %v)", c.name, n, out[i].Round(time.Millisecond), slowest.Round(time.Millisecond))
					return
				}
				select {
				case <-ctx.Done():
					errs[i] = fmt.Errorf("%s: %d routes, never %d", c.name, last, c.want)
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		b.Fatal(err)
	}
	return out
}

// frrPathCount returns how many paths FRR received, from its session
// summary: the benchmark advertises nothing else.
func (s *bgpSuite) frrPathCount(ctx context.Context) (int, error) {
	sessions, err := s.l.FRR.Sessions(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ss := range sessions {
		n += max(ss.PrefixesReceived, 0)
	}
	return n, nil
}

// tableOf returns the BIRD table of p's family.
func tableOf(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "master4"
	}
	return "master6"
}

// birdNetworks returns how many networks into p BIRD's table holds.
func (s *bgpSuite) birdNetworks(ctx context.Context, p netip.Prefix) (int, error) {
	out, err := s.l.BIRD.CLI(ctx, "show route count where net ~ [ "+p.String()+"+ ]")
	if err != nil {
		return 0, err
	}
	// "N of M routes for K networks in table master6", a line per table,
	// then a total ("Total: ... in 2 tables") when there are several.
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 10 && f[4] == "for" && f[8] == "table" && f[9] == tableOf(p) {
			return strconv.Atoi(f[5])
		}
	}
	return 0, fmt.Errorf("no count of table %s in BIRD's answer %q", tableOf(p), out)
}

// bgpParallel runs do for every name, 32 at once, failing b on the first
// error.
func bgpParallel(b *testing.B, names []string, do func(string) error) {
	b.Helper()
	work := make(chan string)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for name := range work {
				if err := do(name); err != nil {
					select {
					case errs <- fmt.Errorf("%s: %w", name, err):
					default:
					}
				}
			}
		})
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

// bgpRSSMiB returns a process's resident memory in MiB, 0 if unknown.
func bgpRSSMiB(pid int) float64 { return procStatusMiB(pid, "VmRSS") }
