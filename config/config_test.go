package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/api/v1beta1"
)

// ns is ironlb's namespace in these tests.
const ns = "ironlb-system"

// configOpts compare Configs: netip values and communities by ==, label
// selectors by their text, empty and nil slices alike.
var configOpts = cmp.Options{
	cmpopts.EquateComparable(netip.Addr{}, Community{}),
	cmp.Comparer(func(a, b labels.Selector) bool { return a.String() == b.String() }),
	cmpopts.IgnoreUnexported(Config{}),
	cmpopts.EquateEmpty(),
}

// with returns v changed by edit.
func with[T any](v T, edit func(*T)) T {
	edit(&v)
	return v
}

// ptrTo returns a pointer to v.
func ptrTo[T any](v T) *T {
	return &v
}

func meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns}
}

func ipPool(name string, addresses ...string) v1beta1.IPAddressPool {
	return v1beta1.IPAddressPool{ObjectMeta: meta(name), Spec: v1beta1.IPAddressPoolSpec{Addresses: addresses}}
}

func l2Adv(name string, pools ...string) v1beta1.L2Advertisement {
	return v1beta1.L2Advertisement{ObjectMeta: meta(name), Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: pools}}
}

func bgpAdv(name string, pools ...string) v1beta1.BGPAdvertisement {
	return v1beta1.BGPAdvertisement{ObjectMeta: meta(name), Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: pools}}
}

func bgpPeer(name, address string) v1beta1.BGPPeer {
	return v1beta1.BGPPeer{ObjectMeta: meta(name), Spec: v1beta1.BGPPeerSpec{MyASN: 64512, ASN: 64513, Address: address}}
}

func communities(name string, nameValues ...string) v1beta1.Community {
	c := v1beta1.Community{ObjectMeta: meta(name)}
	for i := 0; i < len(nameValues); i += 2 {
		c.Spec.Communities = append(c.Spec.Communities, v1beta1.CommunityAlias{Name: nameValues[i], Value: nameValues[i+1]})
	}
	return c
}

