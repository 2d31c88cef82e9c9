package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ironlb/ironlb/api/v1beta1"
)

// Pool is a validated IPAddressPool: addresses the controller may hand out,
// and the Services that may have them.
type Pool struct {
	// Name is the IPAddressPool's name.
	Name string
	// Labels are the IPAddressPool's labels, which advertisements select
	// pools by.
	Labels labels.Set
	// Ranges are the pool's addresses, sorted by first address, IPv4
	// before IPv6; no two overlap.
	Ranges []Range
	// AutoAssign lets the controller pick addresses of this pool for
	// Services that do not ask for a pool or an address.
	AutoAssign bool
	// AvoidBuggyIPs keeps the controller from handing out IPv4 addresses
	// ending in .0 or .255.
	AvoidBuggyIPs bool
	// Priority orders the pools a Service may use, lowest first; 0 means
	// the pool has no priority and comes after every pool that has one.
	Priority int32
	// Namespaces, sorted, are the namespaces whose Services may use the
	// pool.
	Namespaces []string
	// NamespaceSelectors select, by label, the namespaces whose Services
	// may use the pool.
	NamespaceSelectors []labels.Selector
	// ServiceSelectors select, by label, the Services that may use the
	// pool.
	ServiceSelectors []labels.Selector
}

// Contains reports whether a is one of the pool's addresses, whether or not
// the controller may hand it out (see Assignable).
func (p *Pool) Contains(a netip.Addr) bool {
	i := sort.Search(len(p.Ranges), func(i int) bool { return p.Ranges[i].Last.Compare(a) >= 0 })
	return i < len(p.Ranges) && p.Ranges[i].Contains(a)
}

// Assignable reports whether the controller may hand out a from this pool:
// a is one of the pool's addresses and, if the pool avoids buggy IPs, does
// not end in .0 or .255.
func (p *Pool) Assignable(a netip.Addr) bool {
	return p.Contains(a) && !(p.AvoidBuggyIPs && buggy(a))
}

// buggy reports whether a is an IPv4 address that some old client networks
// drop: one ending in .0 or .255.
func buggy(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	b := a.As4()
	return b[3] == 0 || b[3] == 255
}

// Size returns the number of addresses of family f the controller may hand
// out from the pool (without those ending in .0 and .255 if it avoids buggy
// IPs), saturated at the largest uint64.
func (p *Pool) Size(f Family) uint64 {
	var n uint64
	for _, r := range p.Ranges {
		if r.Family() != f {
			continue
		}
		size := r.Size()
		if p.AvoidBuggyIPs && f == IPv4 {
			first, last := toUint128(r.First).lo, toUint128(r.Last).lo
			size -= countLastOctet(first, last, 0) + countLastOctet(first, last, 255)
		}
		n = saturatingAdd(n, size)
	}
	return n
}

// countLastOctet returns how many numbers from first to last, inclusive,
// have octet as their low byte.
func countLastOctet(first, last, octet uint64) uint64 {
	upTo := func(n uint64) uint64 { // numbers from 0 to n
		if n < octet {
			return 0
		}
		return (n-octet)/256 + 1
	}
	if first == 0 {
		return upTo(last)
	}
	return upTo(last) - upTo(first-1)
}

// AllowsService reports whether the pool's serviceAllocation lets a Service
// with the given labels, in the given namespace with the given labels, use
// the pool. As in MetalLB: if the pool names namespaces or has namespace
// selectors, the Service's namespace must be named or selected by one; if
// it has Service selectors, one must select the Service. Nil labels are
// empty.
func (p *Pool) AllowsService(namespace string, namespaceLabels, serviceLabels labels.Labels) bool {
	if namespaceLabels == nil {
		namespaceLabels = labels.Set(nil)
	}
	if serviceLabels == nil {
		serviceLabels = labels.Set(nil)
	}
	if len(p.Namespaces) > 0 || len(p.NamespaceSelectors) > 0 {
		_, named := slices.BinarySearch(p.Namespaces, namespace)
		if !named && !anyMatches(p.NamespaceSelectors, namespaceLabels) {
			return false
		}
	}
	return len(p.ServiceSelectors) == 0 || anyMatches(p.ServiceSelectors, serviceLabels)
}

// anyMatches reports whether one of selectors matches l.
func anyMatches(selectors []labels.Selector, l labels.Labels) bool {
	for _, s := range selectors {
		if s.Matches(l) {
			return true
		}
	}
	return false
}

// ComparePools orders pools the way the controller tries them for a Service:
// by Priority, lowest first, pools without a priority (0) last, then by
// name. It returns -1, 0 or +1 like cmp.Compare.
func ComparePools(a, b *Pool) int {
	if a.Priority != b.Priority {
		switch {
		case a.Priority == 0:
			return 1
		case b.Priority == 0:
			return -1
		}
		return cmp.Compare(a.Priority, b.Priority)
	}
	return strings.Compare(a.Name, b.Name)
}

// SortPools sorts pools in the order of ComparePools.
func SortPools(pools []*Pool) {
	slices.SortFunc(pools, ComparePools)
}

// poolEntry is one parsed entry of a pool's spec.addresses.
type poolEntry struct {
	pool  *Pool
	index int
	r     Range
}

