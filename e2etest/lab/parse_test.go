package lab

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

var addrs = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}, netip.AddrPort{})

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseFRRSummary(t *testing.T) {
	got, err := parseFRRSummary(readTestdata(t, "frr-summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Session{{Peer: netip.MustParseAddr("198.51.100.11"), State: Established, PrefixesReceived: 1}}
	if diff := cmp.Diff(want, got, addrs); diff != "" {
		t.Errorf("sessions (-want +got):\n%s", diff)
	}
}

func TestParseFRRRoutes(t *testing.T) {
	got, err := parseFRRRoutes(readTestdata(t, "frr-bgp-ipv4.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Paths: []Path{{NextHop: netip.MustParseAddr("0.0.0.0"), Best: true}}},
		{Prefix: netip.MustParsePrefix("203.0.113.5/32"), Paths: []Path{{
			NextHop: netip.MustParseAddr("198.51.100.11"), Peer: netip.MustParseAddr("198.51.100.11"), Best: true, ASPath: "64512",
		}}},
	}
	if diff := cmp.Diff(want, got, addrs); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
}

func TestParseBIRD(t *testing.T) {
	peers := map[string]netip.Addr{
		"node1_v4": netip.MustParseAddr("198.51.100.11"),
		"node2_v4": netip.MustParseAddr("198.51.100.12"),
	}
	sessions := parseBIRDProtocols(readTestdata(t, "bird-protocols.txt"), peers)
	wantSessions := []Session{{Peer: netip.MustParseAddr("198.51.100.11"), State: Established, PrefixesReceived: -1}}
	if diff := cmp.Diff(wantSessions, sessions, addrs); diff != "" {
		t.Errorf("sessions (-want +got):\n%s", diff)
	}
	routes, err := parseBIRDRoutes(readTestdata(t, "bird-routes.txt"), peers)
	if err != nil {
		t.Fatal(err)
	}
	// The static route is not from a node: left out.
	wantRoutes := []Route{{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Paths: []Path{
		{NextHop: netip.MustParseAddr("198.51.100.1"), Peer: netip.MustParseAddr("198.51.100.11"), Best: true, ASPath: "64500"},
		{NextHop: netip.MustParseAddr("198.51.100.12"), Peer: netip.MustParseAddr("198.51.100.12"), ASPath: "64500 64501",
			Communities: []string{"64512:100", "65535:65281", "large:64512:1:1"}},
	}}}
	if diff := cmp.Diff(wantRoutes, routes, addrs); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
}

func TestParseKernelRoutes(t *testing.T) {
	out := `[{"dst":"198.51.100.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"198.51.100.1","flags":[]},
{"dst":"203.0.113.5","nhid":6,"gateway":"198.51.100.11","dev":"eth0","protocol":"bgp","metric":20,"flags":[]},
{"dst":"203.0.113.9","protocol":"bird","flags":[],"nexthops":[{"gateway":"198.51.100.12","dev":"eth0","weight":1,"flags":[]},{"gateway":"198.51.100.11","dev":"eth0","weight":1,"flags":[]}]}]`
	got, err := parseKernelRoutes([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []KernelRoute{
		{Prefix: netip.MustParsePrefix("203.0.113.5/32"), NextHops: []netip.Addr{netip.MustParseAddr("198.51.100.11")}},
		{Prefix: netip.MustParsePrefix("203.0.113.9/32"), NextHops: []netip.Addr{netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("198.51.100.12")}},
	}
	if diff := cmp.Diff(want, got, addrs); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
}

func TestParseMonitorLine(t *testing.T) {
	ts := time.Date(2026, 11, 23, 17, 59, 44, 647332000, time.Local)
	for _, tc := range []struct {
		name, line string
		want       Event
		ok         bool
	}{
		{"route", "[2026-11-23T17:59:44.647332] 203.0.113.5 nhid 6 via 198.51.100.11 dev eth0 proto bgp metric 20 ",
			Event{Time: ts, Line: "203.0.113.5 nhid 6 via 198.51.100.11 dev eth0 proto bgp metric 20"}, true},
		{"tagged deletion", "[2026-11-23T17:59:44.647332] [ROUTE]Deleted 203.0.113.9 nexthop via 198.51.100.11 dev eth0 weight 1",
			Event{Time: ts, Object: "route", Deleted: true, Line: "203.0.113.9 nexthop via 198.51.100.11 dev eth0 weight 1"}, true},
		{"neighbour", "[2026-11-23T17:59:44.647332] 198.51.100.11 dev eth0 lladdr 3a:8e:cf:bd:21:9a REACHABLE ",
			Event{Time: ts, Line: "198.51.100.11 dev eth0 lladdr 3a:8e:cf:bd:21:9a REACHABLE"}, true},
		{"continuation", "\tnexthop via 198.51.100.12 dev eth0 weight 1", Event{}, false},
		{"bad time", "[yesterday] 203.0.113.5", Event{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseMonitorLine(tc.line)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
		})
	}
	if got := inferObject("198.51.100.200 dev eth0  FAILED", []string{"neigh", "route"}); got != "neigh" {
		t.Errorf("inferObject(FAILED neighbour) = %q", got)
	}
	if got := inferObject("203.0.113.5 via 198.51.100.11 dev eth0", []string{"neigh", "route"}); got != "route" {
		t.Errorf("inferObject(route) = %q", got)
	}
	match := Mentions(false, "198.51.100.200", "REACHABLE")
	if !match(Event{Line: "198.51.100.200 dev eth0 lladdr 02:00:00:00:00:01 REACHABLE"}) || match(Event{Deleted: true, Line: "198.51.100.200 REACHABLE"}) {
		t.Error("Mentions matches wrongly")
	}
}

func TestParseSmall(t *testing.T) {
	if got := parsePingReceived("3 packets transmitted, 2 received, 33.3333% packet loss, time 2003ms\n"); got != 2 {
		t.Errorf("parsePingReceived = %d, want 2", got)
	}
	if got := parsePingReceived("ping: connect: Network is unreachable\n"); got != -1 {
		t.Errorf("parsePingReceived(no summary) = %d, want -1", got)
	}
	a, err := parseAnswer("node=node2 pod=web-node2-0 client=[2001:db8:1::100]:41234\n")
	if err != nil || a.Node != "node2" || a.Pod != "web-node2-0" || a.From != netip.MustParseAddrPort("[2001:db8:1::100]:41234") {
		t.Errorf("parseAnswer = %+v, %v", a, err)
	}
	if _, err := parseAnswer("<html>"); err == nil {
		t.Error("parseAnswer accepted a foreign answer")
	}
	docs, err := withoutWorkloads([]byte("kind: Namespace\n---\nkind: Deployment\n---\n# only a comment\n---\nkind: DaemonSet\n---\nkind: CustomResourceDefinition\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "kind: Namespace\n\n---\nkind: CustomResourceDefinition\n"; docs != want {
		t.Errorf("withoutWorkloads = %q, want %q", docs, want)
	}
}

func TestAddressPlan(t *testing.T) {
	allowed := []netip.Prefix{
		netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32"),
	}
	inPlan := func(a netip.Addr) bool {
		for _, p := range allowed {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	seen := map[netip.Addr]string{}
	add := func(what string, a netip.Addr) {
		if !inPlan(a) {
			t.Errorf("%s %s is outside the lab's ranges", what, a)
		}
		if other, dup := seen[a]; dup {
			t.Errorf("%s %s is also %s", what, a, other)
		}
		seen[a] = what
	}
	for _, a := range []netip.Addr{FRRv4, FRRv6, BIRDv4, BIRDv6, ClientV4, ClientV6, RoutedGatewayV4, RoutedGatewayV6, RoutedClientV4, RoutedClientV6} {
		add("fixed", a)
	}
	for i := 1; i <= MaxNodes; i++ {
		add("node", nodeV4(i))
		add("node", nodeV6(i))
		for k := range maxPodsPerNode {
			v4, v6 := podAddrs(i, k)
			add("pod", v4)
			add("pod", v6)
			if !podPrefixV4(i).Contains(v4) || !podPrefixV6(i).Contains(v6) || !PodsV4.Contains(v4) {
				t.Errorf("pod %d of node %d (%s, %s) is outside its node's range", k, i, v4, v6)
			}
		}
		if m := nodeMgmt(150, i); !netip.MustParsePrefix("169.254.0.0/16").Contains(m) {
			t.Errorf("management address %s is not link-local", m)
		}
	}
	// The samples' pools stay free.
	for a := range seen {
		for _, pool := range []netip.Prefix{
			netip.MustParsePrefix("203.0.113.0/25"), netip.MustParsePrefix("2001:db8:1::1:0/112"), netip.MustParsePrefix("2001:db8:100::/120"),
		} {
			if pool.Contains(a) {
				t.Errorf("%s %s lies in the sample pool %s", seen[a], a, pool)
			}
		}
		if a.Is4() && a.As4()[0] == 198 && a.As4()[3] >= 200 && a.As4()[3] <= 249 {
			t.Errorf("%s %s lies in the sample pool 198.51.100.200-249", seen[a], a)
		}
		if ServiceCIDRV4.Contains(a) || ServiceCIDRV6.Contains(a) {
			t.Errorf("%s %s lies in the cluster IP range", seen[a], a)
		}
	}
}

func TestRenderProxyRules(t *testing.T) {
	svc := func(name string, policy corev1.ServiceExternalTrafficPolicy, ips ...string) *corev1.Service {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: policy,
				Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
		return s
	}
	ep := func(addr, node string, ready, serving, terminating bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{
			Addresses: []string{addr}, NodeName: ptr.To(node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(serving), Terminating: ptr.To(terminating)},
		}
	}
	slice := func(svc string, typ discoveryv1.AddressType, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: svc + string(typ), Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			AddressType: typ,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080))}},
			Endpoints:   eps,
		}
	}
	svcs := []*corev1.Service{
		svc("local", corev1.ServiceExternalTrafficPolicyLocal, "198.51.100.200", "2001:db8:1::1:0"),
		svc("cluster", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.201"),
		svc("draining", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.202"),
		svc("pending", corev1.ServiceExternalTrafficPolicyCluster),
	}
	slices := []*discoveryv1.EndpointSlice{
		slice("local", discoveryv1.AddressTypeIPv4, ep("203.0.113.193", "node1", true, true, false), ep("203.0.113.201", "node2", true, true, false)),
		slice("local", discoveryv1.AddressTypeIPv6, ep("2001:db8:2:1::1", "node1", true, true, false)),
		slice("cluster", discoveryv1.AddressTypeIPv4, ep("203.0.113.194", "node1", true, true, false), ep("203.0.113.202", "node2", false, false, false)),
		slice("draining", discoveryv1.AddressTypeIPv4, ep("203.0.113.195", "node1", false, true, true)),
	}
	for _, tc := range []struct {
		node          string
		want, notWant []string
	}{
		{"node1",
			[]string{
				"ip daddr 198.51.100.200 tcp dport 80 goto svc",
				"dnat ip to 203.0.113.193:8080",
				"dnat ip6 to [2001:db8:2:1::1]:8080",
				"dnat ip to 203.0.113.194:8080",
				"dnat ip to 203.0.113.195:8080", // serving and terminating, no ready one
				"numgen random mod 1",
				"ct status dnat oifname \"eth0\" masquerade",
				"ip daddr 198.51.100.200 icmp type echo-request dnat ip to 203.0.113.193",
				"ip6 daddr 2001:db8:1::1:0 icmpv6 type echo-request dnat ip6 to 2001:db8:2:1::1",
			},
			[]string{"203.0.113.201", "203.0.113.202", " reject"}},
		{"node2",
			[]string{
				"dnat ip to 203.0.113.201:8080",
				"ip6 daddr 2001:db8:1::1:0 tcp dport 80 reject", // Local, no local IPv6 endpoint
				"dnat ip to 203.0.113.194:8080",                 // Cluster: node1's pod
			},
			[]string{"203.0.113.193", "203.0.113.202"}},
		{"node3",
			[]string{"ip daddr 198.51.100.200 tcp dport 80 reject", "ip6 daddr 2001:db8:1::1:0 tcp dport 80 reject"},
			[]string{"198.51.100.200 icmp", "2001:db8:1::1:0 icmpv6"}},
	} {
		t.Run(tc.node, func(t *testing.T) {
			rules := renderProxyRules(tc.node, svcs, slices)
			for _, w := range tc.want {
				if !strings.Contains(rules, w) {
					t.Errorf("rules lack %q:\n%s", w, rules)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(rules, w) {
					t.Errorf("rules hold %q:\n%s", w, rules)
				}
			}
			if again := renderProxyRules(tc.node, svcs, slices); again != rules {
				t.Error("rendering twice gives different rules")
			}
		})
	}
}

func TestParseLogEvents(t *testing.T) {
	log := `2026/11/23 18:37:46.243035 BGP: [M59KS-A3ZXZ] bgp_update_receive: rcvd End-of-RIB for IPv4 Unicast from 198.51.100.11 in vrf default
2026/11/23 18:37:46.250001 BGP: [ZWCSR-M7FG9] 198.51.100.11(Unknown) rcvd UPDATE wlen 0 attrlen 40 alen 5
2026/11/23 18:37:46.250117 BGP: [PAPT4-SQ6XN] 198.51.100.11(Unknown) rcvd 203.0.113.10/32 IPv4 unicast
2026-11-23 18:37:47.532812 <TRACE> node1_v4: BGP session established
garbage line with 203.0.113.10/32
`
	got := parseLogEvents(log, "rcvd", "203.0.113.10/32")
	want := []LogEvent{{Time: time.Date(2026, 11, 23, 18, 37, 46, 250117000, time.Local), Line: "BGP: [PAPT4-SQ6XN] 198.51.100.11(Unknown) rcvd 203.0.113.10/32 IPv4 unicast"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FRR events (-want +got):\n%s", diff)
	}
	got = parseLogEvents(log, "established")
	if len(got) != 1 || got[0].Time != time.Date(2026, 11, 23, 18, 37, 47, 532812000, time.Local) {
		t.Errorf("BIRD events: %+v", got)
	}
}
