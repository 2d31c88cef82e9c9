package bgp

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/config"
)

// node is the labels of the node the tests compute for.
var node = map[string]string{"kubernetes.io/hostname": "node1", "rack": "r1"}

// baseResources are two pools and two peers: frr over eBGP and IPv4, bird
// over iBGP and IPv6.
func baseResources() config.Resources {
	return config.Resources{
		Pools: []v1beta1.IPAddressPool{
			ipPool("bgp", "203.0.113.0/25", "2001:db8:100::/120"),
			ipPool("other", "198.51.100.128/25"),
		},
		BGPPeers: []v1beta1.BGPPeer{
			bgpPeer("frr", "198.51.100.1", 64513),
			bgpPeer("bird", "2001:db8:1::2", 64512),
		},
	}
}

// withAdvs returns the base resources with advertisements advs.
func withAdvs(advs ...v1beta1.BGPAdvertisement) config.Resources {
	r := baseResources()
	r.BGPAdvertisements = advs
	return r
}

func TestCompute(t *testing.T) {
	web := Service{Key: "default/web", IPs: addrs("203.0.113.7", "2001:db8:100::7"), Pool: "bgp"}
	api := Service{Key: "default/api", IPs: addrs("203.0.113.9"), Pool: "bgp"}
	db := Service{Key: "default/db", IPs: addrs("198.51.100.130"), Pool: "other"}

	tests := []struct {
		name         string
		resources    config.Resources
		node         map[string]string
		services     []Service
		wantPeers    []string
		want         map[string][]Route
		wantServices map[string][]string
	}{{
		name:      "one advertisement: a /32 and a /128 to every peer",
		resources: withAdvs(bgpAdv("all", "bgp")),
		services:  []Service{web},
		wantPeers: []string{"bird", "frr"},
		want: map[string][]Route{
			"bird": {{Prefix: prefix("203.0.113.7/32")}, {Prefix: prefix("2001:db8:100::7/128")}},
			"frr":  {{Prefix: prefix("203.0.113.7/32")}, {Prefix: prefix("2001:db8:100::7/128")}},
		},
		wantServices: map[string][]string{"default/web": {"bird", "frr"}},
	}, {
		name:      "no advertisement: sessions, no routes",
		resources: baseResources(),
		services:  []Service{web},
		wantPeers: []string{"bird", "frr"},
	}, {
		name:      "no peer: nothing",
		resources: with(withAdvs(bgpAdv("all", "bgp")), func(r *config.Resources) { r.BGPPeers = nil }),
		services:  []Service{web},
	}, {
		name:      "no service: sessions, no routes",
		resources: withAdvs(bgpAdv("all", "bgp")),
		wantPeers: []string{"bird", "frr"},
	}, {
		name:      "pool not advertised",
		resources: withAdvs(bgpAdv("all", "bgp")),
		services:  []Service{db},
		wantPeers: []string{"bird", "frr"},
	}, {
		name:      "pool looked up when the service names none",
		resources: withAdvs(bgpAdv("other", "other")),
		services:  []Service{{Key: "default/db", IPs: addrs("198.51.100.130", "203.0.113.1", "192.0.2.1")}},
		wantPeers: []string{"bird", "frr"},
		want: map[string][]Route{
			"bird": {{Prefix: prefix("198.51.100.130/32")}},
			"frr":  {{Prefix: prefix("198.51.100.130/32")}},
		},
		wantServices: map[string][]string{"default/db": {"bird", "frr"}},
	}, {
		name: "aggregation: two IPs in one /24, one /64",
		resources: with(withAdvs(with(bgpAdv("agg", "bgp"), func(a *v1beta1.BGPAdvertisement) {
			a.Spec.AggregationLength = ptrTo[int32](24)
			a.Spec.AggregationLengthV6 = ptrTo[int32](64)
			a.Spec.Peers = []string{"frr"}
		})), func(r *config.Resources) {
			r.Pools[0] = ipPool("bgp", "203.0.113.0/24", "2001:db8:100::/64")
		}),
		services:  []Service{web, api, {Key: "default/v6", IPs: addrs("2001:db8:100::ff")}},
		wantPeers: []string{"bird", "frr"},
		want: map[string][]Route{
			"frr": {{Prefix: prefix("203.0.113.0/24")}, {Prefix: prefix("2001:db8:100::/64")}},
		},
		wantServices: map[string][]string{"default/web": {"frr"}, "default/api": {"frr"}, "default/v6": {"frr"}},
	}, {
		name: "communities: standard, large and an alias",
		resources: with(withAdvs(with(bgpAdv("c", "bgp"), func(a *v1beta1.BGPAdvertisement) {
			a.Spec.Communities = []string{"large:64512:1:2", "no-export", "65000:100", "65000:100"}
		})), func(r *config.Resources) {
			r.Communities = []v1beta1.Community{{ObjectMeta: meta("aliases"), Spec: v1beta1.CommunitySpec{
				Communities: []v1beta1.CommunityAlias{{Name: "no-export", Value: "65535:65281"}},
			}}}
		}),
		services:  []Service{api},
		wantPeers: []string{"bird", "frr"},
		want: map[string][]Route{
			"bird": {{Prefix: prefix("203.0.113.9/32"), Communities: []config.Community{community("65000:100"), community("65535:65281"), community("large:64512:1:2")}}},
			"frr":  {{Prefix: prefix("203.0.113.9/32"), Communities: []config.Community{community("65000:100"), community("65535:65281"), community("large:64512:1:2")}}},
		},
		wantServices: map[string][]string{"default/api": {"bird", "frr"}},
	}, {
		name: "localPref only on iBGP",
		resources: withAdvs(with(bgpAdv("pref", "bgp"), func(a *v1beta1.BGPAdvertisement) {
			a.Spec.LocalPref = 200
		})),
		services:  []Service{api},
		wantPeers: []string{"bird", "frr"},
		want: map[string][]Route{
			"bird": {{Prefix: prefix("203.0.113.9/32"), LocalPref: 200}},
			"frr":  {{Prefix: prefix("203.0.113.9/32")}},
		},
		wantServices: map[string][]string{"default/api": {"bird", "frr"}},
	}, {
		name: "peers by name",
		resources: withAdvs(with(bgpAdv("to-bird", "bgp"), func(a *v1beta1.BGPAdvertisement) {
			a.Spec.Peers = []string{"bird"}
		})),
		services:  []Service{web},
		wantPeers: []string{"bird", "frr"},
		want: map[string][]Route{
			"bird": {{Prefix: prefix("203.0.113.7/32")}, {Prefix: prefix("2001:db8:100::7/128")}},
		},
		wantServices: map[string][]string{"default/web": {"bird"}},
	}, {
		name: "peers by nodeSelectors",
		resources: with(withAdvs(bgpAdv("all", "bgp")), func(r *config.Resources) {
			r.BGPPeers[0].Spec.NodeSelectors = selector("rack", "r2") // frr: another rack
			r.BGPPeers[1].Spec.NodeSelectors = selector("rack", "r1") // bird: this rack
		}),
		services:  []Service{api},
		wantPeers: []string{"bird"},
		want: map[string][]Route{
			"bird": {{Prefix: prefix("203.0.113.9/32")}},
		},
		wantServices: map[string][]string{"default/api": {"bird"}},
	}, {
		name:      "node without labels: only peers without nodeSelectors",
		resources: with(withAdvs(bgpAdv("all", "bgp")), func(r *config.Resources) { r.BGPPeers[0].Spec.NodeSelectors = selector("rack", "r1") }),
		node:      map[string]string{},
		services:  []Service{api},
		wantPeers: []string{"bird"},
		want: map[string][]Route{
			"bird": {{Prefix: prefix("203.0.113.9/32")}},
		},
		wantServices: map[string][]string{"default/api": {"bird"}},
	}, {
		name: "advertisement nodeSelectors",
		resources: withAdvs(
			with(bgpAdv("here", "bgp"), func(a *v1beta1.BGPAdvertisement) {
				a.Spec.NodeSelectors = selector("rack", "r1")
				a.Spec.Communities = []string{"1:1"}
			}),
			with(bgpAdv("elsewhere", "bgp"), func(a *v1beta1.BGPAdvertisement) {
				a.Spec.NodeSelectors = selector("rack", "r2")
				a.Spec.Communities = []string{"2:2"}
			}),
		),
		services:  []Service{api},
		wantPeers: []string{"bird", "frr"},
		want: map[string][]Route{
			"bird": {{Prefix: prefix("203.0.113.9/32"), Communities: []config.Community{community("1:1")}}},
			"frr":  {{Prefix: prefix("203.0.113.9/32"), Communities: []config.Community{community("1:1")}}},
		},
		wantServices: map[string][]string{"default/api": {"bird", "frr"}},
	}, {
		name: "advertisement selects no node here",
		resources: withAdvs(with(bgpAdv("elsewhere", "bgp"), func(a *v1beta1.BGPAdvertisement) {
			a.Spec.NodeSelectors = selector("rack", "r2")
		})),
		services:  []Service{api},
		wantPeers: []string{"bird", "frr"},
	}, {
		name: "several advertisements on one pool: communities united, highest localPref, aggregates beside",
		resources: withAdvs(
			with(bgpAdv("a", "bgp"), func(a *v1beta1.BGPAdvertisement) {
				a.Spec.Communities = []string{"1:1", "3:3"}
				a.Spec.LocalPref = 100
			}),
			with(bgpAdv("b", "bgp"), func(a *v1beta1.BGPAdvertisement) {
				a.Spec.Communities = []string{"2:2", "1:1"}
				a.Spec.LocalPref = 300
			}),
			with(bgpAdv("c", "bgp"), func(a *v1beta1.BGPAdvertisement) {
				a.Spec.LocalPref = 200
				a.Spec.Peers = []string{"bird"}
			}),
			with(bgpAdv("d", "bgp"), func(a *v1beta1.BGPAdvertisement) {
				a.Spec.AggregationLength = ptrTo[int32](25)
				a.Spec.Peers = []string{"frr"}
			}),
		),
		services:  []Service{api, {Key: "default/shared", IPs: addrs("203.0.113.9"), Pool: "bgp"}},
		wantPeers: []string{"bird", "frr"},
		want: map[string][]Route{
			"bird": {{Prefix: prefix("203.0.113.9/32"), Communities: []config.Community{community("1:1"), community("2:2"), community("3:3")}, LocalPref: 300}},
			"frr": {
				{Prefix: prefix("203.0.113.0/25")},
				{Prefix: prefix("203.0.113.9/32"), Communities: []config.Community{community("1:1"), community("2:2"), community("3:3")}},
			},
		},
		wantServices: map[string][]string{"default/api": {"bird", "frr"}, "default/shared": {"bird", "frr"}},
	}, {
		name:      "IPv4-mapped and invalid IPs",
		resources: withAdvs(bgpAdv("all", "bgp")),
		services:  []Service{{Key: "default/odd", IPs: []netip.Addr{netip.MustParseAddr("::ffff:203.0.113.3"), {}}, Pool: "bgp"}},
		wantPeers: []string{"bird", "frr"},
		want: map[string][]Route{
			"bird": {{Prefix: prefix("203.0.113.3/32")}},
			"frr":  {{Prefix: prefix("203.0.113.3/32")}},
		},
		wantServices: map[string][]string{"default/odd": {"bird", "frr"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := build(t, tt.resources)
			labels := node
			if tt.node != nil {
				labels = tt.node
			}
			got := Compute(cfg, labels, tt.services)

			if diff := cmp.Diff(tt.wantPeers, got.State.PeerNames(), cmpOpts); diff != "" {
				t.Errorf("peers (-want +got):\n%s", diff)
			}
			want := map[string][]Route{}
			for _, p := range tt.wantPeers {
				want[p] = tt.want[p]
			}
			if diff := cmp.Diff(want, routesOf(got.State), cmpOpts); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantServices, got.Services, cmpOpts); diff != "" {
				t.Errorf("services (-want +got):\n%s", diff)
			}
			for _, name := range got.State.PeerNames() {
				p := got.State.Peers[name]
				if cp, _ := cfg.BGPPeer(name); p != PeerFromConfig(cp) {
					t.Errorf("peer %q = %+v, want the config's %+v", name, p, PeerFromConfig(cp))
				}
				for prefix, r := range got.State.Routes[name] {
					if prefix != r.Prefix || prefix != prefix.Masked() {
						t.Errorf("peer %q: route %s under key %s, want a masked prefix under its own key", name, r, prefix)
					}
				}
			}

			// The same input in another order computes the same routes.
			reversed := make([]Service, len(tt.services))
			for i, s := range tt.services {
				reversed[len(reversed)-1-i] = s
			}
			again := Compute(cfg, labels, reversed)
			if diff := cmp.Diff(routesOf(got.State), routesOf(again.State), cmpOpts); diff != "" {
				t.Errorf("services in reverse order: routes (-first +reversed):\n%s", diff)
			}
		})
	}
}

