package allocator

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/ironlb/ironlb/config"
)

// Allocator hands out the addresses of a configuration's pools to
// Services, and remembers who holds what. Build one with New.
type Allocator struct {
	mu sync.Mutex
	// pools are the configured pools, in the order of config.ComparePools.
	pools []*pool
	// byName are the pools by name.
	byName map[string]*pool
	// spans are the ranges of every pool, in address order.
	spans []*span
	// addrs are the addresses held, and who holds them.
	addrs map[netip.Addr]holding
	// held are the keys of addrs, for cursors to skip.
	held heldSet
	// assignments are what each key holds, by key.
	assignments map[string]*assignment
	// shared are, by sharing key, the addresses held under that key.
	shared map[string]map[netip.Addr]struct{}
}

// holding is who holds an address.
type holding struct {
	// pool is the pool the address belongs to. It is nil only while
	// SetConfig releases an address that left every pool.
	pool *pool
	// holders are the keys holding the address: one, or several sharing
	// it.
	holders []*assignment
}

// assignment is what a key holds.
type assignment struct {
	// req is the request the key last got its addresses for.
	req Request
	// ips are the addresses held, in the order of req's families.
	ips []netip.Addr
	// pool is the name of the pool of every address.
	pool string
}

// view returns the assignment as callers see it.
func (as *assignment) view() Assignment {
	return Assignment{Key: as.req.Key, IPs: slices.Clone(as.ips), Pool: as.pool}
}

// pick is one address a key is about to hold.
type pick struct {
	// fam is the address's family.
	fam config.Family
	// ip is the address, unless fresh.
	ip netip.Addr
	// partner tells that ip is held by Services the key shares it with.
	partner bool
	// fresh tells to take a free address of fam from the pool.
	fresh bool
}

// PoolStatus is how many addresses of a pool are held and free, for the
// pool's status. Counts saturate at the largest uint64; an address shared
// by several Services counts once.
type PoolStatus struct {
	// Pool is the pool's name.
	Pool string
	// AssignedIPv4 is the number of the pool's IPv4 addresses held.
	AssignedIPv4 uint64
	// AssignedIPv6 is the number of the pool's IPv6 addresses held.
	AssignedIPv6 uint64
	// AvailableIPv4 is the number of the pool's IPv4 addresses that may
	// still be handed out.
	AvailableIPv4 uint64
	// AvailableIPv6 is the number of the pool's IPv6 addresses that may
	// still be handed out.
	AvailableIPv6 uint64
}

// New returns an Allocator that hands out the addresses of cfg's pools,
// with no address held. A nil cfg has no pools.
//
// The Allocator reads cfg and its pools, and never changes them: cfg must
// not change afterwards, as config.New promises. The pools must not
// overlap, which config.New checks.
func New(cfg *config.Config) *Allocator {
	a := &Allocator{
		addrs:       make(map[netip.Addr]holding),
		assignments: make(map[string]*assignment),
		shared:      make(map[string]map[netip.Addr]struct{}),
	}
	a.setPools(cfg)
	return a
}

// Allocate gives the key of req the addresses its Service needs and
// returns them.
//
// If the key holds addresses that still suit the request — in a pool the
// Service may use, of a family it needs, those it asks for, shared only
// with compatible Services — it keeps them: Allocate returns the same
// addresses again and, when the pool can, adds one of a family the key
// lacks (a PreferDualStack Service whose second family was not available
// before). Otherwise Allocate picks addresses as the package documentation
// says, and the key lets go of those it held.
//
// On error, which is an *Error, the key holds no address.
func (a *Allocator) Allocate(req Request) (Assignment, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	as, err := a.allocate(&req)
	if err != nil {
		a.release(req.Key)
		return Assignment{}, err
	}
	return as.view(), nil
}

