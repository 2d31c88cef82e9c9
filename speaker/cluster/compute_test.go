package cluster

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/speaker/bgp"
	"github.com/ironlb/ironlb/speaker/election"
	"github.com/ironlb/ironlb/speaker/eligibility"
	"github.com/ironlb/ironlb/speaker/layer2"
	"github.com/ironlb/ironlb/speaker/layer2/interfaces"
)

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: "ironlb-system", Name: name} }
	cfg, err := config.New(config.Resources{
		Namespace: "ironlb-system",
		Pools: []v1beta1.IPAddressPool{
			{ObjectMeta: meta("lan"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.51.100.200-198.51.100.249", "2001:db8:1::1:0/112"}}},
			{ObjectMeta: meta("routed"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"203.0.113.0/25"}}},
			{ObjectMeta: meta("quiet"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"203.0.113.128/25"}}},
		},
		L2Advertisements: []v1beta1.L2Advertisement{{ObjectMeta: meta("lan"), Spec: v1beta1.L2AdvertisementSpec{
			IPAddressPools: []string{"lan"},
			NodeSelectors:  []metav1.LabelSelector{{MatchLabels: map[string]string{"l2": "yes"}}},
		}}},
		BGPAdvertisements: []v1beta1.BGPAdvertisement{{ObjectMeta: meta("routed"), Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"routed"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestCompute(t *testing.T) {
	cfg := testConfig(t)
	nodes := []eligibility.Node{
		{Name: "node-1", Ready: true, Labels: map[string]string{"l2": "yes"}},
		{Name: "node-2", Ready: true, Labels: map[string]string{"l2": "yes"}},
		{Name: "node-3", Ready: true},
	}
	links := []interfaces.Link{
		{Name: "lo", Index: 1, Loopback: true, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "eth0", Index: 2, Kind: "veth", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.11/24")}},
	}
	ready := func(node string) eligibility.Endpoint {
		return eligibility.Endpoint{NodeName: node, Ready: true, Serving: true}
	}
	web := Service{Key: "default/web", IPs: addrs("198.51.100.200", "2001:db8:1::1:0"), Endpoints: []eligibility.Endpoint{ready("node-3")}}
	local := Service{Key: "default/local", IPs: addrs("198.51.100.201"), ExternalTrafficPolicyLocal: true, Endpoints: []eligibility.Endpoint{ready("node-2")}}
	routed := Service{Key: "default/routed", IPs: addrs("203.0.113.5"), Endpoints: []eligibility.Endpoint{ready("node-3")}}
	quiet := Service{Key: "default/quiet", IPs: addrs("203.0.113.130"), Endpoints: []eligibility.Endpoint{ready("node-3")}}
	noEndpoints := Service{Key: "default/empty", IPs: addrs("198.51.100.202")}

	webOwner, _ := election.Owner([]string{"node-1", "node-2"}, "198.51.100.200")
	for _, node := range []string{"node-1", "node-2", "node-3"} {
		t.Run(node, func(t *testing.T) {
			res := Compute(Snapshot{
				Node: node, Config: cfg, Nodes: nodes, Links: links,
				NodeAddrs: addrs("198.51.100.11"),
				Services:  []Service{web, local, routed, quiet, noEndpoints},
			})
			want := layer2.Desired{}
			if node == webOwner {
				want[netip.MustParseAddr("198.51.100.200")] = []string{"eth0"}
				want[netip.MustParseAddr("2001:db8:1::1:0")] = []string{"eth0"}
			}
			if node == "node-2" {
				// The only node with a local endpoint of the Local Service.
				want[netip.MustParseAddr("198.51.100.201")] = []string{"eth0"}
			}
			if diff := cmp.Diff(want, res.L2, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("L2 (-want +got):\n%s", diff)
			}
			// Every node may advertise the routed Service over BGP.
			if diff := cmp.Diff([]bgp.Service{{Key: "default/routed", IPs: addrs("203.0.113.5"), Pool: "routed"}}, res.BGP, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("BGP (-want +got):\n%s", diff)
			}
			if got := res.Layer2["default/web"].Owner; got != webOwner {
				t.Errorf("web's owner = %q, want %q for every node", got, webOwner)
			}
			if got := res.Layer2["default/empty"].Owner; got != "" {
				t.Errorf("a Service without endpoints is announced by %q", got)
			}
			if _, ok := res.NotAnnounced["default/quiet"]; !ok {
				t.Errorf("the Service of a pool no advertisement announces is not reported: %v", res.NotAnnounced)
			}
		})
	}
}

// TestComputeFailover shows that a dead node's Services move to another
// eligible node and no other Service moves.
func TestComputeFailover(t *testing.T) {
	cfg := testConfig(t)
	var nodes []eligibility.Node
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		nodes = append(nodes, eligibility.Node{Name: n, Ready: true, Labels: map[string]string{"l2": "yes"}})
	}
	var services []Service
	for i := range 40 {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(200 + i)})
		services = append(services, Service{Key: ip.String(), IPs: []netip.Addr{ip}, Endpoints: []eligibility.Endpoint{{NodeName: "node-1", Ready: true, Serving: true}}})
	}
	owners := func(live map[string]bool) map[string]string {
		res := Compute(Snapshot{Node: "node-1", Config: cfg, Nodes: nodes, Live: live, Services: services})
		out := map[string]string{}
		for k, a := range res.Layer2 {
			out[k] = a.Owner
		}
		return out
	}
	before := owners(map[string]bool{"node-1": true, "node-2": true, "node-3": true})
	after := owners(map[string]bool{"node-1": true, "node-3": true})
	moved := 0
	for k, o := range before {
		switch {
		case o == "node-2":
			moved++
			if after[k] == "node-2" || after[k] == "" {
				t.Errorf("%s stayed on the dead node-2 (now %q)", k, after[k])
			}
		case after[k] != o:
			t.Errorf("%s moved from %s to %s although its owner lives", k, o, after[k])
		}
	}
	if moved == 0 {
		t.Fatal("node-2 owned nothing: the test shows nothing")
	}
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}