func secret(name string, data map[string]string) corev1.Secret {
	s := corev1.Secret{ObjectMeta: meta(name), Type: corev1.SecretTypeBasicAuth, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func dur(d time.Duration) *metav1.Duration {
	return &metav1.Duration{Duration: d}
}

func selector(s string) labels.Selector {
	sel, err := labels.Parse(s)
	if err != nil {
		panic(err)
	}
	return sel
}

func addr(s string) netip.Addr {
	return netip.MustParseAddr(s)
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		in   Resources
		want *Config
	}{{
		name: "nothing",
		in:   Resources{Namespace: ns},
		want: &Config{},
	}, {
		name: "pool defaults",
		in: Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{
			ipPool("blue", "2001:db8::/120", "203.0.113.10-203.0.113.20", "203.0.113.7/29", "198.51.100.1"),
		}},
		want: &Config{Pools: []*Pool{{
			Name: "blue",
			Ranges: []Range{
				rng("198.51.100.1", "198.51.100.1"),
				rng("203.0.113.0", "203.0.113.7"),
				rng("203.0.113.10", "203.0.113.20"),
				rng("2001:db8::", "2001:db8::ff"),
			},
			AutoAssign: true,
		}}},
	}, {
		name: "pool with every field",
		in: Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{
			with(ipPool("blue", "203.0.113.0/28"), func(p *v1beta1.IPAddressPool) {
				p.Labels = map[string]string{"tier": "gold"}
				p.Spec.AutoAssign = ptrTo(false)
				p.Spec.AvoidBuggyIPs = true
				p.Spec.AllocateTo = &v1beta1.ServiceAllocation{
					Priority:   5,
					Namespaces: []string{"web", "api", "web"},
					NamespaceSelectors: []metav1.LabelSelector{
						{MatchLabels: map[string]string{"team": "a"}},
						{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpIn, Values: []string{"prod"}}}},
					},
					ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"expose": "yes"}}},
				}
			}),
		}},
		want: &Config{Pools: []*Pool{{
			Name:               "blue",
			Labels:             labels.Set{"tier": "gold"},
			Ranges:             []Range{rng("203.0.113.0", "203.0.113.15")},
			AvoidBuggyIPs:      true,
			Priority:           5,
			Namespaces:         []string{"api", "web"},
			NamespaceSelectors: []labels.Selector{selector("team=a"), selector("env in (prod)")},
			ServiceSelectors:   []labels.Selector{selector("expose=yes")},
		}}},
	}, {
		name: "pools sorted by name, adjacent pools do not overlap",
		in: Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{
			ipPool("red", "203.0.113.16/28"),
			ipPool("blue", "203.0.113.0/28"),
		}},
		want: &Config{Pools: []*Pool{
			{Name: "blue", Ranges: []Range{rng("203.0.113.0", "203.0.113.15")}, AutoAssign: true},
			{Name: "red", Ranges: []Range{rng("203.0.113.16", "203.0.113.31")}, AutoAssign: true},
		}},
	}, {
		name: "l2 advertisements: every pool, by name, by label",
		in: Resources{
			Namespace: ns,
			Pools: []v1beta1.IPAddressPool{
				with(ipPool("gold", "203.0.113.0/28"), func(p *v1beta1.IPAddressPool) { p.Labels = map[string]string{"tier": "gold"} }),
				ipPool("blue", "203.0.113.16/28"),
				ipPool("red", "203.0.113.32/28"),
			},
			L2Advertisements: []v1beta1.L2Advertisement{
				l2Adv("all"),
				with(l2Adv("some", "red"), func(a *v1beta1.L2Advertisement) {
					a.Spec.IPAddressPoolSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "gold"}}}
					a.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "a"}}}
					a.Spec.Interfaces = []string{"eth1", "bond0.100", "eth1"}
				}),
				with(l2Adv("none"), func(a *v1beta1.L2Advertisement) {
					a.Spec.IPAddressPoolSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "silver"}}}
				}),
			},
		},
		want: &Config{
			Pools: []*Pool{
				{Name: "blue", Ranges: []Range{rng("203.0.113.16", "203.0.113.31")}, AutoAssign: true},
				{Name: "gold", Labels: labels.Set{"tier": "gold"}, Ranges: []Range{rng("203.0.113.0", "203.0.113.15")}, AutoAssign: true},
				{Name: "red", Ranges: []Range{rng("203.0.113.32", "203.0.113.47")}, AutoAssign: true},
			},
			L2Advertisements: []*L2Advertisement{
				{Name: "all", Pools: []string{"blue", "gold", "red"}},
				{Name: "none"},
				{Name: "some", Pools: []string{"gold", "red"}, NodeSelectors: []labels.Selector{selector("zone=a")}, Interfaces: []string{"bond0.100", "eth1"}},
			},
		},
	}, {
		name: "bgp peer defaults",
		in:   Resources{Namespace: ns, BGPPeers: []v1beta1.BGPPeer{bgpPeer("tor", "192.0.2.1")}},
		want: &Config{BGPPeers: []*BGPPeer{{
			Name: "tor", MyASN: 64512, ASN: 64513, Address: addr("192.0.2.1"), Port: 179,
			HoldTime: 90 * time.Second, KeepaliveTime: 30 * time.Second, ConnectTime: 10 * time.Second,
		}}},
	}, {
		name: "bgp peer with every field",
		in: Resources{
			Namespace: ns,
			BGPPeers: []v1beta1.BGPPeer{with(bgpPeer("tor", "2001:db8::1"), func(p *v1beta1.BGPPeer) {
				p.Spec.ASN = 64512
				p.Spec.SrcAddress = "2001:db8::2"
				p.Spec.Port = 1179
				p.Spec.HoldTime = dur(9 * time.Second)
				p.Spec.ConnectTime = dur(2 * time.Second)
				p.Spec.RouterID = "10.0.0.1"
				p.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "r1"}}}
				p.Spec.PasswordSecret = corev1.SecretReference{Name: "tor-md5", Namespace: ns}
				p.Spec.EBGPMultiHop = true
				p.Spec.EnableGracefulRestart = true
			})},
			Secrets: []corev1.Secret{
				secret("tor-md5", map[string]string{"password": "s3cret", "username": "ignored"}),
				with(secret("tor-md5", map[string]string{"password": "elsewhere"}), func(s *corev1.Secret) { s.Namespace = "other" }),
			},
		},
		want: &Config{BGPPeers: []*BGPPeer{{
			Name: "tor", MyASN: 64512, ASN: 64512, Address: addr("2001:db8::1"), SourceAddress: addr("2001:db8::2"), Port: 1179,
			HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second, ConnectTime: 2 * time.Second,
			RouterID: addr("10.0.0.1"), NodeSelectors: []labels.Selector{selector("rack=r1")},
			Password: "s3cret", EBGPMultiHop: true, GracefulRestart: true,
		}}},
	}, {
		name: "bgp peer without keepalives",
		in: Resources{Namespace: ns, BGPPeers: []v1beta1.BGPPeer{
			with(bgpPeer("tor", "192.0.2.1"), func(p *v1beta1.BGPPeer) {
				p.Spec.HoldTime = dur(0)
				p.Spec.KeepaliveTime = dur(0)
			}),
			with(bgpPeer("tor-2", "192.0.2.1"), func(p *v1beta1.BGPPeer) {
				p.Spec.Port = 1179 // the same router on another port is another peer
				p.Spec.HoldTime = dur(30 * time.Second)
				p.Spec.KeepaliveTime = dur(29 * time.Second)
			}),
		}},
		want: &Config{BGPPeers: []*BGPPeer{{
			Name: "tor", MyASN: 64512, ASN: 64513, Address: addr("192.0.2.1"), Port: 179, ConnectTime: 10 * time.Second,
		}, {
			Name: "tor-2", MyASN: 64512, ASN: 64513, Address: addr("192.0.2.1"), Port: 1179,
			HoldTime: 30 * time.Second, KeepaliveTime: 29 * time.Second, ConnectTime: 10 * time.Second,
		}}},
	}, {
		name: "bgp advertisements",
		in: Resources{
			Namespace: ns,
			Pools: []v1beta1.IPAddressPool{
				ipPool("blue", "203.0.113.0/28", "2001:db8::/120"),
				ipPool("red", "198.51.100.10-198.51.100.20"),
			},
			BGPPeers: []v1beta1.BGPPeer{bgpPeer("tor-b", "192.0.2.2"), bgpPeer("tor-a", "192.0.2.1")},
			Communities: []v1beta1.Community{
				communities("aliases", "no-advertise", "65535:65282", "big", "large:64512:1:2"),
			},
			BGPAdvertisements: []v1beta1.BGPAdvertisement{
				bgpAdv("default"),
				with(bgpAdv("aggregated", "blue"), func(a *v1beta1.BGPAdvertisement) {
					a.Spec.AggregationLength = ptrTo[int32](28)
					a.Spec.AggregationLengthV6 = ptrTo[int32](120)
					a.Spec.LocalPref = 100
					a.Spec.Communities = []string{"big", "65535:65282", "no-advertise", "64512:7"}
					a.Spec.Peers = []string{"tor-b", "tor-a"}
					a.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "a"}}}
				}),
			},
		},
		want: &Config{
			Pools: []*Pool{
				{Name: "blue", Ranges: []Range{rng("203.0.113.0", "203.0.113.15"), rng("2001:db8::", "2001:db8::ff")}, AutoAssign: true},
				{Name: "red", Ranges: []Range{rng("198.51.100.10", "198.51.100.20")}, AutoAssign: true},
			},
			BGPPeers: []*BGPPeer{
				{Name: "tor-a", MyASN: 64512, ASN: 64513, Address: addr("192.0.2.1"), Port: 179, HoldTime: 90 * time.Second, KeepaliveTime: 30 * time.Second, ConnectTime: 10 * time.Second},
				{Name: "tor-b", MyASN: 64512, ASN: 64513, Address: addr("192.0.2.2"), Port: 179, HoldTime: 90 * time.Second, KeepaliveTime: 30 * time.Second, ConnectTime: 10 * time.Second},
			},
			BGPAdvertisements: []*BGPAdvertisement{{
				Name: "aggregated", Pools: []string{"blue"}, AggregationLength: 28, AggregationLengthV6: 120, LocalPref: 100,
				Communities:   []Community{StandardCommunity(64512, 7), StandardCommunity(65535, 65282), LargeCommunity(64512, 1, 2)},
				NodeSelectors: []labels.Selector{selector("zone=a")},
				Peers:         []string{"tor-a", "tor-b"},
			}, {
				Name: "default", Pools: []string{"blue", "red"}, AggregationLength: 32, AggregationLengthV6: 128,
			}},
			CommunityAliases: []CommunityAlias{
				{Name: "big", Value: LargeCommunity(64512, 1, 2), Object: "aliases"},
				{Name: "no-advertise", Value: StandardCommunity(65535, 65282), Object: "aliases"},
			},
		},
	}, {
		name: "aggregation length as long as the pool's longest prefix",
		in: Resources{
			Namespace: ns,
			Pools:     []v1beta1.IPAddressPool{ipPool("blue", "203.0.113.0/28", "203.0.113.64/30")},
			BGPAdvertisements: []v1beta1.BGPAdvertisement{
				with(bgpAdv("agg", "blue"), func(a *v1beta1.BGPAdvertisement) { a.Spec.AggregationLength = ptrTo[int32](30) }),
				with(bgpAdv("v6-only-setting", "blue"), func(a *v1beta1.BGPAdvertisement) { a.Spec.AggregationLengthV6 = ptrTo[int32](0) }),
			},
		},
		want: &Config{
			Pools: []*Pool{{Name: "blue", Ranges: []Range{rng("203.0.113.0", "203.0.113.15"), rng("203.0.113.64", "203.0.113.67")}, AutoAssign: true}},
			BGPAdvertisements: []*BGPAdvertisement{
				{Name: "agg", Pools: []string{"blue"}, AggregationLength: 30, AggregationLengthV6: 128},
				{Name: "v6-only-setting", Pools: []string{"blue"}, AggregationLength: 32, AggregationLengthV6: 0},
			},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(tt.in)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, configOpts); diff != "" {
				t.Errorf("New (-want +got):\n%s", diff)
			}
			for _, p := range got.Pools {
				if q, ok := got.Pool(p.Name); !ok || q != p {
					t.Errorf("Pool(%q) = %v, %t, want the pool", p.Name, q, ok)
				}
			}
			for _, p := range got.BGPPeers {
				if q, ok := got.BGPPeer(p.Name); !ok || q != p {
					t.Errorf("BGPPeer(%q) = %v, %t, want the peer", p.Name, q, ok)
				}
			}
			for _, a := range got.CommunityAliases {
				if b, ok := got.CommunityAlias(a.Name); !ok || b != a {
					t.Errorf("CommunityAlias(%q) = %v, %t, want %v", a.Name, b, ok, a)
				}
			}
			if p, ok := got.Pool("no-such-pool"); ok {
				t.Errorf("Pool(no-such-pool) = %v, want none", p)
			}
		})
	}
}

