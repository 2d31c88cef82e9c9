package allocator

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config"
)

// FamilyPolicy is a Service's ipFamilyPolicy, spelled as Kubernetes spells
// it.
type FamilyPolicy string

// The IP family policies.
const (
	// SingleStack gives the Service an address of its first family only.
	// The empty FamilyPolicy means SingleStack, as in Kubernetes.
	SingleStack FamilyPolicy = "SingleStack"
	// PreferDualStack gives the Service an address of each of its families
	// that it can, all from one pool, and at least one.
	PreferDualStack FamilyPolicy = "PreferDualStack"
	// RequireDualStack gives the Service an address of each of its families
	// from one pool, or none at all.
	RequireDualStack FamilyPolicy = "RequireDualStack"
)

// Protocol is a Service port's protocol, spelled as Kubernetes spells it.
type Protocol string

// The protocols of Service ports.
const (
	TCP  Protocol = "TCP"
	UDP  Protocol = "UDP"
	SCTP Protocol = "SCTP"
)

// Port is a protocol and port number a Service listens on. Services that
// share an address must not both use one.
type Port struct {
	// Protocol is the port's protocol; empty means TCP, as in Kubernetes.
	Protocol Protocol
	// Port is the port number.
	Port uint16
}

// String returns the port as "TCP/80".
func (p Port) String() string {
	return fmt.Sprintf("%s/%d", p.protocol(), p.Port)
}

// protocol returns the port's protocol, TCP if it has none.
func (p Port) protocol() Protocol {
	if p.Protocol == "" {
		return TCP
	}
	return p.Protocol
}

// Request is what a Service needs from the allocator, in plain values.
type Request struct {
	// Key identifies the Service: "namespace/name".
	Key string
	// Namespace is the Service's namespace, which pools' serviceAllocation
	// may name.
	Namespace string
	// NamespaceLabels are the labels of the Service's namespace, which
	// pools' namespace selectors match.
	NamespaceLabels labels.Set
	// ServiceLabels are the Service's labels, which pools' Service
	// selectors match.
	ServiceLabels labels.Set
	// Families are the Service's ipFamilies, in order: one or two of
	// config.IPv4 and config.IPv6, each once.
	Families []config.Family
	// Policy is the Service's ipFamilyPolicy.
	Policy FamilyPolicy
	// Pool is the name of the pool the Service asks for, or empty for any
	// pool that assigns addresses automatically.
	Pool string
	// IPs are the addresses the Service asks for, at most one per family.
	// With RequireDualStack there must be one for each family, with
	// SingleStack one for the first; with PreferDualStack the Service gets
	// exactly the addresses it asks for.
	IPs []netip.Addr
	// SharingKey lets Services with the same key share an address; empty
	// means the Service shares with none.
	SharingKey string
	// Ports are the Service's ports. Services sharing an address must have
	// none in common.
	Ports []Port
	// BackendKey identifies the pods the Service selects when its
	// externalTrafficPolicy is Local, and is empty when it is Cluster.
	// Services sharing an address must have the same BackendKey.
	BackendKey string
	// Created is when the Service was created. When two Services claim one
	// address on Assign, the older keeps it; between Services created at
	// the same time, the one with the smaller Key is the older.
	Created time.Time
}

// Assignment is the addresses a Service holds.
type Assignment struct {
	// Key identifies the Service, as in its Request.
	Key string
	// IPs are the Service's addresses, in the order of its Request's
	// Families.
	IPs []netip.Addr
	// Pool is the name of the pool every address comes from.
	Pool string
}

// Claim is an address that a Service's status says it holds, for Reload.
type Claim struct {
	// Request is the Service's request, as for Allocate.
	Request Request
	// IPs are the addresses the Service's status shows.
	IPs []netip.Addr
}

// check validates the request and returns the families the Service gets
// addresses of, in order.
func (r *Request) check() ([]config.Family, *Error) {
	if r.Key == "" {
		return nil, errorf(InvalidRequest, "the request has no key: give the Service's namespace/name")
	}
	switch r.Policy {
	case "", SingleStack, PreferDualStack, RequireDualStack:
	default:
		return nil, errorf(InvalidRequest, "unknown IP family policy %q: use %s, %s or %s", r.Policy, SingleStack, PreferDualStack, RequireDualStack)
	}
	if len(r.Families) == 0 {
		return nil, errorf(InvalidRequest, "the Service has no IP family: give it IPv4, IPv6 or both")
	}
	if len(r.Families) > 2 || (len(r.Families) == 2 && r.Families[0] == r.Families[1]) ||
		slices.ContainsFunc(r.Families, func(f config.Family) bool { return f != config.IPv4 && f != config.IPv6 }) {
		return nil, errorf(InvalidRequest, "IP families %s are not valid: give IPv4, IPv6 or both, each once", familyList(r.Families, " "))
	}
	for _, ip := range r.IPs {
		if err := checkAddr(ip); err != nil {
			return nil, err
		}
	}
	if r.Policy == "" || r.Policy == SingleStack {
		return r.Families[:1], nil
	}
	return r.Families, nil
}

// checkAddr reports an address no pool can hold.
func checkAddr(ip netip.Addr) *Error {
	switch {
	case !ip.IsValid():
		return errorf(InvalidRequest, "an address is empty: give a valid IP address")
	case ip.Zone() != "":
		return errorf(InvalidRequest, "address %s has a zone: give it without one", ip)
	case ip.Is4In6():
		return errorf(InvalidRequest, "address %s is an IPv4-mapped IPv6 address: write it as %s", ip, ip.Unmap())
	}
	return nil
}

// clone returns a copy of r that shares no memory with it.
func (r *Request) clone() Request {
	c := *r
	c.NamespaceLabels = maps.Clone(r.NamespaceLabels)
	c.ServiceLabels = maps.Clone(r.ServiceLabels)
	c.Families = slices.Clone(r.Families)
	c.IPs = slices.Clone(r.IPs)
	c.Ports = slices.Clone(r.Ports)
	return c
}

// older reports whether the Service of r is older than that of o.
func (r *Request) older(o *Request) bool {
	if c := r.Created.Compare(o.Created); c != 0 {
		return c < 0
	}
	return r.Key < o.Key
}

// sharesWith reports whether the Services of r and o may hold one address;
// if not, it says why, as the end of a sentence about o's Service.
func (r *Request) sharesWith(o *Request) (string, bool) {
	switch {
	case r.SharingKey == "" && o.SharingKey == "":
		return "to share it, give both Services the same sharing key", false
	case r.SharingKey == "":
		return fmt.Sprintf("to share it, give this Service its sharing key %q", o.SharingKey), false
	case o.SharingKey == "":
		return "it has no sharing key, so it shares its address with no Service", false
	case r.SharingKey != o.SharingKey:
		return fmt.Sprintf("its sharing key is %q, not %q", o.SharingKey, r.SharingKey), false
	}
	for _, p := range r.Ports {
		for _, q := range o.Ports {
			if p.Port == q.Port && p.protocol() == q.protocol() {
				return fmt.Sprintf("both use port %s: Services sharing an address need different ports", p), false
			}
		}
	}
	if r.BackendKey != o.BackendKey {
		return "Services sharing an address with externalTrafficPolicy Local must select the same pods, and may not share with Cluster ones", false
	}
	return "", true
}

// familyList returns the families' names joined by sep.
func familyList(fams []config.Family, sep string) string {
	s := make([]string, len(fams))
	for i, f := range fams {
		s[i] = f.String()
	}
	return strings.Join(s, sep)
}