// Assign makes the key of req hold ips, the addresses its Service's status
// shows, if they suit the request as for Allocate: the controller calls it
// for every Service on start, before it allocates anything, so that no
// address changes across a restart. Unlike Allocate, Assign does not
// complete the assignment: the Allocate that follows adds a missing family.
//
// If an address is held by Services the key may not share it with, the
// oldest Service keeps it: if the key's Service is older than all of them,
// they lose every address they hold and Assign returns their keys, sorted,
// for the caller to allocate again; otherwise the error's reason is
// RequestedIPInUse. Reload applies claims in age order, so that its result
// does not depend on the order of the claims.
//
// On error, which is an *Error, the key holds no address.
func (a *Allocator) Assign(req Request, ips []netip.Addr) (Assignment, []string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	as, displaced, err := a.assign(&req, ips)
	if err != nil {
		a.release(req.Key)
		return Assignment{}, nil, err
	}
	return as.view(), displaced, nil
}

// Reload assigns every claim as Assign does, oldest Service first, so that
// when claims conflict the oldest Service keeps the address whatever the
// order of claims. It returns, for each claim in the order given, nil or
// why it was refused; and the keys, sorted, that held addresses before
// Reload and lost them to an older claim.
func (a *Allocator) Reload(claims []Claim) ([]error, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	order := make([]int, len(claims))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		switch {
		case claims[i].Request.older(&claims[j].Request):
			return -1
		case claims[j].Request.older(&claims[i].Request):
			return 1
		}
		return 0
	})
	errs := make([]error, len(claims))
	var displaced []string
	for _, i := range order {
		req := claims[i].Request
		_, d, err := a.assign(&req, claims[i].IPs)
		if err != nil {
			a.release(req.Key)
			errs[i] = err
			continue
		}
		displaced = append(displaced, d...)
	}
	slices.Sort(displaced)
	return errs, slices.Compact(displaced)
}

// Release lets go of every address the key holds. Releasing a key that
// holds nothing does nothing.
func (a *Allocator) Release(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.release(key)
}

// Assigned returns what the key holds, if anything.
func (a *Allocator) Assigned(key string) (Assignment, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	as, ok := a.assignments[key]
	if !ok {
		return Assignment{}, false
	}
	return as.view(), true
}

// SetConfig replaces the configuration the Allocator hands out addresses
// from, and returns the keys, sorted, that lost an address: because it left
// every pool, or its pool no longer serves the key's Service or is no
// longer the one it asks for. The caller allocates those keys again. Every
// other address stays where it is, and with it the pools' counts, however
// the pools changed.
//
// A key keeps those of its addresses that stay valid: a dual-stack Service
// whose IPv6 range was removed keeps its IPv4 address, and the next
// Allocate adds an IPv6 one if it can.
func (a *Allocator) SetConfig(cfg *config.Config) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.setPools(cfg)
	for ip, h := range a.addrs {
		h.pool = nil
		if s := a.spanOf(ip); s != nil && s.pool.cfg.Assignable(ip) {
			h.pool = s.pool
			h.pool.family(config.FamilyOf(ip)).assigned++
		}
		a.addrs[ip] = h
	}
	var affected []*assignment
	for _, as := range a.assignments {
		valid, p := a.stillValid(as)
		if p == nil || valid != 1<<len(as.ips)-1 {
			affected = append(affected, as)
			continue
		}
		as.pool = p.name()
	}
	slices.SortFunc(affected, func(x, y *assignment) int { return strings.Compare(x.req.Key, y.req.Key) })
	keys := make([]string, 0, len(affected))
	for _, as := range affected {
		keys = append(keys, as.req.Key)
		valid, p := a.stillValid(as)
		var keep []netip.Addr
		for i, ip := range as.ips {
			if valid&(1<<i) != 0 {
				keep = append(keep, ip)
				continue
			}
			a.unhold(ip, as, as.req.SharingKey)
		}
		if len(keep) == 0 {
			delete(a.assignments, as.req.Key)
			continue
		}
		as.ips, as.pool = keep, p.name()
	}
	return keys
}

// stillValid returns which of the assignment's addresses, as a bit mask by
// index, stay valid under the configuration, and their pool.
func (a *Allocator) stillValid(as *assignment) (uint, *pool) {
	var valid uint
	var p *pool
	for i, ip := range as.ips {
		h := a.addrs[ip]
		if h.pool == nil || (p != nil && h.pool != p) || !a.servesKept(h.pool, &as.req) {
			continue
		}
		valid |= 1 << i
		p = h.pool
	}
	return valid, p
}

