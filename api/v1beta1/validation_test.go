package v1beta1_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	ironlbv1beta1 "github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/internal/testenv"
)

const ns = "ironlb-system"

// object decodes a YAML manifest into an unstructured object, as kubectl
// would send it.
func object(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatalf("decode manifest: %v\n%s", err, manifest)
	}
	u.SetNamespace(ns)
	return u
}

// TestCRDValidation installs the CRDs in a real API server and shows that it
// accepts a valid object of each kind, fills in the defaults, and refuses
// invalid ones with a message that names the field and what to change.
func TestCRDValidation(t *testing.T) {
	env := testenv.Start(t, testenv.Options{CRDs: true})
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}

	t.Run("valid", func(t *testing.T) {
		for _, manifest := range []string{
			`{apiVersion: ironlb.io/v1beta1, kind: IPAddressPool, metadata: {name: lan},
			  spec: {addresses: [198.51.100.200-198.51.100.249, "2001:db8:1::1:0/112"],
			         serviceAllocation: {priority: 10, namespaces: [default]}}}`,
			`{apiVersion: ironlb.io/v1beta1, kind: L2Advertisement, metadata: {name: lan},
			  spec: {ipAddressPools: [lan], interfaces: [eth0]}}`,
			`{apiVersion: ironlb.io/v1beta1, kind: BGPPeer, metadata: {name: frr},
			  spec: {myASN: 64512, peerASN: 4200000000, peerAddress: "2001:db8:1::1",
			         holdTime: 9s, keepaliveTime: 3s, connectTime: 5s,
			         passwordSecret: {name: frr-password}, enableGracefulRestart: true}}`,
			`{apiVersion: ironlb.io/v1beta1, kind: BGPPeer, metadata: {name: no-keepalives},
			  spec: {myASN: 64512, peerASN: 64512, peerAddress: 198.51.100.2, holdTime: 0s}}`,
			`{apiVersion: ironlb.io/v1beta1, kind: BGPAdvertisement, metadata: {name: routed},
			  spec: {aggregationLength: 24, aggregationLengthV6: 64, localPref: 4294967295,
			         communities: ["65535:65282", "large:1:2:3", no-export], peers: [frr]}}`,
			`{apiVersion: ironlb.io/v1beta1, kind: Community, metadata: {name: communities},
			  spec: {communities: [{name: no-export, value: "65535:65281"}]}}`,
			`{apiVersion: ironlb.io/v1beta1, kind: ServiceL2Status, metadata: {name: l2-default-web}}`,
		} {
			u := object(t, manifest)
			if err := env.Client.Create(ctx, u); err != nil {
				t.Errorf("create %s %s: %v", u.GetKind(), u.GetName(), err)
			}
		}
	})

	t.Run("defaults", func(t *testing.T) {
		pool := &ironlbv1beta1.IPAddressPool{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "lan"}, pool); err != nil {
			t.Fatal(err)
		}
		if pool.Spec.AutoAssign == nil || !*pool.Spec.AutoAssign {
			t.Errorf("IPAddressPool spec.autoAssign = %v, want defaulted to true", pool.Spec.AutoAssign)
		}
		peer := &ironlbv1beta1.BGPPeer{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "no-keepalives"}, peer); err != nil {
			t.Fatal(err)
		}
		if peer.Spec.Port != 179 {
			t.Errorf("BGPPeer spec.peerPort = %v, want defaulted to 179", peer.Spec.Port)
		}
		adv := &ironlbv1beta1.BGPAdvertisement{}
		u := object(t, `{apiVersion: ironlb.io/v1beta1, kind: BGPAdvertisement, metadata: {name: defaults}}`)
		if err := env.Client.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "defaults"}, adv); err != nil {
			t.Fatal(err)
		}
		got := [2]int32{deref(adv.Spec.AggregationLength), deref(adv.Spec.AggregationLengthV6)}
		if diff := cmp.Diff([2]int32{32, 128}, got); diff != "" {
			t.Errorf("BGPAdvertisement aggregation lengths (-want +got):\n%s", diff)
		}
	})

	t.Run("status", func(t *testing.T) {
		st := &ironlbv1beta1.ServiceL2Status{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "l2-default-web"}, st); err != nil {
			t.Fatal(err)
		}
		st.Status = ironlbv1beta1.ServiceL2StatusStatus{
			Node: "node-1", ServiceName: "web", ServiceNamespace: "default",
			Interfaces: []ironlbv1beta1.InterfaceInfo{{Name: "eth0"}},
		}
		if err := env.Client.Status().Update(ctx, st); err != nil {
			t.Fatalf("write ServiceL2Status status: %v", err)
		}
		pool := &ironlbv1beta1.IPAddressPool{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "lan"}, pool); err != nil {
			t.Fatal(err)
		}
		pool.Status.AssignedIPv4, pool.Status.AvailableIPv4 = 1, 49
		if err := env.Client.Status().Update(ctx, pool); err != nil {
			t.Fatalf("write IPAddressPool status: %v", err)
		}
	})

	for _, tc := range []struct {
		name     string
		manifest string
		want     []string // substrings of the API server's answer
	}{{
		name:     "pool without addresses",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: IPAddressPool, metadata: {name: empty}, spec: {addresses: []}}`,
		want:     []string{"spec.addresses", "should have at least 1 items"},
	}, {
		name:     "pool with negative priority",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: IPAddressPool, metadata: {name: neg}, spec: {addresses: [198.51.100.0/30], serviceAllocation: {priority: -1}}}`,
		want:     []string{"spec.serviceAllocation.priority", "greater than or equal to 0"},
	}, {
		name:     "ASN zero",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: BGPPeer, metadata: {name: asn0}, spec: {myASN: 0, peerASN: 64500, peerAddress: 198.51.100.1}}`,
		want:     []string{"spec.myASN", "greater than or equal to 1"},
	}, {
		name:     "ASN beyond 32 bits",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: BGPPeer, metadata: {name: asnbig}, spec: {myASN: 64512, peerASN: 4294967296, peerAddress: 198.51.100.1}}`,
		want:     []string{"spec.peerASN", "less than or equal to 4294967295"},
	}, {
		name:     "peer without address",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: BGPPeer, metadata: {name: noaddr}, spec: {myASN: 64512, peerASN: 64500}}`,
		want:     []string{"spec.peerAddress", "Required value"},
	}, {
		name:     "port zero",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: BGPPeer, metadata: {name: port0}, spec: {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, peerPort: 0}}`,
		want:     []string{"spec.peerPort", "greater than or equal to 1"},
	}, {
		name:     "hold time under 3s",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: BGPPeer, metadata: {name: hold2}, spec: {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, holdTime: 2s}}`,
		want:     []string{"spec.holdTime", "holdTime must be 0s (no keepalives) or at least 3s"},
	}, {
		name:     "keepalive not below hold time",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: BGPPeer, metadata: {name: ka}, spec: {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, holdTime: 9s, keepaliveTime: 9s}}`,
		want:     []string{"spec.keepaliveTime", "keepaliveTime must be shorter than holdTime"},
	}, {
		name:     "keepalive not below default hold time",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: BGPPeer, metadata: {name: ka90}, spec: {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, keepaliveTime: 120s}}`,
		want:     []string{"spec.keepaliveTime", "default 90s"},
	}, {
		name:     "hold time not a duration",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: BGPPeer, metadata: {name: holdx}, spec: {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, holdTime: soon}}`,
		want:     []string{"spec.holdTime", "should match"},
	}, {
		name:     "local preference beyond 32 bits",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: BGPAdvertisement, metadata: {name: lp}, spec: {localPref: 4294967296}}`,
		want:     []string{"spec.localPref", "less than or equal to 4294967295"},
	}, {
		name:     "IPv4 aggregation length over 32",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: BGPAdvertisement, metadata: {name: agg33}, spec: {aggregationLength: 33}}`,
		want:     []string{"spec.aggregationLength", "less than or equal to 32"},
	}, {
		name:     "IPv6 aggregation length over 128",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: BGPAdvertisement, metadata: {name: agg129}, spec: {aggregationLengthV6: 129}}`,
		want:     []string{"spec.aggregationLengthV6", "less than or equal to 128"},
	}, {
		name:     "negative aggregation length",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: BGPAdvertisement, metadata: {name: aggneg}, spec: {aggregationLength: -1}}`,
		want:     []string{"spec.aggregationLength", "greater than or equal to 0"},
	}, {
		name:     "community alias without value",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: Community, metadata: {name: novalue}, spec: {communities: [{name: a}]}}`,
		want:     []string{"spec.communities[0].value", "Required value"},
	}, {
		name:     "duplicate community alias",
		manifest: `{apiVersion: ironlb.io/v1beta1, kind: Community, metadata: {name: dup}, spec: {communities: [{name: a, value: "1:1"}, {name: a, value: "1:2"}]}}`,
		want:     []string{"spec.communities[1]", "Duplicate value"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			u := object(t, tc.manifest)
			err := env.Client.Create(ctx, u)
			if err == nil {
				t.Fatalf("the API server accepted %s %s; want it refused", u.GetKind(), u.GetName())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func deref(p *int32) int32 {
	if p == nil {
		return -1
	}
	return *p
}