// wantError is one FieldError New should report, and a part of its
// message.
type wantError struct {
	Kind  Kind
	Name  string
	Field string
	Text  string
}

func TestNewErrors(t *testing.T) {
	outside := func(o *metav1.ObjectMeta) { o.Namespace = "default" }
	tests := []struct {
		name string
		in   Resources
		want []wantError
	}{{
		name: "pool in another namespace",
		in:   Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{with(ipPool("blue", "203.0.113.0/28"), func(p *v1beta1.IPAddressPool) { outside(&p.ObjectMeta) })}},
		want: []wantError{{KindIPAddressPool, "blue", "metadata.namespace", `namespace "default" is not ironlb's namespace "ironlb-system": ironlb only reads objects in its own namespace`}},
	}, {
		name: "every kind in another namespace",
		in: Resources{
			Namespace:         ns,
			L2Advertisements:  []v1beta1.L2Advertisement{with(l2Adv("l2"), func(a *v1beta1.L2Advertisement) { outside(&a.ObjectMeta) })},
			BGPPeers:          []v1beta1.BGPPeer{with(bgpPeer("tor", "192.0.2.1"), func(p *v1beta1.BGPPeer) { outside(&p.ObjectMeta) })},
			BGPAdvertisements: []v1beta1.BGPAdvertisement{with(bgpAdv("bgp"), func(a *v1beta1.BGPAdvertisement) { outside(&a.ObjectMeta) })},
			Communities:       []v1beta1.Community{with(communities("c", "a", "1:1"), func(c *v1beta1.Community) { outside(&c.ObjectMeta) })},
		},
		want: []wantError{
			{KindCommunity, "c", "metadata.namespace", "only reads objects in its own namespace"},
			{KindBGPPeer, "tor", "metadata.namespace", "only reads objects in its own namespace"},
			{KindL2Advertisement, "l2", "metadata.namespace", "only reads objects in its own namespace"},
			{KindBGPAdvertisement, "bgp", "metadata.namespace", "only reads objects in its own namespace"},
		},
	}, {
		name: "two pools of one name",
		in:   Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{ipPool("blue", "203.0.113.0/28"), ipPool("blue", "198.51.100.0/28")}},
		want: []wantError{{KindIPAddressPool, "blue", "metadata.name", `another IPAddressPool is named "blue"`}},
	}, {
		name: "unparsable address",
		in:   Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{ipPool("blue", "203.0.113.0/28", "203.0.113.300")}},
		want: []wantError{{KindIPAddressPool, "blue", "spec.addresses[1]", `"203.0.113.300" is not an IP address, a CIDR or a range`}},
	}, {
		name: "reversed range",
		in:   Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{ipPool("blue", "203.0.113.0/28", "203.0.113.20-203.0.113.10")}},
		want: []wantError{{KindIPAddressPool, "blue", "spec.addresses[1]", "range 203.0.113.20-203.0.113.10 is reversed: the first address must not be greater than the last"}},
	}, {
		name: "mixed-family range",
		in:   Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{ipPool("blue", "203.0.113.1-2001:db8::1")}},
		want: []wantError{{KindIPAddressPool, "blue", "spec.addresses[0]", "mixes IPv4 and IPv6"}},
	}, {
		name: "zone",
		in:   Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{ipPool("blue", "fe80::1%eth0")}},
		want: []wantError{{KindIPAddressPool, "blue", "spec.addresses[0]", "has a zone"}},
	}, {
		name: "no addresses",
		in:   Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{ipPool("blue")}},
		want: []wantError{{KindIPAddressPool, "blue", "spec.addresses", "a pool needs at least one address"}},
	}, {
		name: "overlapping pools",
		in: Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{
			ipPool("red", "198.51.100.0/24", "203.0.113.8-203.0.113.20"),
			ipPool("blue", "203.0.113.0/28"),
		}},
		want: []wantError{
			{KindIPAddressPool, "blue", "spec.addresses[0]", `203.0.113.0/28 overlaps IPAddressPool "red" spec.addresses[1] (203.0.113.8-203.0.113.20): both hold 203.0.113.8/29`},
			{KindIPAddressPool, "red", "spec.addresses[1]", `203.0.113.8-203.0.113.20 overlaps IPAddressPool "blue" spec.addresses[0] (203.0.113.0/28): both hold 203.0.113.8/29`},
		},
	}, {
		name: "overlapping IPv6 pools",
		in: Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{
			ipPool("blue", "2001:db8::/64"),
			ipPool("red", "2001:db8::ff"),
		}},
		want: []wantError{
			{KindIPAddressPool, "blue", "spec.addresses[0]", `overlaps IPAddressPool "red" spec.addresses[0] (2001:db8::ff/128): both hold 2001:db8::ff/128`},
			{KindIPAddressPool, "red", "spec.addresses[0]", `overlaps IPAddressPool "blue" spec.addresses[0] (2001:db8::/64)`},
		},
	}, {
		name: "overlapping entries of one pool",
		in:   Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{ipPool("blue", "203.0.113.0/28", "198.51.100.1", "203.0.113.15-203.0.113.17")}},
		want: []wantError{{KindIPAddressPool, "blue", "spec.addresses[2]", "203.0.113.15-203.0.113.17 overlaps spec.addresses[0] (203.0.113.0/28): both hold 203.0.113.15/32"}},
	}, {
		name: "one address twice in one pool",
		in:   Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{ipPool("blue", "203.0.113.5", "203.0.113.5/32")}},
		want: []wantError{{KindIPAddressPool, "blue", "spec.addresses[1]", "overlaps spec.addresses[0]"}},
	}, {
		name: "bad service allocation",
		in: Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{with(ipPool("blue", "203.0.113.0/28"), func(p *v1beta1.IPAddressPool) {
			p.Spec.AllocateTo = &v1beta1.ServiceAllocation{
				Priority:           -1,
				Namespaces:         []string{"web", "Not_A_Namespace"},
				NamespaceSelectors: []metav1.LabelSelector{{}, {MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Like", Values: []string{"prod"}}}}},
				ServiceSelectors:   []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "not a label value"}}},
			}
		})}},
		want: []wantError{
			{KindIPAddressPool, "blue", "spec.serviceAllocation.priority", "priority -1 is negative"},
			{KindIPAddressPool, "blue", "spec.serviceAllocation.namespaces[1]", `"Not_A_Namespace" is not a namespace name`},
			{KindIPAddressPool, "blue", "spec.serviceAllocation.namespaceSelectors[1]", `invalid label selector: "Like" is not a valid label selector operator`},
			{KindIPAddressPool, "blue", "spec.serviceAllocation.serviceSelectors[0]", "invalid label selector"},
		},
	}, {
		name: "l2 advertisement naming a missing pool",
		in: Resources{
			Namespace:        ns,
			Pools:            []v1beta1.IPAddressPool{ipPool("blue", "203.0.113.0/28")},
			L2Advertisements: []v1beta1.L2Advertisement{l2Adv("l2", "blue", "green")},
		},
		want: []wantError{{KindL2Advertisement, "l2", "spec.ipAddressPools[1]", `IPAddressPool "green" does not exist in namespace "ironlb-system"`}},
	}, {
		name: "l2 advertisement with bad selectors",
		in: Resources{Namespace: ns, L2Advertisements: []v1beta1.L2Advertisement{with(l2Adv("l2"), func(a *v1beta1.L2Advertisement) {
			a.Spec.IPAddressPoolSelectors = []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpExists, Values: []string{"gold"}}}}}
			a.Spec.NodeSelectors = []metav1.LabelSelector{{}, {MatchLabels: map[string]string{"bad key!": "a"}}}
		})}},
		want: []wantError{
			{KindL2Advertisement, "l2", "spec.ipAddressPoolSelectors[0]", "invalid label selector"},
			{KindL2Advertisement, "l2", "spec.nodeSelectors[1]", "invalid label selector"},
		},
	}, {
		name: "l2 advertisement with bad interfaces",
		in: Resources{Namespace: ns, L2Advertisements: []v1beta1.L2Advertisement{with(l2Adv("l2"), func(a *v1beta1.L2Advertisement) {
			a.Spec.Interfaces = []string{"eth0", "", "abcdefghijklmnop", "eth0/1", "eth 0", "eth0:1", "..", "abcdefghijklmno"}
		})}},
		want: []wantError{
			{KindL2Advertisement, "l2", "spec.interfaces[1]", "empty interface name"},
			{KindL2Advertisement, "l2", "spec.interfaces[2]", `interface name "abcdefghijklmnop" is 16 bytes long: Linux allows at most 15`},
			{KindL2Advertisement, "l2", "spec.interfaces[3]", `interface name "eth0/1" contains "/"`},
			{KindL2Advertisement, "l2", "spec.interfaces[4]", `interface name "eth 0" contains white space`},
			{KindL2Advertisement, "l2", "spec.interfaces[5]", `interface name "eth0:1" contains`},
			{KindL2Advertisement, "l2", "spec.interfaces[6]", `".." is not an interface name`},
		},
	}, {
		name: "bgp advertisement naming a missing pool, peer and alias",
		in: Resources{
			Namespace: ns,
			Pools:     []v1beta1.IPAddressPool{ipPool("blue", "203.0.113.0/28")},
			BGPPeers:  []v1beta1.BGPPeer{bgpPeer("tor", "192.0.2.1")},
			BGPAdvertisements: []v1beta1.BGPAdvertisement{with(bgpAdv("bgp", "green", "blue"), func(a *v1beta1.BGPAdvertisement) {
				a.Spec.AggregationLength = ptrTo[int32](28)
				a.Spec.Peers = []string{"tor", "spine"}
				a.Spec.Communities = []string{"1:1", "no-such-alias"}
			})},
		},
		want: []wantError{
			{KindBGPAdvertisement, "bgp", "spec.ipAddressPools[0]", `IPAddressPool "green" does not exist`},
			{KindBGPAdvertisement, "bgp", "spec.communities[1]", `"no-such-alias" is neither a community value such as 65535:65282 or large:64512:1:2 nor an alias defined by a Community object`},
			{KindBGPAdvertisement, "bgp", "spec.peers[1]", `BGPPeer "spine" does not exist in namespace "ironlb-system"`},
		},
	}, {
		name: "bgp advertisement with malformed communities",
		in: Resources{Namespace: ns, BGPAdvertisements: []v1beta1.BGPAdvertisement{with(bgpAdv("bgp"), func(a *v1beta1.BGPAdvertisement) {
			a.Spec.Communities = []string{"65536:1", "large:1:2", "1:2"}
		})}},
		want: []wantError{
			{KindBGPAdvertisement, "bgp", "spec.communities[0]", `invalid community "65536:1": "65536" is not a number from 0 to 65535`},
			{KindBGPAdvertisement, "bgp", "spec.communities[1]", `invalid large community "large:1:2"`},
		},
	}, {
		name: "aggregation length covering addresses outside the pool",
		in: Resources{
			Namespace: ns,
			Pools: []v1beta1.IPAddressPool{
				ipPool("blue", "203.0.113.0/28", "2001:db8::/120"),
				ipPool("red", "198.51.100.10-198.51.100.20"),
			},
			BGPAdvertisements: []v1beta1.BGPAdvertisement{
				with(bgpAdv("v4", "blue"), func(a *v1beta1.BGPAdvertisement) { a.Spec.AggregationLength = ptrTo[int32](24) }),
				with(bgpAdv("v6", "blue"), func(a *v1beta1.BGPAdvertisement) { a.Spec.AggregationLengthV6 = ptrTo[int32](64) }),
				with(bgpAdv("range"), func(a *v1beta1.BGPAdvertisement) { a.Spec.AggregationLength = ptrTo[int32](30) }),
			},
		},
		want: []wantError{
			{KindBGPAdvertisement, "range", "spec.aggregationLength", `aggregation length 30 would advertise addresses outside IPAddressPool "red": its addresses 198.51.100.10-198.51.100.20 need an aggregation length of at least 32`},
			{KindBGPAdvertisement, "v4", "spec.aggregationLength", `aggregation length 24 would advertise addresses outside IPAddressPool "blue": its addresses 203.0.113.0/28 need an aggregation length of at least 28`},
			{KindBGPAdvertisement, "v6", "spec.aggregationLengthV6", `aggregation length 64 would advertise addresses outside IPAddressPool "blue": its addresses 2001:db8::/120 need an aggregation length of at least 120`},
		},
	}, {
		name: "aggregation length out of range",
		in: Resources{Namespace: ns, BGPAdvertisements: []v1beta1.BGPAdvertisement{with(bgpAdv("bgp"), func(a *v1beta1.BGPAdvertisement) {
			a.Spec.AggregationLength = ptrTo[int32](33)
			a.Spec.AggregationLengthV6 = ptrTo[int32](-1)
		})}},
		want: []wantError{
			{KindBGPAdvertisement, "bgp", "spec.aggregationLength", "aggregation length 33 is not a prefix length from 0 to 32"},
			{KindBGPAdvertisement, "bgp", "spec.aggregationLengthV6", "aggregation length -1 is not a prefix length from 0 to 128"},
		},
	}, {
		name: "bgp advertisement with bad selectors",
		in: Resources{Namespace: ns, BGPAdvertisements: []v1beta1.BGPAdvertisement{with(bgpAdv("bgp"), func(a *v1beta1.BGPAdvertisement) {
			a.Spec.IPAddressPoolSelectors = []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn}}}}
			a.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "-a"}}}
		})}},
		want: []wantError{
			{KindBGPAdvertisement, "bgp", "spec.ipAddressPoolSelectors[0]", "invalid label selector"},
			{KindBGPAdvertisement, "bgp", "spec.nodeSelectors[0]", "invalid label selector"},
		},
	}, {
		name: "password secret missing",
		in: Resources{Namespace: ns, BGPPeers: []v1beta1.BGPPeer{with(bgpPeer("tor", "192.0.2.1"), func(p *v1beta1.BGPPeer) {
			p.Spec.PasswordSecret = corev1.SecretReference{Name: "tor-md5"}
		})}, Secrets: []corev1.Secret{with(secret("tor-md5", map[string]string{"password": "x"}), func(s *corev1.Secret) { s.Namespace = "default" })}},
		want: []wantError{{KindBGPPeer, "tor", "spec.passwordSecret.name", `Secret "tor-md5" does not exist in namespace "ironlb-system"`}},
	}, {
		name: "password secret without the password key",
		in: Resources{Namespace: ns, BGPPeers: []v1beta1.BGPPeer{with(bgpPeer("tor", "192.0.2.1"), func(p *v1beta1.BGPPeer) {
			p.Spec.PasswordSecret = corev1.SecretReference{Name: "tor-md5"}
		})}, Secrets: []corev1.Secret{secret("tor-md5", map[string]string{"username": "x"})}},
		want: []wantError{{KindBGPPeer, "tor", "spec.passwordSecret.name", `Secret "tor-md5" has no "password" key`}},
	}, {
		name: "empty password",
		in: Resources{Namespace: ns, BGPPeers: []v1beta1.BGPPeer{with(bgpPeer("tor", "192.0.2.1"), func(p *v1beta1.BGPPeer) {
			p.Spec.PasswordSecret = corev1.SecretReference{Name: "tor-md5"}
		})}, Secrets: []corev1.Secret{secret("tor-md5", map[string]string{"password": ""})}},
		want: []wantError{{KindBGPPeer, "tor", "spec.passwordSecret.name", `the "password" key of Secret "tor-md5" is empty`}},
	}, {
		name: "password secret in another namespace",
		in: Resources{Namespace: ns, BGPPeers: []v1beta1.BGPPeer{with(bgpPeer("tor", "192.0.2.1"), func(p *v1beta1.BGPPeer) {
			p.Spec.PasswordSecret = corev1.SecretReference{Name: "tor-md5", Namespace: "kube-system"}
		})}},
		want: []wantError{{KindBGPPeer, "tor", "spec.passwordSecret.namespace", `Secret kube-system/tor-md5 is not in ironlb's namespace "ironlb-system": ironlb only reads Secrets in its own namespace`}},
	}, {
		name: "password secret without a name",
		in: Resources{Namespace: ns, BGPPeers: []v1beta1.BGPPeer{with(bgpPeer("tor", "192.0.2.1"), func(p *v1beta1.BGPPeer) {
			p.Spec.PasswordSecret = corev1.SecretReference{Namespace: ns}
		})}},
		want: []wantError{{KindBGPPeer, "tor", "spec.passwordSecret.name", "passwordSecret needs the name of a Secret"}},
	}, {
		name: "duplicate peers",
		in: Resources{Namespace: ns, BGPPeers: []v1beta1.BGPPeer{
			bgpPeer("tor-b", "192.0.2.1"),
			with(bgpPeer("tor-a", "192.0.2.1"), func(p *v1beta1.BGPPeer) { p.Spec.Port = 179 }),
			with(bgpPeer("tor-c", "192.0.2.1"), func(p *v1beta1.BGPPeer) { p.Spec.Port = 1179 }),
		}},
		want: []wantError{
			{KindBGPPeer, "tor-a", "spec.peerAddress", `192.0.2.1 port 179 is also the peer of BGPPeer "tor-b": each router address and port may have one BGPPeer`},
			{KindBGPPeer, "tor-b", "spec.peerAddress", `192.0.2.1 port 179 is also the peer of BGPPeer "tor-a"`},
		},
	}, {
		name: "bad peer addresses",
		in: Resources{Namespace: ns, BGPPeers: []v1beta1.BGPPeer{
			with(bgpPeer("a", "192.0.2.300"), func(p *v1beta1.BGPPeer) { p.Spec.SrcAddress = "nope"; p.Spec.RouterID = "2001:db8::1" }),
			with(bgpPeer("b", "fe80::1%eth0"), func(p *v1beta1.BGPPeer) { p.Spec.RouterID = "0.0.0.0" }),
			with(bgpPeer("c", "192.0.2.1"), func(p *v1beta1.BGPPeer) { p.Spec.SrcAddress = "2001:db8::2" }),
			bgpPeer("d", ""),
			bgpPeer("e", "::ffff:192.0.2.1"),
			bgpPeer("f", "224.0.0.5"),
		}},
		want: []wantError{
			{KindBGPPeer, "a", "spec.peerAddress", `"192.0.2.300" is not an IP address`},
			{KindBGPPeer, "a", "spec.sourceAddress", `"nope" is not an IP address`},
			{KindBGPPeer, "a", "spec.routerID", "router ID 2001:db8::1 is not an IPv4 address"},
			{KindBGPPeer, "b", "spec.peerAddress", `address "fe80::1%eth0" has a zone`},
			{KindBGPPeer, "b", "spec.routerID", "address 0.0.0.0 is unspecified"},
			{KindBGPPeer, "c", "spec.sourceAddress", "source address 2001:db8::2 is IPv6 but the peer address 192.0.2.1 is IPv4: they must be of the same family"},
			{KindBGPPeer, "d", "spec.peerAddress", "an address is required"},
			{KindBGPPeer, "e", "spec.peerAddress", "IPv4-mapped IPv6 address: write it as 192.0.2.1"},
			{KindBGPPeer, "f", "spec.peerAddress", "multicast"},
		},
	}, {
		name: "bad peer timers",
		in: Resources{Namespace: ns, BGPPeers: []v1beta1.BGPPeer{
			with(bgpPeer("a", "192.0.2.1"), func(p *v1beta1.BGPPeer) { p.Spec.HoldTime = dur(2 * time.Second) }),
			with(bgpPeer("b", "192.0.2.2"), func(p *v1beta1.BGPPeer) {
				p.Spec.HoldTime = dur(9 * time.Second)
				p.Spec.KeepaliveTime = dur(9 * time.Second)
			}),
			with(bgpPeer("c", "192.0.2.3"), func(p *v1beta1.BGPPeer) { p.Spec.KeepaliveTime = dur(90 * time.Second) }),
			with(bgpPeer("d", "192.0.2.4"), func(p *v1beta1.BGPPeer) {
				p.Spec.HoldTime = dur(-time.Second)
				p.Spec.KeepaliveTime = dur(-time.Second)
				p.Spec.ConnectTime = dur(500 * time.Millisecond)
			}),
			with(bgpPeer("e", "192.0.2.5"), func(p *v1beta1.BGPPeer) { p.Spec.HoldTime = dur(65536 * time.Second) }),
		}},
		want: []wantError{
			{KindBGPPeer, "a", "spec.holdTime", "hold time 2s must be 0s (no keepalives) or at least 3s"},
			{KindBGPPeer, "b", "spec.keepaliveTime", "keepalive time 9s must be shorter than the hold time 9s"},
			{KindBGPPeer, "c", "spec.keepaliveTime", "keepalive time 1m30s must be shorter than the hold time 1m30s"},
			{KindBGPPeer, "d", "spec.holdTime", "hold time -1s is negative"},
			{KindBGPPeer, "d", "spec.keepaliveTime", "keepalive time -1s is negative"},
			{KindBGPPeer, "d", "spec.connectTime", "connect time 500ms must be from 1s to 18h12m15s"},
			{KindBGPPeer, "e", "spec.holdTime", "hold time 18h12m16s is longer than BGP allows (18h12m15s)"},
		},
	}, {
		name: "AS number 0",
		in: Resources{Namespace: ns, BGPPeers: []v1beta1.BGPPeer{with(bgpPeer("tor", "192.0.2.1"), func(p *v1beta1.BGPPeer) {
			p.Spec.MyASN = 0
			p.Spec.ASN = 0
		})}},
		want: []wantError{
			{KindBGPPeer, "tor", "spec.myASN", "AS number 0 is reserved"},
			{KindBGPPeer, "tor", "spec.peerASN", "AS number 0 is reserved"},
		},
	}, {
		name: "bgp peer with a bad node selector",
		in: Resources{Namespace: ns, BGPPeers: []v1beta1.BGPPeer{with(bgpPeer("tor", "192.0.2.1"), func(p *v1beta1.BGPPeer) {
			p.Spec.NodeSelectors = []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "", Operator: metav1.LabelSelectorOpExists}}}}
		})}},
		want: []wantError{{KindBGPPeer, "tor", "spec.nodeSelectors[0]", "invalid label selector"}},
	}, {
		name: "malformed community aliases",
		in: Resources{Namespace: ns, Communities: []v1beta1.Community{
			communities("c", "ok", "1:1", "bad", "1:1:1", "", "2:2", "7:7", "3:3", "worse", "large:1"),
		}},
		want: []wantError{
			{KindCommunity, "c", "spec.communities[1].value", `invalid community "1:1:1"`},
			{KindCommunity, "c", "spec.communities[2].name", "empty alias name"},
			{KindCommunity, "c", "spec.communities[3].name", `alias name "7:7" is itself a community value`},
			{KindCommunity, "c", "spec.communities[4].value", `invalid large community "large:1"`},
		},
	}, {
		name: "one alias in two Community objects",
		in: Resources{Namespace: ns, Communities: []v1beta1.Community{
			communities("b", "other", "2:2", "no-advertise", "65535:65282"),
			communities("a", "no-advertise", "65535:65282"),
		}},
		want: []wantError{
			{KindCommunity, "a", "spec.communities[0].name", `alias "no-advertise" is also defined by Community "b" spec.communities[1].name: an alias may be defined once`},
			{KindCommunity, "b", "spec.communities[1].name", `alias "no-advertise" is also defined by Community "a" spec.communities[0].name`},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(tt.in)
			if err == nil {
				t.Fatalf("New = %+v, want errors", got)
			}
			if got != nil {
				t.Errorf("New returned a Config along with its error: %+v", got)
			}
			checkErrors(t, err, tt.want)
		})
	}
}

