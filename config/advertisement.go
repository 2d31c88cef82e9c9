package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/api/v1beta1"
)

// Default aggregation lengths: each address is advertised alone.
const (
	DefaultAggregationLength   = 32
	DefaultAggregationLengthV6 = 128
)

// L2Advertisement is a validated L2Advertisement: the pools whose addresses
// are announced with ARP and NDP, from which nodes and on which interfaces.
type L2Advertisement struct {
	// Name is the L2Advertisement's name.
	Name string
	// Pools are the names of the pools announced, sorted.
	Pools []string
	// NodeSelectors select the nodes that may announce; none means every
	// node.
	NodeSelectors []labels.Selector
	// Interfaces, sorted, are the interfaces to announce on; none means the
	// interfaces that carry the node's own addresses.
	Interfaces []string
}

// SelectsPool reports whether the advertisement announces the pool named
// pool.
func (a *L2Advertisement) SelectsPool(pool string) bool {
	_, ok := slices.BinarySearch(a.Pools, pool)
	return ok
}

// SelectsNode reports whether a node with the given labels may announce.
func (a *L2Advertisement) SelectsNode(nodeLabels labels.Labels) bool {
	return selectsNode(a.NodeSelectors, nodeLabels)
}

// BGPAdvertisement is a validated BGPAdvertisement: the pools whose
// addresses are advertised as BGP routes, with which attributes, to which
// peers and from which nodes.
type BGPAdvertisement struct {
	// Name is the BGPAdvertisement's name.
	Name string
	// Pools are the names of the pools advertised, sorted.
	Pools []string
	// AggregationLength is the prefix length of the IPv4 routes.
	AggregationLength int
	// AggregationLengthV6 is the prefix length of the IPv6 routes.
	AggregationLengthV6 int
	// LocalPref is the LOCAL_PREF of the routes on iBGP sessions; 0 means
	// none is sent.
	LocalPref uint32
	// Communities are attached to the routes, sorted by Community.Compare
	// and without duplicates; aliases are resolved.
	Communities []Community
	// NodeSelectors select the nodes that advertise; none means every node.
	NodeSelectors []labels.Selector
	// Peers are the names of the BGPPeers advertised to, sorted; none means
	// every peer.
	Peers []string
}

// SelectsPool reports whether the advertisement advertises the pool named
// pool.
func (a *BGPAdvertisement) SelectsPool(pool string) bool {
	_, ok := slices.BinarySearch(a.Pools, pool)
	return ok
}

// SelectsNode reports whether a node with the given labels advertises.
func (a *BGPAdvertisement) SelectsNode(nodeLabels labels.Labels) bool {
	return selectsNode(a.NodeSelectors, nodeLabels)
}

// SelectsPeer reports whether the routes go to the BGPPeer named peer.
func (a *BGPAdvertisement) SelectsPeer(peer string) bool {
	if len(a.Peers) == 0 {
		return true
	}
	_, ok := slices.BinarySearch(a.Peers, peer)
	return ok
}

// AggregationLengthFor returns the aggregation length of routes for
// addresses of family f.
func (a *BGPAdvertisement) AggregationLengthFor(f Family) int {
	if f == IPv4 {
		return a.AggregationLength
	}
	return a.AggregationLengthV6
}

// selectsNode reports whether one of selectors, or every node when there
// are none, selects a node with labels l.
func selectsNode(selectors []labels.Selector, l labels.Labels) bool {
	if len(selectors) == 0 {
		return true
	}
	if l == nil {
		l = labels.Set(nil)
	}
	return anyMatches(selectors, l)
}

// l2Advertisement validates one L2Advertisement.
func (b *builder) l2Advertisement(in *v1beta1.L2Advertisement) *L2Advertisement {
	name := in.Name
	a := &L2Advertisement{
		Name:          name,
		Pools:         b.selectPools(KindL2Advertisement, name, in.Spec.IPAddressPools, in.Spec.IPAddressPoolSelectors),
		NodeSelectors: b.selectors(KindL2Advertisement, name, "spec.nodeSelectors", in.Spec.NodeSelectors),
	}
	for i, ifname := range in.Spec.Interfaces {
		if err := checkInterfaceName(ifname); err != nil {
			b.add(&FieldError{Kind: KindL2Advertisement, Name: name, Field: fmt.Sprintf("spec.interfaces[%d]", i), Err: err})
			continue
		}
		a.Interfaces = append(a.Interfaces, ifname)
	}
	slices.Sort(a.Interfaces)
	a.Interfaces = slices.Compact(a.Interfaces)
	return a
}

// maxInterfaceNameLen is the longest name Linux gives an interface
// (IFNAMSIZ less the terminating NUL).
const maxInterfaceNameLen = 15

// checkInterfaceName reports whether Linux could name an interface name.
func checkInterfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("empty interface name")
	case len(name) > maxInterfaceNameLen:
		return fmt.Errorf("interface name %q is %d bytes long: Linux allows at most %d", name, len(name), maxInterfaceNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not an interface name", name)
	case strings.ContainsAny(name, "/:"):
		return fmt.Errorf("interface name %q contains %q or %q, which Linux does not allow", name, "/", ":")
	case strings.IndexFunc(name, unicode.IsSpace) >= 0:
		return fmt.Errorf("interface name %q contains white space, which Linux does not allow", name)
	}
	return nil
}

