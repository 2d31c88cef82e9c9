package ipam

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/controller/allocator"
)

// The Service annotations ironlb reads, without their prefix. Each is read
// under every prefix in annotationPrefixes.
const (
	annotationPool      = "address-pool"
	annotationIPs       = "loadBalancerIPs"
	annotationSharedKey = "allow-shared-ip"
)

// annotationPrefixes are the prefixes under which the Service annotations
// are read: ironlb's own, and MetalLB's current and former ones so that
// MetalLB users' Services work unchanged.
var annotationPrefixes = []string{"ironlb.io/", "metallb.io/", "metallb.universe.tf/"}

// AnnotationAllocatedFromPool is the annotation the controller sets on a
// Service to name the pool its addresses come from.
const AnnotationAllocatedFromPool = "ironlb.io/ip-allocated-from-pool"

// ConditionIPAllocated is the type of the Service condition that says
// whether the Service holds its addresses, and if not, why.
const ConditionIPAllocated = "ironlb.io/IPAllocated"

// ReasonAllocated is the condition reason of a Service that holds its
// addresses; the reasons of one that does not are allocator.Reason values.
const ReasonAllocated = "IPAllocated"

// Selection says which Services this controller serves.
type Selection struct {
	// LoadBalancerClass is the spec.loadBalancerClass of the Services
	// served; empty serves the Services that have none.
	LoadBalancerClass string
}

// Serves reports whether svc is a LoadBalancer Service of this controller's
// class, not being deleted.
func (s Selection) Serves(svc *corev1.Service) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.DeletionTimestamp != nil {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return s.LoadBalancerClass == ""
	}
	return *svc.Spec.LoadBalancerClass == s.LoadBalancerClass
}

// Key returns the allocator key of a Service: "namespace/name".
func Key(namespace, name string) string {
	return namespace + "/" + name
}

// RequestFor returns the allocator request of svc, whose namespace carries
// nsLabels. It fails with an *allocator.Error of reason InvalidRequest
// when an annotation cannot be read.
func RequestFor(svc *corev1.Service, nsLabels map[string]string) (allocator.Request, error) {
	req := allocator.Request{
		Key:             Key(svc.Namespace, svc.Name),
		Namespace:       svc.Namespace,
		NamespaceLabels: labels.Set(nsLabels),
		ServiceLabels:   labels.Set(svc.Labels),
		Created:         svc.CreationTimestamp.Time,
	}
	var err error
	if req.Pool, err = annotation(svc.Annotations, annotationPool); err != nil {
		return req, err
	}
	if req.SharingKey, err = annotation(svc.Annotations, annotationSharedKey); err != nil {
		return req, err
	}
	if req.IPs, err = requestedIPs(svc); err != nil {
		return req, err
	}
	req.Families = families(svc, req.IPs)
	req.Policy = allocator.SingleStack
	if svc.Spec.IPFamilyPolicy != nil {
		req.Policy = allocator.FamilyPolicy(*svc.Spec.IPFamilyPolicy)
	}
	for _, p := range svc.Spec.Ports {
		req.Ports = append(req.Ports, allocator.Port{Protocol: allocator.Protocol(p.Protocol), Port: uint16(p.Port)})
	}
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		// Services with externalTrafficPolicy Local share an address only
		// when they send its traffic to the same pods: the same selector.
		req.BackendKey = "selector:" + labels.SelectorFromSet(svc.Spec.Selector).String()
	}
	return req, nil
}

// annotation returns the value of the annotation name under any of the
// accepted prefixes; it is an error for two prefixes to give different
// values.
func annotation(annotations map[string]string, name string) (string, error) {
	var value, from string
	for _, prefix := range annotationPrefixes {
		v, ok := annotations[prefix+name]
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if from != "" && v != value {
			return "", invalid("annotations %s=%q and %s=%q disagree: keep one", from, value, prefix+name, v)
		}
		value, from = v, prefix+name
	}
	return value, nil
}

// requestedIPs returns the addresses svc asks for, from its
// loadBalancerIPs annotation or spec.loadBalancerIP.
func requestedIPs(svc *corev1.Service) ([]netip.Addr, error) {
	list, err := annotation(svc.Annotations, annotationIPs)
	if err != nil {
		return nil, err
	}
	field := "annotation " + annotationIPs
	if list == "" {
		list, field = strings.TrimSpace(svc.Spec.LoadBalancerIP), "spec.loadBalancerIP"
	} else if lbIP := strings.TrimSpace(svc.Spec.LoadBalancerIP); lbIP != "" {
		return nil, invalid("both spec.loadBalancerIP and the %s annotation ask for addresses: keep one", annotationIPs)
	}
	if list == "" {
		return nil, nil
	}
	var ips []netip.Addr
	for _, s := range strings.Split(list, ",") {
		ip, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || ip.Zone() != "" {
			return nil, invalid("%s: %q is not an IP address", field, strings.TrimSpace(s))
		}
		ips = append(ips, ip.Unmap())
	}
	if len(ips) > 2 || (len(ips) == 2 && config.FamilyOf(ips[0]) == config.FamilyOf(ips[1])) {
		return nil, invalid("%s: %q asks for more than one address of a family: give at most one IPv4 and one IPv6 address", field, list)
	}
	return ips, nil
}

// families returns the IP families svc needs addresses of: its
// spec.ipFamilies, which the API server fills in, or else the families of
// the addresses it asks for, or else IPv4.
func families(svc *corev1.Service, ips []netip.Addr) []config.Family {
	var fams []config.Family
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			fams = append(fams, config.IPv4)
		case corev1.IPv6Protocol:
			fams = append(fams, config.IPv6)
		}
	}
	if len(fams) > 0 {
		return fams
	}
	for _, ip := range ips {
		fams = append(fams, config.FamilyOf(ip))
	}
	if len(fams) > 0 {
		return fams
	}
	return []config.Family{config.IPv4}
}

func invalid(format string, args ...any) *allocator.Error {
	return &allocator.Error{Reason: allocator.InvalidRequest, Message: fmt.Sprintf(format, args...)}
}

// StatusIPs returns the addresses svc's status.loadBalancer.ingress shows,
// skipping host names and entries that are not addresses.
func StatusIPs(svc *corev1.Service) []netip.Addr {
	var ips []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(in.IP); err == nil {
			ips = append(ips, ip.Unmap())
		}
	}
	return ips
}