// checkErrors fails t unless err holds exactly the FieldErrors of want, in
// order, each with a text naming its object and field and holding its Text.
func checkErrors(t *testing.T, err error, want []wantError) {
	t.Helper()
	fes := FieldErrors(err)
	var got []wantError
	for _, fe := range fes {
		got = append(got, wantError{fe.Kind, fe.Name, fe.Field, ""})
	}
	var wantRefs []wantError
	for _, w := range want {
		wantRefs = append(wantRefs, wantError{w.Kind, w.Name, w.Field, ""})
	}
	if diff := cmp.Diff(wantRefs, got); diff != "" {
		t.Fatalf("objects and fields of the errors (-want +got):\n%s\nerror:\n%v", diff, err)
	}
	for i, w := range want {
		text := fes[i].Error()
		prefix := fmt.Sprintf("%s %q: %s: ", w.Kind, w.Name, w.Field)
		if !strings.HasPrefix(text, prefix) {
			t.Errorf("error %q does not start with %q", text, prefix)
		}
		if !strings.Contains(text, w.Text) {
			t.Errorf("error %q does not contain %q", text, w.Text)
		}
		if !strings.Contains(err.Error(), text) {
			t.Errorf("the joined error does not hold %q:\n%v", text, err)
		}
	}
}

func TestFieldErrorText(t *testing.T) {
	_, err := New(Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{ipPool("blue", "203.0.113.0/28", "203.0.113.20-203.0.113.10")}})
	want := `IPAddressPool "blue": spec.addresses[1]: range 203.0.113.20-203.0.113.10 is reversed: the first address must not be greater than the last`
	if err == nil || err.Error() != want {
		t.Errorf("New error = %v, want %s", err, want)
	}
}

