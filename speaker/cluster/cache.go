package cluster

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheTransforms returns how the speaker's cache keeps the objects it
// holds by the thousand: Services and EndpointSlices cut down to the
// fields a Speaker reads, a fraction of their size. Every speaker caches
// every Service and EndpointSlice of the cluster, whichever node
// announces it.
func CacheTransforms() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&corev1.Service{}:            {Transform: trimService},
		&discoveryv1.EndpointSlice{}: {Transform: trimEndpointSlice},
	}
}

// identity returns the fields of m that name the object and its version:
// enough to read it, and to record an event about it.
func identity(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
	}
}

// trimService keeps of a Service its identity, type, external traffic
// policy and load-balancer addresses. Anything else (a tombstone of a
// deleted object) passes unchanged.
func trimService(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	out := &corev1.Service{
		TypeMeta:   svc.TypeMeta,
		ObjectMeta: identity(svc.ObjectMeta),
		Spec:       corev1.ServiceSpec{Type: svc.Spec.Type, ExternalTrafficPolicy: svc.Spec.ExternalTrafficPolicy},
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			out.Status.LoadBalancer.Ingress = append(out.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: in.IP})
		}
	}
	return out, nil
}

// trimEndpointSlice keeps of an EndpointSlice its identity, the name of
// its Service, and its endpoints' nodes and conditions. Anything else
// passes unchanged.
func trimEndpointSlice(obj any) (any, error) {
	sl, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	out := &discoveryv1.EndpointSlice{
		TypeMeta:    sl.TypeMeta,
		ObjectMeta:  identity(sl.ObjectMeta),
		AddressType: sl.AddressType,
	}
	if name, ok := sl.Labels[discoveryv1.LabelServiceName]; ok {
		out.Labels = map[string]string{discoveryv1.LabelServiceName: name}
	}
	if len(sl.Endpoints) > 0 {
		out.Endpoints = make([]discoveryv1.Endpoint, len(sl.Endpoints))
		for i, e := range sl.Endpoints {
			out.Endpoints[i] = discoveryv1.Endpoint{NodeName: e.NodeName, Conditions: e.Conditions}
		}
	}
	return out, nil
}
