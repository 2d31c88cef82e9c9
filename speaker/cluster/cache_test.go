package cluster

import (
	"context"
	"net/netip"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/ironlb/ironlb/internal/daemon"
)

// fullService returns a Service with every field a real one may carry
// set.
func fullService(name string, policy corev1.ServiceExternalTrafficPolicy, ips ...string) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "default", UID: "uid-" + types.UID(name), ResourceVersion: "7",
			Labels:      map[string]string{"app": "web"},
			Annotations: map[string]string{"ironlb.io/address-pool": "lan", "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
		},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: policy,
			Selector:   map[string]string{"app": "web"},
			Ports:      []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: 30080}},
			ClusterIP:  "2001:db8:ffff::10",
			ClusterIPs: []string{"2001:db8:ffff::10"},
			IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol},
		},
		Status: corev1.ServiceStatus{Conditions: []metav1.Condition{{Type: "IPAllocated", Status: metav1.ConditionTrue}}},
	}
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{
			IP: ip, IPMode: ptr.To(corev1.LoadBalancerIPModeVIP), Ports: []corev1.PortStatus{{Port: 80, Protocol: corev1.ProtocolTCP}},
		})
	}
	return svc
}

// fullSlice returns an EndpointSlice of the Service name with an
// endpoint on each of nodes, every field set.
func fullSlice(name string, nodes ...string) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-abcde", Namespace: "default", UID: "uid-slice", ResourceVersion: "9",
			Labels: map[string]string{
				discoveryv1.LabelServiceName: name,
				discoveryv1.LabelManagedBy:   "endpointslice-controller.k8s.io",
			},
			OwnerReferences: []metav1.OwnerReference{{Kind: "Service", Name: name}},
		},
		AddressType: discoveryv1.AddressTypeIPv6,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}},
	}
	for i, n := range nodes {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{"2001:db8:2::" + string(rune('a'+i))},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(i == 0), Serving: ptr.To(true), Terminating: ptr.To(i != 0)},
			NodeName:   ptr.To(n),
			Zone:       ptr.To("zone-a"),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: "web-" + n},
		})
	}
	return sl
}

func TestTrimService(t *testing.T) {
	got, err := trimService(fullService("web", corev1.ServiceExternalTrafficPolicyLocal, "198.51.100.200", "2001:db8:1::1:0"))
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-web", ResourceVersion: "7"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
			{IP: "198.51.100.200"}, {IP: "2001:db8:1::1:0"},
		}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trimService (-want +got):\n%s", diff)
	}
}

func TestTrimEndpointSlice(t *testing.T) {
	got, err := trimEndpointSlice(fullSlice("web", "node1", "node2"))
	if err != nil {
		t.Fatal(err)
	}
	want := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-abcde", Namespace: "default", UID: "uid-slice", ResourceVersion: "9",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"},
		},
		AddressType: discoveryv1.AddressTypeIPv6,
		Endpoints: []discoveryv1.Endpoint{
			{NodeName: ptr.To("node1"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}},
			{NodeName: ptr.To("node2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trimEndpointSlice (-want +got):\n%s", diff)
	}
}

// TestTrimKeepsTombstones: the informer hands deleted objects it missed
// the deletion of to the transform in a tombstone, which passes as is.
func TestTrimKeepsTombstones(t *testing.T) {
	tomb := cache.DeletedFinalStateUnknown{Key: "default/web", Obj: fullService("web", "")}
	for name, trim := range map[string]func(any) (any, error){"Service": trimService, "EndpointSlice": trimEndpointSlice} {
		got, err := trim(tomb)
		if err != nil || got != any(tomb) {
			t.Errorf("%s: trim(tombstone) = %v, %v; want it unchanged", name, got, err)
		}
	}
}

// TestSnapshotOfTrimmedObjects: the Speaker reads the same cluster from
// trimmed Services and EndpointSlices as from whole ones.
func TestSnapshotOfTrimmedObjects(t *testing.T) {
	objs := []client.Object{
		fullService("web", corev1.ServiceExternalTrafficPolicyLocal, "198.51.100.200", "2001:db8:1::1:0"),
		fullService("db", corev1.ServiceExternalTrafficPolicyCluster, "2001:db8:1::1:1"),
		fullService("none", corev1.ServiceExternalTrafficPolicyCluster),
		fullSlice("web", "node1", "node2"),
		fullSlice("db", "node2"),
	}
	transforms := map[reflect.Type]ctrlcache.ByObject{}
	for obj, by := range CacheTransforms() {
		transforms[reflect.TypeOf(obj)] = by
	}
	snapshot := func(trim bool) Snapshot {
		t.Helper()
		scheme, err := daemon.Scheme()
		if err != nil {
			t.Fatal(err)
		}
		b := fake.NewClientBuilder().WithScheme(scheme)
		for _, o := range objs {
			o = o.DeepCopyObject().(client.Object)
			if by, ok := transforms[reflect.TypeOf(o)]; ok && trim {
				trimmed, err := by.Transform(o)
				if err != nil {
					t.Fatal(err)
				}
				o = trimmed.(client.Object)
			}
			b = b.WithObjects(o)
		}
		s := New(b.Build(), Options{Node: "node1", Namespace: "ironlb-system"})
		snap, err := s.snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	whole, trimmed := snapshot(false), snapshot(true)
	if len(whole.Services) != 2 || len(whole.Services[0].Endpoints)+len(whole.Services[1].Endpoints) != 3 {
		t.Fatalf("snapshot of whole objects: %+v; want 2 Services with 3 endpoints in all", whole.Services)
	}
	if diff := cmp.Diff(whole.Services, trimmed.Services, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("Services of the snapshot (-whole +trimmed):\n%s", diff)
	}
}