func TestNewCollectsEveryError(t *testing.T) {
	_, err := New(Resources{
		Namespace: ns,
		Pools: []v1beta1.IPAddressPool{
			ipPool("blue", "203.0.113.0/28", "banana"),
			ipPool("red", "203.0.113.8/29"),
		},
		L2Advertisements:  []v1beta1.L2Advertisement{l2Adv("l2", "green")},
		BGPPeers:          []v1beta1.BGPPeer{bgpPeer("tor", "192.0.2.1"), bgpPeer("tor-2", "192.0.2.1")},
		BGPAdvertisements: []v1beta1.BGPAdvertisement{with(bgpAdv("bgp"), func(a *v1beta1.BGPAdvertisement) { a.Spec.Communities = []string{"65536:0"} })},
		Communities:       []v1beta1.Community{with(communities("c", "x", "1:1"), func(c *v1beta1.Community) { c.Namespace = "elsewhere" })},
	})
	checkErrors(t, err, []wantError{
		{KindIPAddressPool, "blue", "spec.addresses[1]", `"banana" is not an IP address`},
		{KindIPAddressPool, "blue", "spec.addresses[0]", `overlaps IPAddressPool "red"`},
		{KindIPAddressPool, "red", "spec.addresses[0]", `overlaps IPAddressPool "blue"`},
		{KindCommunity, "c", "metadata.namespace", "only reads objects in its own namespace"},
		{KindBGPPeer, "tor", "spec.peerAddress", `also the peer of BGPPeer "tor-2"`},
		{KindBGPPeer, "tor-2", "spec.peerAddress", `also the peer of BGPPeer "tor"`},
		{KindL2Advertisement, "l2", "spec.ipAddressPools[0]", `IPAddressPool "green" does not exist`},
		{KindBGPAdvertisement, "bgp", "spec.communities[0]", `"65536" is not a number`},
	})

	byObject := ObjectErrors(err)
	wantCounts := map[ObjectRef]int{
		{KindIPAddressPool, "blue"}:   2,
		{KindIPAddressPool, "red"}:    1,
		{KindCommunity, "c"}:          1,
		{KindBGPPeer, "tor"}:          1,
		{KindBGPPeer, "tor-2"}:        1,
		{KindL2Advertisement, "l2"}:   1,
		{KindBGPAdvertisement, "bgp"}: 1,
	}
	gotCounts := make(map[ObjectRef]int)
	for ref, errs := range byObject {
		gotCounts[ref] = len(errs)
		for _, e := range errs {
			if e.Object() != ref {
				t.Errorf("ObjectErrors[%v] holds an error of %v", ref, e.Object())
			}
		}
	}
	if diff := cmp.Diff(wantCounts, gotCounts); diff != "" {
		t.Errorf("errors per object (-want +got):\n%s", diff)
	}
}

