package allocator

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/config"
)

// TestRandomSequences drives Allocators with random sequences of Allocate,
// Assign, Reload, Release and SetConfig, checking after every step that no
// address is held by two keys that may not share it, that every address
// held lies in a pool its holder may use, that the pools' counts equal a
// recount, that a step changes no other key's addresses except those it
// reports, and that the same sequence gives the same addresses.
func TestRandomSequences(t *testing.T) {
	seeds := 100
	if testing.Short() {
		seeds = 20
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			first := runRandom(t, seed)
			if t.Failed() {
				return
			}
			if diff := cmp.Diff(first, runRandom(t, seed)); diff != "" {
				t.Errorf("the same sequence gave other results (-first +second):\n%s", diff)
			}
		})
	}
}

// runRandom runs one random sequence and returns its trace.
func runRandom(t *testing.T, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 0x1b))
	d := newDriver(t, func(n int) (int, bool) { return r.IntN(n), true })
	for range 300 {
		if !d.step() {
			break
		}
	}
	return d.trace
}

// FuzzAllocator drives an Allocator with the sequence of operations the
// input encodes, checking it after every step as TestRandomSequences does.
func FuzzAllocator(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte("allocate, release, assign, reload and set the configuration"))
	f.Add(slices.Repeat([]byte{3, 200, 17, 90, 250, 1}, 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newDriver(t, func(n int) (int, bool) {
			if len(data) == 0 {
				return 0, false
			}
			v := int(data[0]) % n
			data = data[1:]
			return v, true
		})
		for range 500 {
			if !d.step() {
				break
			}
		}
	})
}

// driver runs random operations on an Allocator and checks each.
type driver struct {
	t testing.TB
	a *Allocator
	// choose returns a number in [0, n), or false when the input ends.
	choose func(n int) (int, bool)
	ok     bool
	cfg    *config.Config
	trace  []string
}

func newDriver(t testing.TB, choose func(int) (int, bool)) *driver {
	d := &driver{t: t, choose: choose, ok: true}
	d.cfg = d.randomConfig()
	d.a = New(d.cfg)
	return d
}

// intn returns a choice in [0, n); once the input has ended, always 0.
func (d *driver) intn(n int) int {
	v, ok := d.choose(n)
	if !ok {
		d.ok = false
	}
	return v
}

// The keys the driver uses: namespace "a" or "b", and a name.
func driverKeys() []string {
	return []string{"a/s0", "a/s1", "a/s2", "a/s3", "b/s0", "b/s1", "b/s2", "b/s3"}
}

// segments are the address blocks pools are made of: each slot has
// variants, some beginning at the same address, and no two slots overlap.
func segments() [][]string {
	return [][]string{
		{"10.0.0.0/30", "10.0.0.0/31", "10.0.0.1-10.0.0.3"},
		{"10.0.0.4/30"},
		{"10.0.0.8/29", "10.0.0.8/30"},
		{"10.0.0.250-10.0.1.5", "10.0.0.250-10.0.0.255"},
		{"2001:db8::/126", "2001:db8::/127"},
		{"2001:db8::4/126"},
		{"2001:db8:1::/127"},
	}
}

// addresses are the addresses requests and claims pick from: those of
// every segment, and one in none.
func addresses() []netip.Addr {
	var out []netip.Addr
	for _, slot := range segments() {
		r, _ := config.ParseAddressRange(slot[0])
		for a := r.First; ; a = a.Next() {
			out = append(out, a)
			if a == r.Last {
				break
			}
		}
	}
	return append(out, netip.MustParseAddr("203.0.113.1"))
}

