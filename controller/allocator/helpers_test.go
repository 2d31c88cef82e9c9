package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config"
)

// newPool returns a pool that assigns its addresses automatically and
// serves every Service.
func newPool(name string, addresses ...string) *config.Pool {
	p := &config.Pool{Name: name, AutoAssign: true}
	for _, s := range addresses {
		r, err := config.ParseAddressRange(s)
		if err != nil {
			panic(err)
		}
		p.Ranges = append(p.Ranges, r)
	}
	slices.SortFunc(p.Ranges, func(x, y config.Range) int { return x.First.Compare(y.First) })
	return p
}

// poolWith returns p changed by edits.
func poolWith(p *config.Pool, edits ...func(*config.Pool)) *config.Pool {
	for _, e := range edits {
		e(p)
	}
	return p
}

func manual(p *config.Pool)     { p.AutoAssign = false }
func avoidBuggy(p *config.Pool) { p.AvoidBuggyIPs = true }

func priority(n int32) func(*config.Pool) {
	return func(p *config.Pool) { p.Priority = n }
}

func forNamespaces(ns ...string) func(*config.Pool) {
	return func(p *config.Pool) { p.Namespaces = slices.Sorted(slices.Values(ns)) }
}

func forNamespaceLabels(sel string) func(*config.Pool) {
	return func(p *config.Pool) { p.NamespaceSelectors = append(p.NamespaceSelectors, selector(sel)) }
}

func forServiceLabels(sel string) func(*config.Pool) {
	return func(p *config.Pool) { p.ServiceSelectors = append(p.ServiceSelectors, selector(sel)) }
}

func selector(s string) labels.Selector {
	sel, err := labels.Parse(s)
	if err != nil {
		panic(err)
	}
	return sel
}

// configOf returns a configuration of the pools, sorted by name as
// config.New sorts them.
func configOf(pools ...*config.Pool) *config.Config {
	c := &config.Config{Pools: slices.Clone(pools)}
	slices.SortFunc(c.Pools, func(x, y *config.Pool) int { return strings.Compare(x.Name, y.Name) })
	return c
}