func TestFieldErrorsUnwrap(t *testing.T) {
	inner := &FieldError{Kind: KindBGPPeer, Name: "tor", Field: "spec.peerASN", Err: fmt.Errorf("bad")}
	wrapped := fmt.Errorf("reconcile: %w", fmt.Errorf("build: %w", inner))
	got := FieldErrors(wrapped)
	if len(got) != 1 || got[0] != inner {
		t.Errorf("FieldErrors(wrapped) = %v, want [%v]", got, inner)
	}
	if got := FieldErrors(nil); got != nil {
		t.Errorf("FieldErrors(nil) = %v, want nil", got)
	}
	if got := FieldErrors(fmt.Errorf("plain")); got != nil {
		t.Errorf("FieldErrors(plain) = %v, want nil", got)
	}
	if ref := inner.Object().String(); ref != `BGPPeer "tor"` {
		t.Errorf("ObjectRef.String() = %q", ref)
	}
}

// reversed returns a copy of s in reverse order.
func reversed[T any](s []T) []T {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func TestNewIgnoresInputOrder(t *testing.T) {
	in := Resources{
		Namespace: ns,
		Pools: []v1beta1.IPAddressPool{
			with(ipPool("a", "203.0.113.0/28", "2001:db8::/120", "198.51.100.1"), func(p *v1beta1.IPAddressPool) { p.Labels = map[string]string{"t": "x"} }),
			ipPool("b", "203.0.113.16/28"),
			with(ipPool("c", "203.0.113.32/28"), func(p *v1beta1.IPAddressPool) { p.Labels = map[string]string{"t": "x"} }),
		},
		L2Advertisements: []v1beta1.L2Advertisement{
			with(l2Adv("l2-a", "b"), func(a *v1beta1.L2Advertisement) {
				a.Spec.IPAddressPoolSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"t": "x"}}}
				a.Spec.Interfaces = []string{"eth2", "eth1"}
			}),
			l2Adv("l2-b"),
		},
		BGPPeers:    []v1beta1.BGPPeer{bgpPeer("p1", "192.0.2.1"), bgpPeer("p2", "192.0.2.2"), bgpPeer("p3", "2001:db8::1")},
		Communities: []v1beta1.Community{communities("c1", "x", "1:1", "y", "large:1:1:1"), communities("c2", "z", "2:2")},
		BGPAdvertisements: []v1beta1.BGPAdvertisement{with(bgpAdv("adv", "c", "a"), func(a *v1beta1.BGPAdvertisement) {
			a.Spec.Communities = []string{"z", "y", "x", "3:3"}
			a.Spec.Peers = []string{"p3", "p1"}
		}), bgpAdv("adv2")},
	}
	rev := Resources{
		Namespace:         ns,
		Pools:             reversed(in.Pools),
		L2Advertisements:  reversed(in.L2Advertisements),
		BGPPeers:          reversed(in.BGPPeers),
		Communities:       reversed(in.Communities),
		BGPAdvertisements: reversed(in.BGPAdvertisements),
	}
	want, err := New(in)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	got, err := New(rev)
	if err != nil {
		t.Fatalf("New(reversed): %v", err)
	}
	if diff := cmp.Diff(want, got, configOpts); diff != "" {
		t.Errorf("New of the reversed input (-want +got):\n%s", diff)
	}

	// Break every object and check the errors come in the same order too.
	breakAll := func(r Resources) Resources {
		r.Pools = append(slices.Clone(r.Pools), ipPool("overlap", "203.0.113.0/24"))
		r.BGPPeers = append(slices.Clone(r.BGPPeers), bgpPeer("p0", "192.0.2.1"))
		return r
	}
	_, wantErr := New(breakAll(in))
	_, gotErr := New(breakAll(rev))
	if wantErr == nil || gotErr == nil || wantErr.Error() != gotErr.Error() {
		t.Errorf("errors depend on input order:\n%v\n---\n%v", wantErr, gotErr)
	}
}