// randomConfig returns a configuration of up to four pools sharing the
// segments.
func (d *driver) randomConfig() *config.Config {
	names := []string{"p1", "p2", "p3", "p4"}
	byName := map[string]*config.Pool{}
	for _, slot := range segments() {
		v := d.intn(len(slot) + 1)
		if v == len(slot) {
			continue
		}
		name := names[d.intn(len(names))]
		p, ok := byName[name]
		if !ok {
			p = newPool(name)
			p.AutoAssign = d.intn(5) != 0
			p.AvoidBuggyIPs = d.intn(3) == 0
			p.Priority = int32(d.intn(3))
			switch d.intn(6) {
			case 0:
				forNamespaces("a")(p)
			case 1:
				forNamespaceLabels("team=x")(p)
			case 2:
				forServiceLabels("app=web")(p)
			}
			byName[name] = p
		}
		r, err := config.ParseAddressRange(slot[v])
		if err != nil {
			panic(err)
		}
		p.Ranges = append(p.Ranges, r)
	}
	var pools []*config.Pool
	for _, p := range byName {
		slices.SortFunc(p.Ranges, func(x, y config.Range) int { return x.First.Compare(y.First) })
		pools = append(pools, p)
	}
	return configOf(pools...)
}

// randomRequest returns a request for key.
func (d *driver) randomRequest(key string, withIPs bool) Request {
	ns, name, _ := strings.Cut(key, "/")
	r := Request{Key: key, Namespace: ns, Created: epoch.Add(time.Duration(keyIndex(name)) * time.Minute)}
	if ns == "b" {
		r.NamespaceLabels = labelSet([]string{"team", "x"})
	}
	if name == "s0" || name == "s1" {
		r.ServiceLabels = labelSet([]string{"app", "web"})
	}
	switch d.intn(5) {
	case 0:
		r.Policy, r.Families = SingleStack, []config.Family{config.IPv4}
	case 1:
		r.Policy, r.Families = SingleStack, []config.Family{config.IPv6}
	case 2:
		r.Policy, r.Families = PreferDualStack, []config.Family{config.IPv4, config.IPv6}
	case 3:
		r.Policy, r.Families = PreferDualStack, []config.Family{config.IPv6, config.IPv4}
	default:
		r.Policy, r.Families = RequireDualStack, []config.Family{config.IPv4, config.IPv6}
	}
	if d.intn(5) == 0 {
		r.Pool = []string{"p1", "p2", "p3", "p4", "nope"}[d.intn(5)]
	}
	if withIPs {
		all := addresses()
		for range 1 + d.intn(2) {
			r.IPs = append(r.IPs, all[d.intn(len(all))])
		}
	}
	r.SharingKey = []string{"", "k", "k", "j"}[d.intn(4)]
	ports := []Port{{TCP, 80}, {TCP, 443}, {UDP, 53}, {UDP, 80}}
	for range 1 + d.intn(2) {
		r.Ports = append(r.Ports, ports[d.intn(len(ports))])
	}
	if d.intn(4) == 0 {
		r.BackendKey = []string{"pods-1", "pods-2"}[d.intn(2)]
	}
	return r
}

// keyIndex returns the number in a name such as "s3": keys are created in
// order of their number.
func keyIndex(name string) int {
	var n int
	fmt.Sscanf(name, "s%d", &n)
	return n
}

// snapshot returns every key's addresses.
func (d *driver) snapshot() map[string][]netip.Addr {
	d.a.mu.Lock()
	defer d.a.mu.Unlock()
	out := map[string][]netip.Addr{}
	for k, as := range d.a.assignments {
		out[k] = slices.Clone(as.ips)
	}
	return out
}