// PoolStatus returns the counts of the pool named name, if it exists.
func (a *Allocator) PoolStatus(name string) (PoolStatus, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.byName[name]
	if !ok {
		return PoolStatus{}, false
	}
	return p.status(), true
}

// PoolStatuses returns the counts of every pool, in the order of
// config.ComparePools.
func (a *Allocator) PoolStatuses() []PoolStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]PoolStatus, len(a.pools))
	for i, p := range a.pools {
		out[i] = p.status()
	}
	return out
}

// status returns the pool's counts.
func (p *pool) status() PoolStatus {
	v4, v6 := p.family(config.IPv4), p.family(config.IPv6)
	return PoolStatus{
		Pool:          p.name(),
		AssignedIPv4:  v4.assigned,
		AssignedIPv6:  v6.assigned,
		AvailableIPv4: v4.available(),
		AvailableIPv6: v6.available(),
	}
}

// allocate does the work of Allocate.
func (a *Allocator) allocate(req *Request) (*assignment, *Error) {
	fams, err := req.check()
	if err != nil {
		return nil, err
	}
	if len(req.IPs) > 0 {
		c, err := a.checkClaim(req, fams, req.IPs, false)
		if err != nil {
			return nil, err
		}
		return a.commit(req, c.pool, c.picks)
	}

	old := a.assignments[req.Key]
	cands, err := a.candidates(req, old)
	if err != nil {
		return nil, err
	}
	// The addresses the key holds that still suit the request.
	var kept [2]netip.Addr
	var keptPool *pool
	if old != nil {
		for _, ip := range old.ips {
			i := slices.Index(fams, config.FamilyOf(ip))
			h := a.addrs[ip]
			if i < 0 || !slices.Contains(cands, h.pool) || (keptPool != nil && h.pool != keptPool) || !sharable(req, h) {
				continue
			}
			kept[i], keptPool = ip, h.pool
		}
	}
	if keptPool != nil {
		// Keep what the key holds if the policy allows, adding what the
		// same pool can give.
		o := a.offers(keptPool, req, fams, kept)
		if len(o) == len(fams) || (len(o) > 0 && req.Policy == PreferDualStack) {
			return a.commit(req, keptPool, o)
		}
	}

	// The first pool that gives the most: every family, else (with
	// PreferDualStack) the first family, else any; and among those, the
	// most addresses shared with partners.
	var best *pool
	var bestOffer []pick
	bestRank, bestShared := 0, 0
	for _, p := range cands {
		var k [2]netip.Addr
		if p == keptPool {
			k = kept
		}
		o := a.offers(p, req, fams, k)
		rank := 0
		switch {
		case len(o) == len(fams):
			rank = 3
		case req.Policy != PreferDualStack:
			// All or nothing.
		case len(o) > 0 && o[0].fam == fams[0]:
			rank = 2
		case len(o) > 0:
			rank = 1
		}
		shared := 0
		for _, pk := range o {
			if pk.partner {
				shared++
			}
		}
		if rank > bestRank || (rank == bestRank && rank > 0 && shared > bestShared) {
			best, bestOffer, bestRank, bestShared = p, o, rank, shared
			if rank == 3 && (req.SharingKey == "" || shared == len(fams)) {
				break // Nothing can be better.
			}
		}
	}
	if best == nil {
		return nil, a.noAddress(req, fams, cands)
	}
	return a.commit(req, best, bestOffer)
}

// offers returns what pool p can give the request, one pick per family it
// can give, in the order of fams: for each family, the address the key
// holds and keeps, else the address of a Service it may share with (the
// lowest, to be deterministic), else a free address.
func (a *Allocator) offers(p *pool, req *Request, fams []config.Family, kept [2]netip.Addr) []pick {
	out := make([]pick, 0, len(fams))
	for i, f := range fams {
		if kept[i].IsValid() {
			out = append(out, pick{fam: f, ip: kept[i]})
		} else if ip, ok := a.partner(p, f, req); ok {
			out = append(out, pick{fam: f, ip: ip, partner: true})
		} else if p.family(f).available() > 0 {
			out = append(out, pick{fam: f, fresh: true})
		}
	}
	return out
}

