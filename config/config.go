package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1beta1"
)

// Resources is everything a Config is built from: the ironlb objects and
// Secrets as listed from the API server.
type Resources struct {
	// Namespace is ironlb's own namespace. Every object must live there;
	// Secrets elsewhere are ignored.
	Namespace string
	// Pools are the IPAddressPools.
	Pools []v1beta1.IPAddressPool
	// L2Advertisements are the L2Advertisements.
	L2Advertisements []v1beta1.L2Advertisement
	// BGPPeers are the BGPPeers.
	BGPPeers []v1beta1.BGPPeer
	// BGPAdvertisements are the BGPAdvertisements.
	BGPAdvertisements []v1beta1.BGPAdvertisement
	// Communities are the Community objects, which define community
	// aliases.
	Communities []v1beta1.Community
	// Secrets are the Secrets that hold BGP passwords.
	Secrets []corev1.Secret
}

// Config is ironlb's validated configuration. Every slice is sorted by name
// unless its comment says otherwise.
//
// A Config, and everything reachable from it, is read-only once New returns
// it: the controller and the speaker share one among goroutines, and a new
// configuration is a new Config.
type Config struct {
	// Pools are the address pools.
	Pools []*Pool
	// L2Advertisements are the layer-2 advertisements.
	L2Advertisements []*L2Advertisement
	// BGPPeers are the BGP sessions.
	BGPPeers []*BGPPeer
	// BGPAdvertisements are the BGP advertisements.
	BGPAdvertisements []*BGPAdvertisement
	// CommunityAliases are the community aliases of every Community object.
	CommunityAliases []CommunityAlias

	pools   map[string]*Pool
	peers   map[string]*BGPPeer
	aliases map[string]CommunityAlias
	// ranges are the ranges of every pool, sorted by first address.
	ranges []poolRange
}

// poolRange is a range and the pool it belongs to.
type poolRange struct {
	r    Range
	pool *Pool
}

// Pool returns the pool named name.
func (c *Config) Pool(name string) (*Pool, bool) {
	p, ok := c.pools[name]
	return p, ok
}

// BGPPeer returns the BGPPeer named name.
func (c *Config) BGPPeer(name string) (*BGPPeer, bool) {
	p, ok := c.peers[name]
	return p, ok
}

// CommunityAlias returns the community alias named name.
func (c *Config) CommunityAlias(name string) (CommunityAlias, bool) {
	a, ok := c.aliases[name]
	return a, ok
}

// PoolOf returns the pool that holds the address a, if any: pools do not
// overlap, so there is at most one.
func (c *Config) PoolOf(a netip.Addr) (*Pool, bool) {
	i := sort.Search(len(c.ranges), func(i int) bool { return c.ranges[i].r.Last.Compare(a) >= 0 })
	if i < len(c.ranges) && c.ranges[i].r.Contains(a) {
		return c.ranges[i].pool, true
	}
	return nil, false
}

// New validates r and builds a Config from it. It reports every problem it
// finds, not only the first: the error joins one *FieldError per problem,
// which FieldErrors and ObjectErrors return. On error the Config is nil.
//
// New does not modify r, and the Config shares no memory with it.
func New(r Resources) (*Config, error) {
	b := &builder{
		namespace: r.Namespace,
		pools:     make(map[string]*Pool),
		peerNames: make(map[string]struct{}),
		aliases:   make(map[string]CommunityAlias),
		aliasDefs: make(map[string][]aliasDef),
		secrets:   make(map[string]*corev1.Secret),
	}
	for i := range r.Secrets {
		if s := &r.Secrets[i]; s.Namespace == r.Namespace {
			b.secrets[s.Name] = s
		}
	}
	c := &Config{}

	var entries []poolEntry
	for _, in := range b.objects(KindIPAddressPool, metas(r.Pools)) {
		var p *Pool
		p, entries = b.pool(&r.Pools[in], entries)
		c.Pools = append(c.Pools, p)
		b.pools[p.Name] = p
	}
	b.checkOverlaps(entries)

	for _, in := range b.objects(KindCommunity, metas(r.Communities)) {
		b.communityObject(&r.Communities[in])
	}
	b.resolveAliases()

	for _, in := range b.objects(KindBGPPeer, metas(r.BGPPeers)) {
		p := b.bgpPeer(&r.BGPPeers[in])
		c.BGPPeers = append(c.BGPPeers, p)
		b.peerNames[p.Name] = struct{}{}
	}
	b.checkDuplicatePeers(c.BGPPeers)

	for _, in := range b.objects(KindL2Advertisement, metas(r.L2Advertisements)) {
		c.L2Advertisements = append(c.L2Advertisements, b.l2Advertisement(&r.L2Advertisements[in]))
	}
	for _, in := range b.objects(KindBGPAdvertisement, metas(r.BGPAdvertisements)) {
		c.BGPAdvertisements = append(c.BGPAdvertisements, b.bgpAdvertisement(&r.BGPAdvertisements[in]))
	}

	if len(b.errs) > 0 {
		slices.SortStableFunc(b.errs, func(x, y *FieldError) int {
			return cmp.Or(cmp.Compare(kindRank(x.Kind), kindRank(y.Kind)), strings.Compare(x.Name, y.Name))
		})
		return nil, joinFieldErrors(b.errs)
	}

	c.pools = b.pools
	c.peers = make(map[string]*BGPPeer, len(c.BGPPeers))
	for _, p := range c.BGPPeers {
		c.peers[p.Name] = p
	}
	c.aliases = b.aliases
	for _, a := range b.aliases {
		c.CommunityAliases = append(c.CommunityAliases, a)
	}
	slices.SortFunc(c.CommunityAliases, func(x, y CommunityAlias) int { return strings.Compare(x.Name, y.Name) })
	for _, p := range c.Pools {
		for _, r := range p.Ranges {
			c.ranges = append(c.ranges, poolRange{r: r, pool: p})
		}
	}
	slices.SortFunc(c.ranges, func(x, y poolRange) int { return x.r.First.Compare(y.r.First) })
	return c, nil
}