func TestNewSharesNoMemory(t *testing.T) {
	p := with(ipPool("blue", "203.0.113.0/28"), func(p *v1beta1.IPAddressPool) {
		p.Labels = map[string]string{"tier": "gold"}
		p.Spec.AllocateTo = &v1beta1.ServiceAllocation{Namespaces: []string{"web"}}
	})
	l2 := with(l2Adv("l2", "blue"), func(a *v1beta1.L2Advertisement) { a.Spec.Interfaces = []string{"eth0"} })
	in := Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{p}, L2Advertisements: []v1beta1.L2Advertisement{l2}}
	c, err := New(in)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	p.Labels["tier"] = "lead"
	p.Spec.AllocateTo.Namespaces[0] = "changed"
	l2.Spec.IPAddressPools[0] = "changed"
	l2.Spec.Interfaces[0] = "changed"
	want := &Config{
		Pools:            []*Pool{{Name: "blue", Labels: labels.Set{"tier": "gold"}, Ranges: []Range{rng("203.0.113.0", "203.0.113.15")}, AutoAssign: true, Namespaces: []string{"web"}}},
		L2Advertisements: []*L2Advertisement{{Name: "l2", Pools: []string{"blue"}, Interfaces: []string{"eth0"}}},
	}
	if diff := cmp.Diff(want, c, configOpts); diff != "" {
		t.Errorf("Config after the input changed (-want +got):\n%s", diff)
	}
}