// partner returns the lowest address of family f in pool p held by
// Services that req's Service may share it with, if any.
func (a *Allocator) partner(p *pool, f config.Family, req *Request) (netip.Addr, bool) {
	if req.SharingKey == "" {
		return netip.Addr{}, false
	}
	var best netip.Addr
	for ip := range a.shared[req.SharingKey] {
		if config.FamilyOf(ip) != f || (best.IsValid() && ip.Compare(best) >= 0) {
			continue
		}
		if h := a.addrs[ip]; h.pool == p && sharable(req, h) {
			best = ip
		}
	}
	return best, best.IsValid()
}

// sharable reports whether req's Service may hold the address h describes
// with those holding it besides itself.
func sharable(req *Request, h holding) bool {
	for _, o := range h.holders {
		if o.req.Key == req.Key {
			continue
		}
		if _, ok := req.sharesWith(&o.req); !ok {
			return false
		}
	}
	return true
}

// serves reports whether the pool's serviceAllocation lets req's Service
// use it.
func serves(p *pool, req *Request) bool {
	return p.cfg.AllowsService(req.Namespace, req.NamespaceLabels, req.ServiceLabels)
}

// servesKept reports whether req's Service may keep an address of pool p:
// the pool serves it and is the pool it asks for, if any. Whether the pool
// assigns addresses automatically does not matter: the Service got the
// address when it was allowed to.
func (a *Allocator) servesKept(p *pool, req *Request) bool {
	return (req.Pool == "" || p.name() == req.Pool) && serves(p, req)
}

// candidates returns the pools, in order, that Allocate may take new
// addresses from for req: the pool it asks for, or the pools that serve it
// and assign addresses automatically, with the pool of old, the key's
// current assignment, whether it assigns automatically or not.
func (a *Allocator) candidates(req *Request, old *assignment) ([]*pool, *Error) {
	if req.Pool != "" {
		p, ok := a.byName[req.Pool]
		if !ok {
			return nil, errorf(NoMatchingPool, "pool %q does not exist: create it, or ask for another pool", req.Pool)
		}
		if !serves(p, req) {
			return nil, errorf(NoMatchingPool, "pool %q does not serve Services in namespace %q with these labels: change its serviceAllocation, or ask for another pool", req.Pool, req.Namespace)
		}
		return []*pool{p}, nil
	}
	var out []*pool
	var manual []string
	for _, p := range a.pools {
		if !serves(p, req) {
			continue
		}
		if p.cfg.AutoAssign || (old != nil && old.pool == p.name()) {
			out = append(out, p)
		} else {
			manual = append(manual, p.name())
		}
	}
	switch {
	case len(out) > 0:
		return out, nil
	case len(a.pools) == 0:
		return nil, errorf(NoMatchingPool, "there is no address pool: create an IPAddressPool")
	case len(manual) > 0:
		if len(manual) == 1 {
			return nil, errorf(NoMatchingPool, "no pool assigns addresses to this Service automatically: pool %q is used only by Services that ask for it or for one of its addresses; ask for it, or set its autoAssign", manual[0])
		}
		return nil, errorf(NoMatchingPool, "no pool assigns addresses to this Service automatically: %s are used only by Services that ask for them or for one of their addresses; ask for one, or set autoAssign on one", pools(manual))
	}
	return nil, errorf(NoMatchingPool, "no pool serves Services in namespace %q with these labels: change a pool's serviceAllocation to select this Service, or add a pool", req.Namespace)
}