// step runs one random operation and checks the Allocator after it. It
// returns false once the input has ended.
func (d *driver) step() bool {
	t := d.t
	t.Helper()
	keys := driverKeys()
	key := keys[d.intn(len(keys))]
	before := d.snapshot()
	var changed []string // keys the operation may change besides key
	var line string
	switch op := d.intn(20); {
	case op < 9:
		req := d.randomRequest(key, d.intn(4) == 0)
		mustServe := d.mustServe(&req)
		got, err := d.a.Allocate(req)
		line = fmt.Sprintf("Allocate(%s) = %v, %v", key, got, err)
		if !d.ok {
			return false
		}
		d.checkAllocated(req, got, err, mustServe)
	case op < 12:
		d.a.Release(key)
		line = fmt.Sprintf("Release(%s)", key)
		if _, ok := d.a.Assigned(key); ok {
			t.Fatalf("%s: the key still holds addresses", line)
		}
	case op < 15:
		req := d.randomRequest(key, d.intn(3) == 0)
		all := addresses()
		var ips []netip.Addr
		for range 1 + d.intn(2) {
			ips = append(ips, all[d.intn(len(all))])
		}
		if d.intn(2) == 0 {
			if as, ok := d.a.Assigned(key); ok {
				ips = as.IPs // Claim what the key holds.
			}
		}
		got, displaced, err := d.a.Assign(req, ips)
		line = fmt.Sprintf("Assign(%s, %v) = %v, %v, %v", key, ips, got, displaced, err)
		if !d.ok {
			return false
		}
		if err == nil && !slices.Equal(sortedAddrs(got.IPs), sortedAddrs(ips)) {
			t.Fatalf("%s: holds other addresses than claimed", line)
		}
		d.checkDisplaced(line, displaced, before)
		changed = displaced
	case op < 16:
		var claims []Claim
		for _, k := range keys {
			if d.intn(3) == 0 {
				as := before[k]
				if len(as) == 0 || d.intn(3) == 0 {
					all := addresses()
					as = []netip.Addr{all[d.intn(len(all))]}
				}
				claims = append(claims, Claim{Request: d.randomRequest(k, false), IPs: as})
			}
		}
		errs, displaced := d.a.Reload(claims)
		line = fmt.Sprintf("Reload(%d claims) = %v, %v", len(claims), errs, displaced)
		if !d.ok {
			return false
		}
		if len(errs) != len(claims) {
			t.Fatalf("%s: %d errors for %d claims", line, len(errs), len(claims))
		}
		d.checkDisplaced(line, displaced, before)
		changed = displaced
		for _, c := range claims {
			changed = append(changed, c.Request.Key)
		}
	default:
		d.cfg = d.randomConfig()
		affected := d.a.SetConfig(d.cfg)
		line = fmt.Sprintf("SetConfig = %v", affected)
		if !d.ok {
			return false
		}
		if !slices.IsSorted(affected) {
			t.Fatalf("%s: keys not sorted", line)
		}
		after := d.snapshot()
		for _, k := range affected {
			if len(after[k]) >= len(before[k]) || slices.ContainsFunc(after[k], func(ip netip.Addr) bool { return !slices.Contains(before[k], ip) }) {
				t.Fatalf("%s: %s held %v, now %v: it should have lost some", line, k, before[k], after[k])
			}
		}
		changed = affected
		key = ""
	}
	d.trace = append(d.trace, line)
	if err := checkInvariants(d.a); err != nil {
		t.Fatalf("after %s: %v\ntrace:\n%s", line, err, strings.Join(d.trace, "\n"))
	}
	after := d.snapshot()
	for k, ips := range before {
		if k != key && !slices.Contains(changed, k) && !slices.Equal(ips, after[k]) {
			t.Fatalf("after %s: %s held %v, now %v\ntrace:\n%s", line, k, ips, after[k], strings.Join(d.trace, "\n"))
		}
	}
	return true
}

// mustServe reports whether Allocate must succeed for req: it is a
// SingleStack request without addresses or sharing key, for a pool that
// serves it and has a free address of its family.
func (d *driver) mustServe(req *Request) bool {
	if req.Policy != SingleStack || req.Pool == "" || len(req.IPs) > 0 || req.SharingKey != "" {
		return false
	}
	d.a.mu.Lock()
	defer d.a.mu.Unlock()
	p, ok := d.a.byName[req.Pool]
	return ok && serves(p, req) && p.family(req.Families[0]).available() > 0
}