func TestPoolOf(t *testing.T) {
	c, err := New(Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{
		ipPool("blue", "203.0.113.0/28", "2001:db8::/120"),
		ipPool("red", "203.0.113.16-203.0.113.20", "198.51.100.7"),
	}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, tt := range []struct {
		addr string
		want string // "" for none
	}{
		{"203.0.113.0", "blue"},
		{"203.0.113.15", "blue"},
		{"203.0.113.16", "red"},
		{"203.0.113.20", "red"},
		{"203.0.113.21", ""},
		{"198.51.100.7", "red"},
		{"198.51.100.6", ""},
		{"2001:db8::ff", "blue"},
		{"2001:db8::100", ""},
		{"::ffff:203.0.113.1", ""},
		{"0.0.0.0", ""},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
	} {
		p, ok := c.PoolOf(addr(tt.addr))
		var got string
		if ok {
			got = p.Name
		}
		if got != tt.want {
			t.Errorf("PoolOf(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestPoolContainsAssignableSize(t *testing.T) {
	p := &Pool{
		Name: "blue",
		Ranges: []Range{
			rng("10.0.0.0", "10.0.0.255"),
			rng("10.0.1.250", "10.0.2.5"),
			rng("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"),
			rng("2001:db8:1::", "2001:db8:1::ff"),
		},
		AvoidBuggyIPs: true,
	}
	for _, tt := range []struct {
		addr                 string
		contains, assignable bool
	}{
		{"10.0.0.0", true, false},
		{"10.0.0.1", true, true},
		{"10.0.0.255", true, false},
		{"10.0.1.0", false, false},
		{"10.0.1.249", false, false},
		{"10.0.1.255", true, false},
		{"10.0.2.0", true, false},
		{"10.0.2.5", true, true},
		{"10.0.2.6", false, false},
		{"2001:db8::ff", true, true},
		{"2001:db8:1::100", false, false},
		{"2001:db8:1::", true, true},
	} {
		a := addr(tt.addr)
		if got := p.Contains(a); got != tt.contains {
			t.Errorf("Contains(%s) = %t, want %t", tt.addr, got, tt.contains)
		}
		if got := p.Assignable(a); got != tt.assignable {
			t.Errorf("Assignable(%s) = %t, want %t", tt.addr, got, tt.assignable)
		}
	}
	// 256 less .0 and .255, plus 10.0.1.250-10.0.2.5 (12) less 10.0.1.255 and 10.0.2.0.
	if got, want := p.Size(IPv4), uint64(254+10); got != want {
		t.Errorf("Size(IPv4) = %d, want %d", got, want)
	}
	if got := p.Size(IPv6); got != math.MaxUint64 {
		t.Errorf("Size(IPv6) = %d, want saturated %d", got, uint64(math.MaxUint64))
	}
	p.AvoidBuggyIPs = false
	if got, want := p.Size(IPv4), uint64(256+12); got != want {
		t.Errorf("Size(IPv4) without AvoidBuggyIPs = %d, want %d", got, want)
	}
	if !p.Assignable(addr("10.0.0.0")) {
		t.Errorf("Assignable(10.0.0.0) = false without AvoidBuggyIPs")
	}
	small := &Pool{Ranges: []Range{rng("2001:db8::", "2001:db8::ff"), rng("2001:db8:1::", "2001:db8:1::1")}, AvoidBuggyIPs: true}
	if got := small.Size(IPv6); got != 258 {
		t.Errorf("Size(IPv6) = %d, want 258: AvoidBuggyIPs concerns IPv4 only", got)
	}
	if got := small.Size(IPv4); got != 0 {
		t.Errorf("Size(IPv4) of an IPv6 pool = %d, want 0", got)
	}
}

func TestCountLastOctet(t *testing.T) {
	for _, tt := range []struct {
		first, last, octet, want uint64
	}{
		{0, 255, 0, 1},
		{0, 255, 255, 1},
		{0, 0, 0, 1},
		{1, 254, 0, 0},
		{1, 254, 255, 0},
		{0, 1<<32 - 1, 0, 1 << 24},
		{0, 1<<32 - 1, 255, 1 << 24},
		{255, 256, 0, 1},
		{255, 256, 255, 1},
	} {
		if got := countLastOctet(tt.first, tt.last, tt.octet); got != tt.want {
			t.Errorf("countLastOctet(%d, %d, %d) = %d, want %d", tt.first, tt.last, tt.octet, got, tt.want)
		}
	}
}

func TestPoolAllowsService(t *testing.T) {
	tests := []struct {
		name      string
		pool      *Pool
		namespace string
		nsLabels  labels.Labels
		svcLabels labels.Labels
		want      bool
	}{
		{"no restriction", &Pool{}, "web", nil, nil, true},
		{"namespace named", &Pool{Namespaces: []string{"api", "web"}}, "web", nil, nil, true},
		{"namespace not named", &Pool{Namespaces: []string{"api", "web"}}, "db", nil, nil, false},
		{"namespace selected", &Pool{Namespaces: []string{"api"}, NamespaceSelectors: []labels.Selector{selector("team=a")}}, "db", labels.Set{"team": "a"}, nil, true},
		{"namespace not selected", &Pool{NamespaceSelectors: []labels.Selector{selector("team=a")}}, "db", labels.Set{"team": "b"}, nil, false},
		{"namespace without labels", &Pool{NamespaceSelectors: []labels.Selector{selector("team!=a")}}, "db", nil, nil, true},
		{"service selected", &Pool{ServiceSelectors: []labels.Selector{selector("expose=no"), selector("expose=yes")}}, "db", nil, labels.Set{"expose": "yes"}, true},
		{"service not selected", &Pool{ServiceSelectors: []labels.Selector{selector("expose=yes")}}, "db", nil, labels.Set{"expose": "no"}, false},
		{"namespace named, service not selected", &Pool{Namespaces: []string{"db"}, ServiceSelectors: []labels.Selector{selector("expose=yes")}}, "db", nil, nil, false},
		{"both match", &Pool{Namespaces: []string{"db"}, ServiceSelectors: []labels.Selector{selector("expose")}}, "db", nil, labels.Set{"expose": ""}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.pool.AllowsService(tt.namespace, tt.nsLabels, tt.svcLabels); got != tt.want {
				t.Errorf("AllowsService(%q, %v, %v) = %t, want %t", tt.namespace, tt.nsLabels, tt.svcLabels, got, tt.want)
			}
		})
	}
}

func TestSortPools(t *testing.T) {
	pools := []*Pool{
		{Name: "none-b"}, {Name: "two", Priority: 2}, {Name: "one-b", Priority: 1},
		{Name: "none-a"}, {Name: "one-a", Priority: 1}, {Name: "ten", Priority: 10},
	}
	SortPools(pools)
	var got []string
	for _, p := range pools {
		got = append(got, p.Name)
	}
	want := []string{"one-a", "one-b", "two", "ten", "none-a", "none-b"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SortPools (-want +got):\n%s", diff)
	}
}

func TestSelects(t *testing.T) {
	l2 := &L2Advertisement{Pools: []string{"a", "c"}, NodeSelectors: []labels.Selector{selector("zone=a"), selector("zone=b")}}
	bgp := &BGPAdvertisement{Pools: []string{"b"}, Peers: []string{"p1", "p3"}, AggregationLength: 30, AggregationLengthV6: 120}
	peer := &BGPPeer{NodeSelectors: []labels.Selector{selector("rack=1")}, MyASN: 1, ASN: 1}
	checks := []struct {
		name      string
		got, want bool
	}{
		{"l2 selects pool a", l2.SelectsPool("a"), true},
		{"l2 selects pool b", l2.SelectsPool("b"), false},
		{"l2 selects zone b", l2.SelectsNode(labels.Set{"zone": "b"}), true},
		{"l2 selects zone c", l2.SelectsNode(labels.Set{"zone": "c"}), false},
		{"l2 selects a node without labels", l2.SelectsNode(nil), false},
		{"bgp selects every node", bgp.SelectsNode(nil), true},
		{"bgp selects pool b", bgp.SelectsPool("b"), true},
		{"bgp selects pool c", bgp.SelectsPool("c"), false},
		{"bgp selects peer p3", bgp.SelectsPeer("p3"), true},
		{"bgp selects peer p2", bgp.SelectsPeer("p2"), false},
		{"bgp without peers selects every peer", (&BGPAdvertisement{}).SelectsPeer("p2"), true},
		{"peer selects rack 1", peer.SelectsNode(labels.Set{"rack": "1"}), true},
		{"peer selects rack 2", peer.SelectsNode(labels.Set{"rack": "2"}), false},
		{"peer is iBGP", peer.IBGP(), true},
		{"aggregation length v4", bgp.AggregationLengthFor(IPv4) == 30, true},
		{"aggregation length v6", bgp.AggregationLengthFor(IPv6) == 120, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %t, want %t", c.name, c.got, c.want)
		}
	}
}