// kindRank orders the errors of New by the kind of their object.
func kindRank(k Kind) int {
	return slices.Index([]Kind{KindIPAddressPool, KindCommunity, KindBGPPeer, KindL2Advertisement, KindBGPAdvertisement}, k)
}

// builder collects what New has built so far and the problems it found.
type builder struct {
	namespace string
	pools     map[string]*Pool
	peerNames map[string]struct{}
	aliases   map[string]CommunityAlias
	aliasDefs map[string][]aliasDef
	secrets   map[string]*corev1.Secret
	errs      []*FieldError
}

// add records a problem.
func (b *builder) add(e *FieldError) {
	b.errs = append(b.errs, e)
}

// metas returns the ObjectMeta of each item.
func metas[T any, PT interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = PT(&items[i])
	}
	return out
}

// objects returns the indexes of the objects to build, in name order:
// those in ironlb's namespace with a name no other object of their kind
// has. It reports the others.
func (b *builder) objects(kind Kind, objs []metav1.Object) []int {
	order := make([]int, len(objs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int { return strings.Compare(objs[x].GetName(), objs[y].GetName()) })

	out := order[:0]
	for i, idx := range order {
		o := objs[idx]
		if o.GetNamespace() != b.namespace {
			b.add(errorf(kind, o.GetName(), "metadata.namespace", "namespace %q is not ironlb's namespace %q: ironlb only reads objects in its own namespace", o.GetNamespace(), b.namespace))
			continue
		}
		if i > 0 && objs[order[i-1]].GetName() == o.GetName() && objs[order[i-1]].GetNamespace() == b.namespace {
			b.add(errorf(kind, o.GetName(), "metadata.name", "another %s is named %q", kind, o.GetName()))
			continue
		}
		out = append(out, idx)
	}
	return out
}

// communityObject validates one Community object and records its aliases.
func (b *builder) communityObject(in *v1beta1.Community) {
	name := in.Name
	for i, alias := range in.Spec.Communities {
		field := fmt.Sprintf("spec.communities[%d]", i)
		if alias.Name == "" {
			b.add(errorf(KindCommunity, name, field+".name", "empty alias name"))
			continue
		}
		if _, err := ParseCommunity(alias.Name); err == nil {
			b.add(errorf(KindCommunity, name, field+".name", "alias name %q is itself a community value: choose a name that is not", alias.Name))
			continue
		}
		value, err := ParseCommunity(alias.Value)
		if err != nil {
			b.add(&FieldError{Kind: KindCommunity, Name: name, Field: field + ".value", Err: err})
			continue
		}
		b.aliasDefs[alias.Name] = append(b.aliasDefs[alias.Name], aliasDef{
			alias: CommunityAlias{Name: alias.Name, Value: value, Object: name},
			field: field + ".name",
		})
	}
}

// aliasDef is one definition of a community alias.
type aliasDef struct {
	alias CommunityAlias
	field string
}

// resolveAliases records the aliases defined once, and reports on each
// definition of an alias defined more than once.
func (b *builder) resolveAliases() {
	names := make([]string, 0, len(b.aliasDefs))
	for n := range b.aliasDefs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		defs := b.aliasDefs[n]
		if len(defs) == 1 {
			b.aliases[n] = defs[0].alias
			continue
		}
		for i, d := range defs {
			var others []string
			for j, o := range defs {
				if j != i {
					others = append(others, fmt.Sprintf("%s %q %s", KindCommunity, o.alias.Object, o.field))
				}
			}
			b.add(errorf(KindCommunity, d.alias.Object, d.field, "alias %q is also defined by %s: an alias may be defined once",
				n, strings.Join(others, ", ")))
		}
	}
}