// noAddress explains why none of the candidate pools can give req what
// it needs.
func (a *Allocator) noAddress(req *Request, fams []config.Family, cands []*pool) *Error {
	has := func(p *pool, f config.Family) bool { return p.family(f).size > 0 }
	if req.Policy == RequireDualStack && len(fams) > 1 {
		var full, why []string
		for _, p := range cands {
			if !has(p, fams[0]) || !has(p, fams[1]) {
				continue
			}
			full = append(full, p.name())
			var lacks []config.Family
			for _, f := range fams {
				if p.family(f).available() == 0 {
					lacks = append(lacks, f)
				}
			}
			why = append(why, fmt.Sprintf("pool %q has no free %s address", p.name(), familyList(lacks, " or ")))
		}
		if len(full) == 0 {
			return errorf(NoMatchingPool, "no pool that serves this Service has both %s addresses: add addresses of the missing family to %s, or change the Service's IP family policy", familyList(fams, " and "), pools(names(cands)))
		}
		return errorf(PoolExhausted, "%s: add addresses to %s or free some", strings.Join(why, "; "), themOrIt(full))
	}
	var withFamily []string
	for _, p := range cands {
		if slices.ContainsFunc(fams, func(f config.Family) bool { return has(p, f) }) {
			withFamily = append(withFamily, p.name())
		}
	}
	if len(withFamily) == 0 {
		return errorf(NoMatchingPool, "no pool that serves this Service has %s addresses: add some to %s, or change the Service's IP families", familyList(fams, " or "), pools(names(cands)))
	}
	return errorf(PoolExhausted, "%s %s no free %s address: add addresses to %s or free some", pools(withFamily), haveOrHas(withFamily), familyList(fams, " or "), themOrIt(withFamily))
}

// names returns the pools' names.
func names(ps []*pool) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.name()
	}
	return out
}

// themOrIt returns the pronoun for names.
func themOrIt(names []string) string {
	if len(names) == 1 {
		return "it"
	}
	return "them"
}

// haveOrHas returns the verb for names.
func haveOrHas(names []string) string {
	if len(names) == 1 {
		return "has"
	}
	return "have"
}

// claim is the addresses a key asks for or claims, checked.
type claim struct {
	pool  *pool
	picks []pick
	// displace are the younger holders, on Assign, that lose their
	// addresses to the key.
	displace []*assignment
}

// checkClaim checks that req's Service may hold ips: those it asks for on
// Allocate, or those its status shows on Assign.
func (a *Allocator) checkClaim(req *Request, fams []config.Family, ips []netip.Addr, assign bool) (claim, *Error) {
	if len(req.IPs) > 0 {
		asked, err := byFamily(fams, req.IPs)
		if err != nil {
			return claim{}, err
		}
		if req.Policy == RequireDualStack && slices.Contains(asked[:len(fams)], netip.Addr{}) {
			return claim{}, errorf(InvalidRequest, "the Service requires an address of each of %s but asks for %d: ask for one of each family, or for none", familyList(fams, " and "), len(req.IPs))
		}
	}
	byFam, err := byFamily(fams, ips)
	if err != nil {
		return claim{}, err
	}
	if assign && len(req.IPs) > 0 {
		for _, ip := range ips {
			if !slices.Contains(req.IPs, ip) {
				return claim{}, errorf(InvalidRequest, "address %s is not one the Service asks for", ip)
			}
		}
	}
	if req.Pool != "" {
		if _, ok := a.byName[req.Pool]; !ok {
			return claim{}, errorf(NoMatchingPool, "pool %q does not exist: create it, or ask for another pool", req.Pool)
		}
	}
	var c claim
	var first netip.Addr
	for i, ip := range byFam[:len(fams)] {
		if !ip.IsValid() {
			continue
		}
		s := a.spanOf(ip)
		switch {
		case s == nil:
			return claim{}, errorf(NoMatchingPool, "address %s is in no address pool: add it to a pool, or ask for an address of one", ip)
		case !s.pool.cfg.Assignable(ip):
			return claim{}, errorf(InvalidRequest, "address %s ends in .0 or .255, which pool %q avoids: ask for another address, or turn off the pool's avoidBuggyIPs", ip, s.pool.name())
		case req.Pool != "" && s.pool.name() != req.Pool:
			return claim{}, errorf(InvalidRequest, "address %s is in pool %q, not in pool %q which the Service asks for: ask for an address of pool %[3]q, or for pool %[2]q", ip, s.pool.name(), req.Pool)
		case c.pool != nil && s.pool != c.pool:
			return claim{}, errorf(InvalidRequest, "addresses %s and %s are in different pools, %q and %q: a Service's addresses come from one pool", first, ip, c.pool.name(), s.pool.name())
		case !serves(s.pool, req):
			return claim{}, errorf(NoMatchingPool, "address %s is in pool %q, which does not serve Services in namespace %q with these labels: change the pool's serviceAllocation, or ask for another address", ip, s.pool.name(), req.Namespace)
		}
		c.pool, first = s.pool, ip
		for _, h := range a.addrs[ip].holders {
			if h.req.Key == req.Key {
				continue
			}
			why, ok := req.sharesWith(&h.req)
			switch {
			case ok:
			case assign && req.older(&h.req):
				if !slices.Contains(c.displace, h) {
					c.displace = append(c.displace, h)
				}
			case assign:
				return claim{}, errorf(RequestedIPInUse, "address %s is held by Service %s, which is older: %s", ip, h.req.Key, why)
			default:
				return claim{}, errorf(RequestedIPInUse, "address %s is in use by Service %s: %s", ip, h.req.Key, why)
			}
		}
		c.picks = append(c.picks, pick{fam: fams[i], ip: ip})
	}
	return c, nil
}