// epoch is when the first Service of the tests was created.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// svc returns the request of a SingleStack IPv4 Service with key
// "namespace/name", changed by opts.
func svc(key string, opts ...func(*Request)) Request {
	ns, _, _ := strings.Cut(key, "/")
	r := Request{Key: key, Namespace: ns, Families: []config.Family{config.IPv4}, Policy: SingleStack, Created: epoch}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func stack(policy FamilyPolicy, fams ...config.Family) func(*Request) {
	return func(r *Request) { r.Policy, r.Families = policy, fams }
}

var (
	v6Only       = stack(SingleStack, config.IPv6)
	preferDual   = stack(PreferDualStack, config.IPv4, config.IPv6)
	preferDual64 = stack(PreferDualStack, config.IPv6, config.IPv4)
	requireDual  = stack(RequireDualStack, config.IPv4, config.IPv6)
)

func fromPool(name string) func(*Request) {
	return func(r *Request) { r.Pool = name }
}

func wantIPs(ips ...string) func(*Request) {
	return func(r *Request) { r.IPs = addrs(ips...) }
}

// sharing gives the Service a sharing key and ports such as "TCP/80".
func sharing(key string, ports ...string) func(*Request) {
	return func(r *Request) {
		r.SharingKey = key
		r.Ports = nil
		for _, p := range ports {
			proto, num, _ := strings.Cut(p, "/")
			var n uint16
			fmt.Sscan(num, &n)
			r.Ports = append(r.Ports, Port{Protocol: Protocol(proto), Port: n})
		}
	}
}

// local gives the Service externalTrafficPolicy Local, selecting the pods
// backend names.
func local(backend string) func(*Request) {
	return func(r *Request) { r.BackendKey = backend }
}

// age makes the Service created n minutes after the epoch.
func age(n int) func(*Request) {
	return func(r *Request) { r.Created = epoch.Add(time.Duration(n) * time.Minute) }
}

func namespaceLabels(kv ...string) func(*Request) {
	return func(r *Request) { r.NamespaceLabels = labelSet(kv) }
}

func serviceLabels(kv ...string) func(*Request) {
	return func(r *Request) { r.ServiceLabels = labelSet(kv) }
}

func labelSet(kv []string) labels.Set {
	s := labels.Set{}
	for i := 0; i < len(kv); i += 2 {
		s[kv[i]] = kv[i+1]
	}
	return s
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func strs(ips []netip.Addr) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

// op is what a step does.
type op int

const (
	opAllocate op = iota
	opAssign
	opRelease
	opConfig
	opHolds
	opStatus
)

// step is one step of a stateful scenario, and what it should give.
type step struct {
	op  op
	req Request        // opAllocate, opAssign
	ips []string       // opAssign: the addresses claimed; opHolds: those held
	key string         // opRelease, opHolds
	cfg *config.Config // opConfig

	want     []string // opAllocate, opAssign: the addresses
	wantPool string   // opAllocate, opAssign, if not empty
	wantErr  Reason
	wantKeys []string   // opAssign: displaced; opConfig: affected
	status   PoolStatus // opStatus
}

// allocate is a step that allocates for r and expects the addresses.
func allocate(r Request, want ...string) step {
	return step{op: opAllocate, req: r, want: want}
}

// allocateFrom is allocate expecting the addresses from pool.
func allocateFrom(pool string, r Request, want ...string) step {
	return step{op: opAllocate, req: r, want: want, wantPool: pool}
}

// refuse is a step that allocates for r and expects an error.
func refuse(r Request, reason Reason) step {
	return step{op: opAllocate, req: r, wantErr: reason}
}

// assign is a step that assigns ips to r's key and expects the displaced
// keys.
func assign(r Request, ips []string, displaced ...string) step {
	return step{op: opAssign, req: r, ips: ips, want: ips, wantKeys: displaced}
}

// assignRefused is a step that assigns ips to r's key and expects an error.
func assignRefused(r Request, ips []string, reason Reason) step {
	return step{op: opAssign, req: r, ips: ips, wantErr: reason}
}

func release(key string) step {
	return step{op: opRelease, key: key}
}

// setConfig is a step that swaps the configuration and expects the
// affected keys.
func setConfig(cfg *config.Config, affected ...string) step {
	return step{op: opConfig, cfg: cfg, wantKeys: affected}
}

// holds is a step that checks what key holds: nothing if ips is empty.
func holds(key string, ips ...string) step {
	return step{op: opHolds, key: key, ips: ips}
}

// status is a step that checks a pool's counts.
func status(pool string, assigned4, available4, assigned6, available6 uint64) step {
	return step{op: opStatus, status: PoolStatus{Pool: pool, AssignedIPv4: assigned4, AvailableIPv4: available4, AssignedIPv6: assigned6, AvailableIPv6: available6}}
}

// scenario is a named sequence of steps from a configuration.
type scenario struct {
	name  string
	cfg   *config.Config
	steps []step
}

// runScenarios runs each scenario on a new Allocator, checking the
// Allocator's invariants after every step.
func runScenarios(t *testing.T, scenarios []scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			a := New(sc.cfg)
			for i, s := range sc.steps {
				runStep(t, a, i, s)
				if err := checkInvariants(a); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
		})
	}
}

