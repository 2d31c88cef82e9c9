package ipam

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/controller/allocator"
)

func service(mutate func(*corev1.Service)) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Labels: map[string]string{"tier": "front"},
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeLoadBalancer,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}, {Port: 53, Protocol: corev1.ProtocolUDP}},
			Selector:   map[string]string{"app": "web"},
		},
	}
	if mutate != nil {
		mutate(svc)
	}
	return svc
}

func TestRequestFor(t *testing.T) {
	base := allocator.Request{
		Key: "shop/web", Namespace: "shop",
		NamespaceLabels: labels.Set{"team": "a"}, ServiceLabels: labels.Set{"tier": "front"},
		Families: []config.Family{config.IPv4}, Policy: allocator.SingleStack,
		Ports:   []allocator.Port{{Protocol: allocator.TCP, Port: 80}, {Protocol: allocator.UDP, Port: 53}},
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	want := func(mutate func(*allocator.Request)) allocator.Request {
		r := base
		mutate(&r)
		return r
	}
	dual := corev1.IPFamilyPolicyRequireDualStack
	for _, tc := range []struct {
		name    string
		svc     *corev1.Service
		want    allocator.Request
		wantErr string
	}{{
		name: "plain",
		svc:  service(nil),
		want: base,
	}, {
		name: "dual stack",
		svc: service(func(s *corev1.Service) {
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
			s.Spec.IPFamilyPolicy = &dual
		}),
		want: want(func(r *allocator.Request) {
			r.Families = []config.Family{config.IPv6, config.IPv4}
			r.Policy = allocator.RequireDualStack
		}),
	}, {
		name: "ironlb annotations",
		svc: service(func(s *corev1.Service) {
			s.Annotations = map[string]string{
				"ironlb.io/address-pool":    "lan",
				"ironlb.io/loadBalancerIPs": "198.51.100.7, 2001:db8::7",
				"ironlb.io/allow-shared-ip": "dns",
			}
		}),
		want: want(func(r *allocator.Request) {
			r.Pool, r.SharingKey = "lan", "dns"
			r.IPs = []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::7")}
		}),
	}, {
		name: "MetalLB annotations",
		svc: service(func(s *corev1.Service) {
			s.Annotations = map[string]string{
				"metallb.universe.tf/address-pool":    "lan",
				"metallb.io/loadBalancerIPs":          "198.51.100.7",
				"metallb.universe.tf/allow-shared-ip": "dns",
			}
		}),
		want: want(func(r *allocator.Request) {
			r.Pool, r.SharingKey = "lan", "dns"
			r.IPs = []netip.Addr{netip.MustParseAddr("198.51.100.7")}
		}),
	}, {
		name: "same value under two prefixes",
		svc: service(func(s *corev1.Service) {
			s.Annotations = map[string]string{"ironlb.io/address-pool": "lan", "metallb.io/address-pool": "lan"}
		}),
		want: want(func(r *allocator.Request) { r.Pool = "lan" }),
	}, {
		name: "spec.loadBalancerIP",
		svc:  service(func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.51.100.9" }),
		want: want(func(r *allocator.Request) { r.IPs = []netip.Addr{netip.MustParseAddr("198.51.100.9")} }),
	}, {
		name: "externalTrafficPolicy Local",
		svc: service(func(s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.Selector = map[string]string{"app": "web", "track": "stable"}
		}),
		want: want(func(r *allocator.Request) { r.BackendKey = "selector:app=web,track=stable" }),
	}, {
		name: "no families: those of the requested addresses",
		svc: service(func(s *corev1.Service) {
			s.Spec.IPFamilies = nil
			s.Annotations = map[string]string{"ironlb.io/loadBalancerIPs": "2001:db8::7"}
		}),
		want: want(func(r *allocator.Request) {
			r.Families = []config.Family{config.IPv6}
			r.IPs = []netip.Addr{netip.MustParseAddr("2001:db8::7")}
		}),
	}, {
		name: "prefixes disagree",
		svc: service(func(s *corev1.Service) {
			s.Annotations = map[string]string{"ironlb.io/address-pool": "lan", "metallb.universe.tf/address-pool": "wan"}
		}),
		wantErr: `annotations ironlb.io/address-pool="lan" and metallb.universe.tf/address-pool="wan" disagree: keep one`,
	}, {
		name: "not an address",
		svc: service(func(s *corev1.Service) {
			s.Annotations = map[string]string{"ironlb.io/loadBalancerIPs": "198.51.100.7,banana"}
		}),
		wantErr: `annotation loadBalancerIPs: "banana" is not an IP address`,
	}, {
		name:    "CIDR in spec.loadBalancerIP",
		svc:     service(func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.51.100.0/24" }),
		wantErr: `spec.loadBalancerIP: "198.51.100.0/24" is not an IP address`,
	}, {
		name: "two of a family",
		svc: service(func(s *corev1.Service) {
			s.Annotations = map[string]string{"ironlb.io/loadBalancerIPs": "198.51.100.7,198.51.100.8"}
		}),
		wantErr: `annotation loadBalancerIPs: "198.51.100.7,198.51.100.8" asks for more than one address of a family: give at most one IPv4 and one IPv6 address`,
	}, {
		name: "both annotation and spec",
		svc: service(func(s *corev1.Service) {
			s.Spec.LoadBalancerIP = "198.51.100.9"
			s.Annotations = map[string]string{"ironlb.io/loadBalancerIPs": "198.51.100.7"}
		}),
		wantErr: "both spec.loadBalancerIP and the loadBalancerIPs annotation ask for addresses: keep one",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RequestFor(tc.svc, map[string]string{"team": "a"})
			if tc.wantErr != "" {
				reason, _ := allocator.ReasonOf(err)
				if err == nil || err.Error() != tc.wantErr || reason != allocator.InvalidRequest {
					t.Fatalf("RequestFor error = %v (reason %q), want %q (InvalidRequest)", err, reason, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("RequestFor (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSelection(t *testing.T) {
	class := func(c string) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c }
	}
	now := metav1.Now()
	for _, tc := range []struct {
		name  string
		sel   Selection
		svc   *corev1.Service
		serve bool
	}{
		{"no class, no flag", Selection{}, service(nil), true},
		{"class, no flag", Selection{}, service(class("other.io/lb")), false},
		{"class matches flag", Selection{LoadBalancerClass: "ironlb.io/lb"}, service(class("ironlb.io/lb")), true},
		{"no class, flag", Selection{LoadBalancerClass: "ironlb.io/lb"}, service(nil), false},
		{"ClusterIP", Selection{}, service(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP }), false},
		{"being deleted", Selection{}, service(func(s *corev1.Service) { s.DeletionTimestamp = &now }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sel.Serves(tc.svc); got != tc.serve {
				t.Errorf("Serves = %v, want %v", got, tc.serve)
			}
		})
	}
}

// FuzzRequestFor reads arbitrary annotations and spec.loadBalancerIP: it
// never panics, and what it accepts is a request the allocator can check.
func FuzzRequestFor(f *testing.F) {
	for _, seed := range [][3]string{
		{"198.51.100.7,2001:db8::7", "", "lan"},
		{"", "198.51.100.9", ""},
		{"fe80::1%eth0", "", ""},
		{"::ffff:198.51.100.7", "", ""},
		{",", " ", "  "},
		{"198.51.100.7,198.51.100.7,198.51.100.7", "", ""},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, ips, lbIP, pool string) {
		svc := service(func(s *corev1.Service) {
			s.Spec.IPFamilies = nil
			s.Spec.LoadBalancerIP = lbIP
			s.Annotations = map[string]string{"metallb.io/loadBalancerIPs": ips, "ironlb.io/address-pool": pool}
		})
		req, err := RequestFor(svc, nil)
		if err != nil {
			if reason, ok := allocator.ReasonOf(err); !ok || reason != allocator.InvalidRequest {
				t.Fatalf("error %v is not an InvalidRequest", err)
			}
			return
		}
		if len(req.IPs) > 2 || len(req.Families) == 0 || len(req.Families) > 2 {
			t.Fatalf("request %+v has %d addresses and %d families", req, len(req.IPs), len(req.Families))
		}
		for _, ip := range req.IPs {
			if !ip.IsValid() || ip.Zone() != "" || ip.Is4In6() {
				t.Fatalf("request address %v is not a plain address", ip)
			}
		}
	})
}