func TestComputeNilConfig(t *testing.T) {
	got := Compute(nil, node, []Service{{Key: "a/b", IPs: addrs("203.0.113.1"), Pool: "bgp"}})
	if len(got.State.Peers) != 0 || len(got.State.Routes) != 0 || len(got.Services) != 0 {
		t.Errorf("Compute(nil, ...) = %+v, want nothing", got)
	}
}

func TestComputeDoesNotShareConfigMemory(t *testing.T) {
	cfg := build(t, withAdvs(with(bgpAdv("c", "bgp"), func(a *v1beta1.BGPAdvertisement) {
		a.Spec.Communities = []string{"1:1", "2:2"}
	})))
	got := Compute(cfg, node, []Service{{Key: "a/b", IPs: addrs("203.0.113.1"), Pool: "bgp"}})
	r := got.State.Routes["frr"][prefix("203.0.113.1/32")]
	r.Communities[0] = community("9:9")
	want := []config.Community{community("1:1"), community("2:2")}
	if diff := cmp.Diff(want, cfg.BGPAdvertisements[0].Communities, cmpOpts); diff != "" {
		t.Errorf("changing a computed route changed the config (-want +got):\n%s", diff)
	}
	if bird := got.State.Routes["bird"][prefix("203.0.113.1/32")]; bird.Communities[0] != community("1:1") {
		t.Errorf("changing frr's route changed bird's: %s", bird)
	}
}