// runStep runs step i.
func runStep(t *testing.T, a *Allocator, i int, s step) {
	t.Helper()
	switch s.op {
	case opAllocate, opAssign:
		var got Assignment
		var displaced []string
		var err error
		what := fmt.Sprintf("step %d: Allocate(%s)", i, s.req.Key)
		if s.op == opAllocate {
			got, err = a.Allocate(s.req)
		} else {
			what = fmt.Sprintf("step %d: Assign(%s, %v)", i, s.req.Key, s.ips)
			got, displaced, err = a.Assign(s.req, addrs(s.ips...))
		}
		checkError(t, what, err, s.wantErr)
		if err != nil {
			if _, ok := a.Assigned(s.req.Key); ok {
				t.Errorf("%s: the key holds addresses after an error", what)
			}
			return
		}
		if diff := cmp.Diff(s.want, strs(got.IPs)); diff != "" {
			t.Errorf("%s: addresses (-want +got):\n%s", what, diff)
		}
		if s.wantPool != "" && got.Pool != s.wantPool {
			t.Errorf("%s: pool %q, want %q", what, got.Pool, s.wantPool)
		}
		if diff := cmp.Diff(s.wantKeys, displaced); diff != "" {
			t.Errorf("%s: displaced (-want +got):\n%s", what, diff)
		}
	case opRelease:
		a.Release(s.key)
	case opConfig:
		got := a.SetConfig(s.cfg)
		if diff := cmp.Diff(s.wantKeys, got, cmpEmpty); diff != "" {
			t.Errorf("step %d: SetConfig: affected keys (-want +got):\n%s", i, diff)
		}
	case opHolds:
		got, ok := a.Assigned(s.key)
		if ok != (len(s.ips) > 0) {
			t.Errorf("step %d: Assigned(%s) = %v, %t; want %v", i, s.key, got, ok, s.ips)
			return
		}
		if diff := cmp.Diff(s.ips, strs(got.IPs)); diff != "" {
			t.Errorf("step %d: Assigned(%s) (-want +got):\n%s", i, s.key, diff)
		}
	case opStatus:
		got, ok := a.PoolStatus(s.status.Pool)
		if !ok {
			t.Errorf("step %d: PoolStatus(%s): no such pool", i, s.status.Pool)
		}
		if diff := cmp.Diff(s.status, got); diff != "" {
			t.Errorf("step %d: PoolStatus(%s) (-want +got):\n%s", i, s.status.Pool, diff)
		}
	}
}

// cmpEmpty treats nil and empty slices alike.
var cmpEmpty = cmp.Comparer(func(x, y []string) bool { return slices.Equal(x, y) })

// checkError checks that err has the wanted reason, or is nil if want is
// empty.
func checkError(t *testing.T, what string, err error, want Reason) {
	t.Helper()
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: error %v is not an *Error", what, err)
		}
	}
	got, _ := ReasonOf(err)
	if got != want {
		t.Errorf("%s: error %v, want reason %q", what, err, want)
	}
}