// bgpAdvertisement validates one BGPAdvertisement.
func (b *builder) bgpAdvertisement(in *v1beta1.BGPAdvertisement) *BGPAdvertisement {
	name := in.Name
	a := &BGPAdvertisement{
		Name:                name,
		Pools:               b.selectPools(KindBGPAdvertisement, name, in.Spec.IPAddressPools, in.Spec.IPAddressPoolSelectors),
		AggregationLength:   DefaultAggregationLength,
		AggregationLengthV6: DefaultAggregationLengthV6,
		LocalPref:           in.Spec.LocalPref,
		NodeSelectors:       b.selectors(KindBGPAdvertisement, name, "spec.nodeSelectors", in.Spec.NodeSelectors),
	}
	if l, ok := b.aggregationLength(name, "spec.aggregationLength", in.Spec.AggregationLength, DefaultAggregationLength); ok {
		a.AggregationLength = l
		b.checkAggregation(a, "spec.aggregationLength", IPv4, l)
	}
	if l, ok := b.aggregationLength(name, "spec.aggregationLengthV6", in.Spec.AggregationLengthV6, DefaultAggregationLengthV6); ok {
		a.AggregationLengthV6 = l
		b.checkAggregation(a, "spec.aggregationLengthV6", IPv6, l)
	}

	for i, s := range in.Spec.Communities {
		c, err := b.community(s)
		if err != nil {
			b.add(&FieldError{Kind: KindBGPAdvertisement, Name: name, Field: fmt.Sprintf("spec.communities[%d]", i), Err: err})
			continue
		}
		a.Communities = append(a.Communities, c)
	}
	slices.SortFunc(a.Communities, Community.Compare)
	a.Communities = slices.Compact(a.Communities)

	for i, peer := range in.Spec.Peers {
		if _, ok := b.peerNames[peer]; !ok {
			b.add(errorf(KindBGPAdvertisement, name, fmt.Sprintf("spec.peers[%d]", i), "%s %q does not exist in namespace %q", KindBGPPeer, peer, b.namespace))
			continue
		}
		a.Peers = append(a.Peers, peer)
	}
	slices.Sort(a.Peers)
	a.Peers = slices.Compact(a.Peers)
	return a
}

// aggregationLength returns the aggregation length at field, or bitLen,
// the default and the longest allowed, when it is not set. It reports a
// length outside 0 to bitLen.
func (b *builder) aggregationLength(name, field string, l *int32, bitLen int) (int, bool) {
	if l == nil {
		return bitLen, true
	}
	if *l < 0 || int(*l) > bitLen {
		b.add(errorf(KindBGPAdvertisement, name, field, "aggregation length %d is not a prefix length from 0 to %d", *l, bitLen))
		return 0, false
	}
	return int(*l), true
}

// community resolves one entry of a BGPAdvertisement's spec.communities: a
// community value, or the name of an alias.
func (b *builder) community(s string) (Community, error) {
	c, parseErr := ParseCommunity(s)
	if parseErr == nil {
		return c, nil
	}
	if alias, ok := b.aliases[s]; ok {
		return alias.Value, nil
	}
	if strings.Contains(s, ":") {
		return Community{}, parseErr
	}
	return Community{}, fmt.Errorf("%q is neither a community value such as 65535:65282 or large:64512:1:2 nor an alias defined by a %s object", s, KindCommunity)
}

// checkAggregation reports the pools of a for which routes of prefix length
// aggLen, for addresses of family f, would cover addresses outside the pool:
// every prefix of the pool's CIDR cover must be at least as long as aggLen.
func (b *builder) checkAggregation(a *BGPAdvertisement, field string, f Family, aggLen int) {
	for _, name := range a.Pools {
		p := b.pools[name]
		longest := -1
		var culprit Range
		for _, r := range p.Ranges {
			if r.Family() != f {
				continue
			}
			for _, prefix := range r.Prefixes() {
				if prefix.Bits() > aggLen && prefix.Bits() > longest {
					longest, culprit = prefix.Bits(), r
				}
			}
		}
		if longest >= 0 {
			b.add(errorf(KindBGPAdvertisement, a.Name, field,
				"aggregation length %d would advertise addresses outside %s %q: its addresses %s need an aggregation length of at least %d",
				aggLen, KindIPAddressPool, name, culprit, longest))
		}
	}
}

// selectPools resolves an advertisement's pools: those named and those
// selected by label, or every pool if neither is given. It reports names of
// pools that do not exist and invalid selectors.
func (b *builder) selectPools(kind Kind, name string, names []string, selectors []metav1.LabelSelector) []string {
	if len(names) == 0 && len(selectors) == 0 {
		out := make([]string, 0, len(b.pools))
		for pool := range b.pools {
			out = append(out, pool)
		}
		slices.Sort(out)
		return out
	}
	var out []string
	for i, pool := range names {
		if _, ok := b.pools[pool]; !ok {
			b.add(errorf(kind, name, fmt.Sprintf("spec.ipAddressPools[%d]", i), "%s %q does not exist in namespace %q", KindIPAddressPool, pool, b.namespace))
			continue
		}
		out = append(out, pool)
	}
	for _, s := range b.selectors(kind, name, "spec.ipAddressPoolSelectors", selectors) {
		for pool, p := range b.pools {
			if s.Matches(p.Labels) {
				out = append(out, pool)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
