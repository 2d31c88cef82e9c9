package allocator

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func TestHeldSetNextFree(t *testing.T) {
	tests := []struct {
		name       string
		held       []string // ranges of held addresses, "first-last"
		from, last string
		want       string // "" for none
	}{
		{"empty set", nil, "10.0.0.5", "10.0.0.9", "10.0.0.5"},
		{"from held", []string{"10.0.0.5-10.0.0.7"}, "10.0.0.5", "10.0.0.9", "10.0.0.8"},
		{"across words", []string{"10.0.0.0-10.0.0.200"}, "10.0.0.3", "10.0.1.255", "10.0.0.201"},
		{"across blocks", []string{"10.0.0.0-10.0.7.255"}, "10.0.0.0", "10.0.9.0", "10.0.8.0"},
		{"block boundary", []string{"10.0.1.255-10.0.2.0"}, "10.0.1.255", "10.0.9.0", "10.0.2.1"},
		{"none before last", []string{"10.0.0.0-10.0.0.200"}, "10.0.0.3", "10.0.0.200", ""},
		{"free after last", []string{"10.0.0.0-10.0.0.9"}, "10.0.0.0", "10.0.0.9", ""},
		{"end of IPv4", []string{"255.255.254.0-255.255.255.255"}, "255.255.254.7", "255.255.255.255", ""},
		{"end of IPv6", []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fe00-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fe00", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
		{"IPv6 carry", []string{"2001:db8::ffff:ff00-2001:db8::1:0:1"}, "2001:db8::ffff:ff00", "2001:db8::2:0:0", "2001:db8::1:0:2"},
		{"IPv4 is not IPv6", []string{"::a00:0-::a00:ff"}, "10.0.0.0", "10.0.0.255", "10.0.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h heldSet
			for _, r := range tt.held {
				rg := rangeOf(t, r)
				for a := rg[0]; ; a = a.Next() {
					h.add(a)
					if a == rg[1] {
						break
					}
				}
			}
			got, ok := h.nextFree(netip.MustParseAddr(tt.from), netip.MustParseAddr(tt.last))
			gotS := ""
			if ok {
				gotS = got.String()
			}
			if gotS != tt.want {
				t.Errorf("nextFree(%s, %s) = %q, want %q", tt.from, tt.last, gotS, tt.want)
			}
		})
	}
}

// TestHeldSetRandom checks a heldSet against a map under random adds and
// removes, and nextFree against a walk.
func TestHeldSetRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, base := range []netip.Addr{netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("2001:db8::ffff:f000")} {
		t.Run(base.String(), func(t *testing.T) {
			const span = 4096
			addr := func(i int) netip.Addr {
				a := base
				for range i {
					a = a.Next()
				}
				return a
			}
			all := make([]netip.Addr, span)
			for i := range all {
				all[i] = addr(i)
			}
			var h heldSet
			want := map[netip.Addr]bool{}
			for step := range 20000 {
				a := all[r.IntN(span)]
				if r.IntN(3) == 0 {
					h.remove(a)
					delete(want, a)
				} else {
					h.add(a)
					want[a] = true
				}
				if step%500 != 0 {
					continue
				}
				for i, a := range all {
					if h.contains(a) != want[a] {
						t.Fatalf("step %d: contains(%s) = %t", step, a, !want[a])
					}
					if i%97 != 0 {
						continue
					}
					var wantFree string
					for _, b := range all[i:] {
						if !want[b] {
							wantFree = b.String()
							break
						}
					}
					got, ok := h.nextFree(a, all[span-1])
					if gotS := fmt.Sprint(got); (ok && gotS != wantFree) || (!ok && wantFree != "") {
						t.Fatalf("step %d: nextFree(%s) = %v, %t; want %q", step, a, got, ok, wantFree)
					}
				}
			}
		})
	}
}

func rangeOf(t *testing.T, s string) [2]netip.Addr {
	t.Helper()
	first, last, _ := strings.Cut(s, "-")
	return [2]netip.Addr{netip.MustParseAddr(first), netip.MustParseAddr(last)}
}