// pool validates one IPAddressPool and appends its parsed addresses to
// entries, for the overlap check across pools.
func (b *builder) pool(in *v1beta1.IPAddressPool, entries []poolEntry) (*Pool, []poolEntry) {
	name := in.Name
	p := &Pool{
		Name:          name,
		Labels:        copyLabels(in.Labels),
		AutoAssign:    in.Spec.AutoAssign == nil || *in.Spec.AutoAssign,
		AvoidBuggyIPs: in.Spec.AvoidBuggyIPs,
	}
	if len(in.Spec.Addresses) == 0 {
		b.add(errorf(KindIPAddressPool, name, "spec.addresses", "a pool needs at least one address, CIDR or range"))
	}
	for i, s := range in.Spec.Addresses {
		r, err := ParseAddressRange(s)
		if err != nil {
			b.add(&FieldError{Kind: KindIPAddressPool, Name: name, Field: fmt.Sprintf("spec.addresses[%d]", i), Err: err})
			continue
		}
		p.Ranges = append(p.Ranges, r)
		entries = append(entries, poolEntry{pool: p, index: i, r: r})
	}
	slices.SortFunc(p.Ranges, func(x, y Range) int {
		return cmp.Or(x.First.Compare(y.First), x.Last.Compare(y.Last))
	})

	if a := in.Spec.AllocateTo; a != nil {
		if a.Priority < 0 {
			b.add(errorf(KindIPAddressPool, name, "spec.serviceAllocation.priority", "priority %d is negative: use 1 for the first pool, or 0 for no priority", a.Priority))
		} else {
			p.Priority = a.Priority
		}
		for i, ns := range a.Namespaces {
			if problems := validation.IsDNS1123Label(ns); len(problems) > 0 {
				b.add(errorf(KindIPAddressPool, name, fmt.Sprintf("spec.serviceAllocation.namespaces[%d]", i), "%q is not a namespace name: %s", ns, strings.Join(problems, "; ")))
				continue
			}
			p.Namespaces = append(p.Namespaces, ns)
		}
		slices.Sort(p.Namespaces)
		p.Namespaces = slices.Compact(p.Namespaces)
		p.NamespaceSelectors = b.selectors(KindIPAddressPool, name, "spec.serviceAllocation.namespaceSelectors", a.NamespaceSelectors)
		p.ServiceSelectors = b.selectors(KindIPAddressPool, name, "spec.serviceAllocation.serviceSelectors", a.ServiceSelectors)
	}
	return p, entries
}

// checkOverlaps reports every pool entry that shares addresses with another
// entry of the same pool or of another pool. An overlap between two pools
// is reported on both.
func (b *builder) checkOverlaps(entries []poolEntry) {
	slices.SortFunc(entries, func(x, y poolEntry) int {
		return cmp.Or(x.r.First.Compare(y.r.First), x.r.Last.Compare(y.r.Last),
			strings.Compare(x.pool.Name, y.pool.Name), cmp.Compare(x.index, y.index))
	})
	// reach is the entry seen so far that reaches the highest address:
	// if an entry overlaps any earlier one, it overlaps reach.
	var reach *poolEntry
	for i := range entries {
		e := &entries[i]
		if reach != nil && reach.r.Overlaps(e.r) {
			b.reportOverlap(reach, e)
		}
		if reach == nil || e.r.Last.Compare(reach.r.Last) > 0 {
			reach = e
		}
	}
}

// reportOverlap reports that the entries x and y overlap.
func (b *builder) reportOverlap(x, y *poolEntry) {
	shared := x.r.intersection(y.r)
	if x.pool == y.pool {
		first, second := x, y
		if first.index > second.index {
			first, second = second, first
		}
		b.add(errorf(KindIPAddressPool, x.pool.Name, fmt.Sprintf("spec.addresses[%d]", second.index),
			"%s overlaps spec.addresses[%d] (%s): both hold %s", second.r, first.index, first.r, shared))
		return
	}
	for _, pair := range [][2]*poolEntry{{x, y}, {y, x}} {
		this, other := pair[0], pair[1]
		b.add(errorf(KindIPAddressPool, this.pool.Name, fmt.Sprintf("spec.addresses[%d]", this.index),
			"%s overlaps %s %q spec.addresses[%d] (%s): both hold %s, and an address can belong to one pool only",
			this.r, KindIPAddressPool, other.pool.Name, other.index, other.r, shared))
	}
}

// copyLabels returns a copy of l, or nil if l is empty.
func copyLabels(l map[string]string) labels.Set {
	if len(l) == 0 {
		return nil
	}
	out := make(labels.Set, len(l))
	for k, v := range l {
		out[k] = v
	}
	return out
}

// selectors converts the label selectors at field, reporting the invalid
// ones.
func (b *builder) selectors(kind Kind, name, field string, in []metav1.LabelSelector) []labels.Selector {
	if len(in) == 0 {
		return nil
	}
	out := make([]labels.Selector, 0, len(in))
	for i := range in {
		s, err := metav1.LabelSelectorAsSelector(&in[i])
		if err != nil {
			b.add(&FieldError{Kind: kind, Name: name, Field: fmt.Sprintf("%s[%d]", field, i), Err: fmt.Errorf("invalid label selector: %w", err)})
			continue
		}
		out = append(out, s)
	}
	return out
}