// checkAllocated checks the outcome of Allocate(req).
func (d *driver) checkAllocated(req Request, got Assignment, err error, mustServe bool) {
	t := d.t
	t.Helper()
	if err != nil {
		if _, ok := d.a.Assigned(req.Key); ok {
			t.Fatalf("Allocate(%s): %v, yet the key holds addresses", req.Key, err)
		}
		if mustServe {
			t.Fatalf("Allocate(%s) from pool %q: %v, though the pool had a free address", req.Key, req.Pool, err)
		}
		if r, _ := ReasonOf(err); r == PoolExhausted && req.Pool != "" {
			if st, _ := d.a.PoolStatus(req.Pool); st.AvailableIPv4 > 0 && st.AvailableIPv6 > 0 && req.SharingKey == "" {
				t.Fatalf("Allocate(%s) from pool %q: %v, though it has free addresses of both families: %+v", req.Key, req.Pool, err, st)
			}
		}
		return
	}
	fams := req.Families
	if req.Policy == SingleStack {
		fams = fams[:1]
	}
	var gotFams []config.Family
	for _, ip := range got.IPs {
		gotFams = append(gotFams, config.FamilyOf(ip))
	}
	switch {
	case len(req.IPs) > 0:
		if !slices.Equal(sortedAddrs(req.IPs), sortedAddrs(got.IPs)) {
			t.Fatalf("Allocate(%s) asked for %v, got %v", req.Key, req.IPs, got.IPs)
		}
	case req.Policy == PreferDualStack:
		if len(gotFams) == 0 || !isSubsequence(gotFams, fams) {
			t.Fatalf("Allocate(%s) for families %v got %v", req.Key, fams, got.IPs)
		}
	default:
		if !slices.Equal(gotFams, fams) {
			t.Fatalf("Allocate(%s) for families %v got %v", req.Key, fams, got.IPs)
		}
	}
	if req.Pool != "" && got.Pool != req.Pool {
		t.Fatalf("Allocate(%s) asked for pool %q, got %q", req.Key, req.Pool, got.Pool)
	}
	// Allocate again: the same addresses, and nothing else changes.
	before, statuses := d.snapshot(), d.a.PoolStatuses()
	again, err := d.a.Allocate(req)
	if err != nil || !cmp.Equal(got, again, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })) {
		t.Fatalf("Allocate(%s) again = %v, %v; first %v", req.Key, again, err, got)
	}
	if diff := cmp.Diff(before, d.snapshot(), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Fatalf("Allocate(%s) again changed assignments (-before +after):\n%s", req.Key, diff)
	}
	if diff := cmp.Diff(statuses, d.a.PoolStatuses()); diff != "" {
		t.Fatalf("Allocate(%s) again changed the pools' counts (-before +after):\n%s", req.Key, diff)
	}
}

// checkDisplaced checks that the displaced keys held addresses before and
// hold none now.
func (d *driver) checkDisplaced(line string, displaced []string, before map[string][]netip.Addr) {
	d.t.Helper()
	if !slices.IsSorted(displaced) {
		d.t.Fatalf("%s: displaced keys not sorted", line)
	}
	for _, k := range displaced {
		if len(before[k]) == 0 {
			d.t.Fatalf("%s: displaced %s, which held nothing", line, k)
		}
		if _, ok := d.a.Assigned(k); ok {
			// Reload may give a displaced key its own claim back later.
			if !strings.HasPrefix(line, "Reload") {
				d.t.Fatalf("%s: displaced %s still holds addresses", line, k)
			}
		}
	}
}

// isSubsequence reports whether sub is s with some elements left out.
func isSubsequence[T comparable](sub, s []T) bool {
	i := 0
	for _, x := range s {
		if i < len(sub) && sub[i] == x {
			i++
		}
	}
	return i == len(sub)
}