// byFamily returns the addresses ips by the index of their family in fams,
// or why they do not suit fams: one address per family.
func byFamily(fams []config.Family, ips []netip.Addr) ([2]netip.Addr, *Error) {
	var out [2]netip.Addr
	for _, ip := range ips {
		f := config.FamilyOf(ip)
		i := slices.Index(fams, f)
		switch {
		case i < 0:
			return out, errorf(InvalidRequest, "address %s is %s, but the Service uses %s only: ask for addresses of its IP families", ip, f, familyList(fams, " and "))
		case out[i].IsValid():
			return out, errorf(InvalidRequest, "addresses %s and %s are both %s: ask for one address per IP family", out[i], ip, f)
		}
		out[i] = ip
	}
	return out, nil
}

// assign does the work of Assign.
func (a *Allocator) assign(req *Request, ips []netip.Addr) (*assignment, []string, *Error) {
	fams, err := req.check()
	if err != nil {
		return nil, nil, err
	}
	if len(ips) == 0 {
		return nil, nil, errorf(InvalidRequest, "no address to assign")
	}
	for _, ip := range ips {
		if err := checkAddr(ip); err != nil {
			return nil, nil, err
		}
	}
	c, err := a.checkClaim(req, fams, ips, true)
	if err != nil {
		return nil, nil, err
	}
	var displaced []string
	for _, d := range c.displace {
		displaced = append(displaced, d.req.Key)
		a.release(d.req.Key)
	}
	slices.Sort(displaced)
	as, err := a.commit(req, c.pool, c.picks)
	return as, displaced, err
}

// commit makes req's key hold the picks, from pool p, and let go of the
// other addresses it held.
func (a *Allocator) commit(req *Request, p *pool, picks []pick) (*assignment, *Error) {
	ips := make([]netip.Addr, len(picks))
	for i, pk := range picks {
		ips[i] = pk.ip
		if pk.fresh {
			ip, ok := p.family(pk.fam).take(p.cfg, &a.held)
			if !ok {
				// offers saw a free address; this cannot happen.
				return nil, errorf(PoolExhausted, "pool %q has no free %s address: add addresses to it or free some", p.name(), pk.fam)
			}
			ips[i] = ip
		}
	}
	as := a.assignments[req.Key]
	if as == nil {
		as = &assignment{}
		a.assignments[req.Key] = as
	}
	oldIPs, oldKey := as.ips, as.req.SharingKey
	for _, ip := range ips {
		if !slices.Contains(oldIPs, ip) {
			a.hold(ip, p, as, req.SharingKey)
		} else if oldKey != req.SharingKey {
			// The key alone holds ip: another holder would have a
			// different sharing key from the new one.
			a.unshare(ip, oldKey)
			a.share(ip, req.SharingKey)
		}
	}
	for _, ip := range oldIPs {
		if !slices.Contains(ips, ip) {
			a.unhold(ip, as, oldKey)
		}
	}
	as.req, as.ips, as.pool = req.clone(), ips, p.name()
	return as, nil
}

// release lets go of every address the key holds.
func (a *Allocator) release(key string) {
	as, ok := a.assignments[key]
	if !ok {
		return
	}
	for _, ip := range as.ips {
		a.unhold(ip, as, as.req.SharingKey)
	}
	delete(a.assignments, key)
}