// checkInvariants checks the Allocator's state is consistent: what keys
// hold and who holds each address agree; keys holding one address may
// share it; every address held lies in a pool its holders may use; the
// pools' counts equal a recount; and every free address of a small pool
// can be found again.
func checkInvariants(a *Allocator) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, as := range a.assignments {
		if as.req.Key != key {
			return fmt.Errorf("assignment under %q has key %q", key, as.req.Key)
		}
		if len(as.ips) == 0 {
			return fmt.Errorf("%s holds an empty assignment", key)
		}
		fams, err := as.req.check()
		if err != nil {
			return fmt.Errorf("%s holds addresses for an invalid request: %v", key, err)
		}
		seen := map[config.Family]bool{}
		for _, ip := range as.ips {
			f := config.FamilyOf(ip)
			if seen[f] || !slices.Contains(fams, f) {
				return fmt.Errorf("%s holds %v for families %v", key, as.ips, fams)
			}
			seen[f] = true
			h, ok := a.addrs[ip]
			if !ok || !slices.Contains(h.holders, as) {
				return fmt.Errorf("%s holds %s, which is not recorded as held by it", key, ip)
			}
			p := h.pool
			switch {
			case p == nil:
				return fmt.Errorf("%s holds %s, which is in no pool", key, ip)
			case p.name() != as.pool:
				return fmt.Errorf("%s holds %s of pool %q, but its assignment says pool %q", key, ip, p.name(), as.pool)
			case !p.cfg.Assignable(ip):
				return fmt.Errorf("%s holds %s, which pool %q may not hand out", key, ip, p.name())
			case !a.servesKept(p, &as.req):
				return fmt.Errorf("%s holds %s of pool %q, which it may not use", key, ip, p.name())
			}
			if s := a.spanOf(ip); s == nil || s.pool != p {
				return fmt.Errorf("%s is recorded in pool %q but lies elsewhere", ip, p.name())
			}
		}
		// Allocate gives exactly the addresses asked for; Assign may
		// claim some of them.
		for _, ip := range as.ips {
			if len(as.req.IPs) > 0 && !slices.Contains(as.req.IPs, ip) {
				return fmt.Errorf("%s asks for %v but holds %v", key, as.req.IPs, as.ips)
			}
		}
	}
	type poolFam struct {
		pool string
		fam  config.Family
	}
	count := map[poolFam]uint64{}
	sharedCount := 0
	for ip, h := range a.addrs {
		if len(h.holders) == 0 {
			return fmt.Errorf("%s is held by nobody", ip)
		}
		for i, x := range h.holders {
			if got, ok := a.assignments[x.req.Key]; !ok || got != x || !slices.Contains(x.ips, ip) {
				return fmt.Errorf("%s is recorded as held by %s, which does not hold it", ip, x.req.Key)
			}
			for _, y := range h.holders[i+1:] {
				if why, ok := x.req.sharesWith(&y.req); !ok {
					return fmt.Errorf("%s and %s both hold %s: %s", x.req.Key, y.req.Key, ip, why)
				}
			}
		}
		if k := h.holders[0].req.SharingKey; k != "" {
			if _, ok := a.shared[k][ip]; !ok {
				return fmt.Errorf("%s, held under sharing key %q, is not indexed under it", ip, k)
			}
			sharedCount++
		}
		count[poolFam{h.pool.name(), config.FamilyOf(ip)}]++
	}
	bits := 0
	for _, b := range a.held.blocks {
		bits += b.n
	}
	if bits != len(a.addrs) {
		return fmt.Errorf("the held set has %d addresses, want %d", bits, len(a.addrs))
	}
	for ip := range a.addrs {
		if !a.held.contains(ip) {
			return fmt.Errorf("%s is held but not in the held set", ip)
		}
	}
	n := 0
	for _, set := range a.shared {
		n += len(set)
	}
	if n != sharedCount {
		return fmt.Errorf("the sharing index has %d addresses, want %d", n, sharedCount)
	}
	for _, p := range a.pools {
		for i := range p.families {
			pf := &p.families[i]
			f := familyAt(i)
			if want := count[poolFam{p.name(), f}]; pf.assigned != want {
				return fmt.Errorf("pool %q counts %d %s addresses held, want %d", p.name(), pf.assigned, f, want)
			}
			if want := p.cfg.Size(f); pf.size != want || pf.available() != want-pf.assigned {
				return fmt.Errorf("pool %q: %s size %d, available %d; want size %d, available %d", p.name(), f, pf.size, pf.available(), want, want-pf.assigned)
			}
			if pf.rescans != 0 {
				return fmt.Errorf("pool %q rescanned its %s addresses", p.name(), f)
			}
			if pf.size <= 1<<12 {
				if err := a.checkFindable(p, pf); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkFindable checks that every address pf may hand out that nobody
// holds is on the free list or ahead of its span's cursor.
func (a *Allocator) checkFindable(p *pool, pf *poolFamily) error {
	for _, s := range pf.spans {
		for ip := s.r.First; ; ip = ip.Next() {
			_, held := a.addrs[ip]
			_, free := pf.free.in[ip]
			ahead := !s.done && ip.Compare(s.next) >= 0
			if p.cfg.Assignable(ip) && !held && !free && !ahead {
				return fmt.Errorf("pool %q: free address %s is neither on the free list nor ahead of the cursor (%s, done %t)", p.name(), ip, s.next, s.done)
			}
			if ip == s.r.Last {
				break
			}
		}
	}
	return nil
}

func sortedAddrs(ips []netip.Addr) []netip.Addr {
	out := slices.Clone(ips)
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
