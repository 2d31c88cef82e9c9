package allocator

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"

	"github.com/ironlb/ironlb/config"
)

// benchFamilies are the pools the benchmarks allocate from: a /8 IPv4 pool
// and a /64 IPv6 pool.
func benchFamilies() []struct {
	name   string
	prefix string
	fam    config.Family
} {
	return []struct {
		name   string
		prefix string
		fam    config.Family
	}{
		{"IPv4", "10.0.0.0/8", config.IPv4},
		{"IPv6", "2001:db8::/64", config.IPv6},
	}
}

// takeFirst makes n keys hold the first n addresses of the pool from
// first, claimed in random order as a restarted controller reloads them.
func takeFirst(b *testing.B, a *Allocator, first netip.Addr, fam config.Family, n int) {
	b.Helper()
	ips := make([]netip.Addr, n)
	ip := first
	for i := range ips {
		ips[i] = ip
		ip = ip.Next()
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { ips[i], ips[j] = ips[j], ips[i] })
	req := Request{Namespace: "old", Families: []config.Family{fam}}
	for i, ip := range ips {
		req.Key = "old/" + strconv.Itoa(i)
		if _, _, err := a.Assign(req, []netip.Addr{ip}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllocate measures the allocation of an address to a new
// Service, with 0, 10,000 and 1,000,000 addresses already held. The figures
// should not grow with the addresses held.
func BenchmarkAllocate(b *testing.B) {
	for _, f := range benchFamilies() {
		for _, taken := range []int{0, 10_000, 1_000_000} {
			b.Run(fmt.Sprintf("%s/taken=%d", f.name, taken), func(b *testing.B) {
				pool := newPool("big", f.prefix)
				a := New(configOf(pool))
				takeFirst(b, a, pool.Ranges[0].First, f.fam, taken)
				req := Request{Namespace: "new", Families: []config.Family{f.fam}}
				b.ReportAllocs()
				b.ResetTimer()
				i := 0
				for b.Loop() {
					req.Key = "new/" + strconv.Itoa(i)
					if _, err := a.Allocate(req); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// BenchmarkAllocateAfterGap measures allocation when 1,000,000 held
// addresses lie just ahead of the cursor, so that one allocation walks over
// all of them: the cost is amortized over the benchmark's allocations.
func BenchmarkAllocateAfterGap(b *testing.B) {
	pool := newPool("big", "10.0.0.0/8")
	a := New(configOf(pool))
	takeFirst(b, a, pool.Ranges[0].First.Next(), config.IPv4, 1_000_000)
	req := Request{Namespace: "new", Families: []config.Family{config.IPv4}}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		req.Key = "new/" + strconv.Itoa(i)
		if _, err := a.Allocate(req); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkReleaseAllocateFullPool measures a release and an allocation in
// a full pool of 1,048,576 addresses, as Services come and go: the
// allocation takes the released address from the free list.
func BenchmarkReleaseAllocateFullPool(b *testing.B) {
	for _, f := range []struct {
		name   string
		prefix string
		fam    config.Family
	}{{"IPv4", "10.0.0.0/12", config.IPv4}, {"IPv6", "2001:db8::/108", config.IPv6}} {
		b.Run(f.name, func(b *testing.B) {
			pool := newPool("full", f.prefix)
			a := New(configOf(pool))
			n := int(pool.Size(f.fam))
			takeFirst(b, a, pool.Ranges[0].First, f.fam, n)
			keys := make([]string, n)
			for i := range keys {
				keys[i] = "old/" + strconv.Itoa(i)
			}
			req := Request{Namespace: "new", Families: []config.Family{f.fam}}
			r := rand.New(rand.NewPCG(3, 4))
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				j := r.IntN(n)
				a.Release(keys[j])
				req.Key = "new/" + strconv.Itoa(i)
				if _, err := a.Allocate(req); err != nil {
					b.Fatal(err)
				}
				keys[j] = req.Key
				i++
			}
		})
	}
}

// BenchmarkAssign measures reloading one Service's address on start.
func BenchmarkAssign(b *testing.B) {
	a := New(configOf(newPool("big", "10.0.0.0/8")))
	req := Request{Namespace: "old", Families: []config.Family{config.IPv4}}
	ip := netip.MustParseAddr("10.0.0.0")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req.Key = "old/" + strconv.Itoa(i)
		if _, _, err := a.Assign(req, []netip.Addr{ip}); err != nil {
			b.Fatal(err)
		}
		ip = ip.Next()
		i++
	}
}