// hold makes as a holder of ip, of pool p, under the sharing key.
func (a *Allocator) hold(ip netip.Addr, p *pool, as *assignment, sharingKey string) {
	h, ok := a.addrs[ip]
	h.holders = append(h.holders, as)
	if ok {
		a.addrs[ip] = h
		return
	}
	h.pool = p
	a.addrs[ip] = h
	a.held.add(ip)
	p.family(config.FamilyOf(ip)).assigned++
	a.share(ip, sharingKey)
	if s := a.spanOf(ip); s != nil && !s.done && s.next == ip {
		s.skipHeld(&a.held)
	}
}

// unhold makes as no longer a holder of ip; the address is free once no
// key holds it.
func (a *Allocator) unhold(ip netip.Addr, as *assignment, sharingKey string) {
	h := a.addrs[ip]
	h.holders = slices.DeleteFunc(h.holders, func(o *assignment) bool { return o == as })
	if len(h.holders) > 0 {
		a.addrs[ip] = h
		return
	}
	delete(a.addrs, ip)
	a.held.remove(ip)
	a.unshare(ip, sharingKey)
	if h.pool != nil {
		pf := h.pool.family(config.FamilyOf(ip))
		pf.assigned--
		pf.free.push(ip)
	}
}

// share records that ip is held under the sharing key.
func (a *Allocator) share(ip netip.Addr, sharingKey string) {
	if sharingKey == "" {
		return
	}
	set, ok := a.shared[sharingKey]
	if !ok {
		set = make(map[netip.Addr]struct{})
		a.shared[sharingKey] = set
	}
	set[ip] = struct{}{}
}

// unshare records that ip is no longer held under the sharing key.
func (a *Allocator) unshare(ip netip.Addr, sharingKey string) {
	set, ok := a.shared[sharingKey]
	if !ok {
		return
	}
	delete(set, ip)
	if len(set) == 0 {
		delete(a.shared, sharingKey)
	}
}

// spanOf returns the span that holds ip, or nil if no pool does.
func (a *Allocator) spanOf(ip netip.Addr) *span {
	i, _ := slices.BinarySearchFunc(a.spans, ip, func(s *span, ip netip.Addr) int { return s.r.Last.Compare(ip) })
	if i < len(a.spans) && a.spans[i].r.Contains(ip) {
		return a.spans[i]
	}
	return nil
}

// setPools replaces the pools with those of cfg. A range that begins where
// one did before keeps that range's cursor, and the free lists carry over
// the free addresses that stay in a pool. Every pool's count of addresses
// held starts at zero.
func (a *Allocator) setPools(cfg *config.Config) {
	oldSpans := make(map[netip.Addr]*span, len(a.spans))
	for _, s := range a.spans {
		oldSpans[s.r.First] = s
	}
	oldPools := a.pools
	a.pools, a.byName, a.spans = nil, make(map[string]*pool), nil
	if cfg != nil {
		for _, cp := range cfg.Pools {
			p := &pool{cfg: cp}
			for _, r := range cp.Ranges {
				if r.Size() == 0 {
					continue
				}
				s := &span{r: r, pool: p, next: r.First}
				if o, ok := oldSpans[r.First]; ok {
					s.resume(o)
				}
				pf := p.family(r.Family())
				pf.spans = append(pf.spans, s)
				a.spans = append(a.spans, s)
			}
			for i := range p.families {
				pf := &p.families[i]
				slices.SortFunc(pf.spans, func(x, y *span) int { return x.r.First.Compare(y.r.First) })
				pf.size = cp.Size(familyAt(i))
				for pf.cur < len(pf.spans) && pf.spans[pf.cur].done {
					pf.cur++
				}
			}
			a.pools = append(a.pools, p)
			a.byName[cp.Name] = p
		}
	}
	slices.SortFunc(a.pools, func(x, y *pool) int { return config.ComparePools(x.cfg, y.cfg) })
	slices.SortFunc(a.spans, func(x, y *span) int { return x.r.First.Compare(y.r.First) })
	for _, op := range oldPools {
		for i := range op.families {
			for _, ip := range op.families[i].free.all() {
				if _, held := a.addrs[ip]; held {
					continue
				}
				if s := a.spanOf(ip); s != nil && s.pool.cfg.Assignable(ip) {
					s.pool.families[i].free.push(ip)
				}
			}
		}
	}
}
