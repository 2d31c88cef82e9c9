package config

import (
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// addrOpts compare netip values by ==.
var addrOpts = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

// rng returns the range from first to last.
func rng(first, last string) Range {
	return Range{First: netip.MustParseAddr(first), Last: netip.MustParseAddr(last)}
}

// prefixes parses each of ss as a prefix.
func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestParseAddressRange(t *testing.T) {
	tests := []struct {
		in         string
		want       Range
		wantString string
	}{
		{"203.0.113.0/28", rng("203.0.113.0", "203.0.113.15"), "203.0.113.0/28"},
		{"203.0.113.7/28", rng("203.0.113.0", "203.0.113.15"), "203.0.113.0/28"},
		{"2001:db8::/120", rng("2001:db8::", "2001:db8::ff"), "2001:db8::/120"},
		{"2001:db8::1:2/112", rng("2001:db8::1:0", "2001:db8::1:ffff"), "2001:db8::1:0/112"},
		{"203.0.113.10-203.0.113.20", rng("203.0.113.10", "203.0.113.20"), "203.0.113.10-203.0.113.20"},
		{"203.0.113.10 - 203.0.113.20", rng("203.0.113.10", "203.0.113.20"), "203.0.113.10-203.0.113.20"},
		{"  203.0.113.10\t-203.0.113.20 ", rng("203.0.113.10", "203.0.113.20"), "203.0.113.10-203.0.113.20"},
		{"203.0.113.0-203.0.113.255", rng("203.0.113.0", "203.0.113.255"), "203.0.113.0/24"},
		{"2001:db8::10-2001:db8::20", rng("2001:db8::10", "2001:db8::20"), "2001:db8::10-2001:db8::20"},
		{"203.0.113.5-203.0.113.5", rng("203.0.113.5", "203.0.113.5"), "203.0.113.5/32"},
		{"203.0.113.5", rng("203.0.113.5", "203.0.113.5"), "203.0.113.5/32"},
		{"2001:db8::5", rng("2001:db8::5", "2001:db8::5"), "2001:db8::5/128"},
		{"0.0.0.0/0", rng("0.0.0.0", "255.255.255.255"), "0.0.0.0/0"},
		{"::/0", rng("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), "::/0"},
		{"255.255.255.255/32", rng("255.255.255.255", "255.255.255.255"), "255.255.255.255/32"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", rng("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddressRange(tt.in)
			if err != nil {
				t.Fatalf("ParseAddressRange(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, addrOpts); diff != "" {
				t.Errorf("ParseAddressRange(%q) (-want +got):\n%s", tt.in, diff)
			}
			if s := got.String(); s != tt.wantString {
				t.Errorf("String() = %q, want %q", s, tt.wantString)
			}
		})
	}
}

func TestParseAddressRangeErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string // a part of the error text
	}{
		{"", "empty address"},
		{"   ", "empty address"},
		{"pool", `"pool" is not an IP address, a CIDR or a range`},
		{"203.0.113.0/33", `"203.0.113.0/33" is not a valid CIDR`},
		{"203.0.113/24", `"203.0.113/24" is not a valid CIDR`},
		{"203.0.113.20-203.0.113.10", "range 203.0.113.20-203.0.113.10 is reversed: the first address must not be greater than the last"},
		{"2001:db8::2-2001:db8::1", "range 2001:db8::2-2001:db8::1 is reversed"},
		{"203.0.113.1-2001:db8::1", "mixes IPv4 and IPv6"},
		{"203.0.113.1-", "lacks an end"},
		{"-203.0.113.1", "lacks an end"},
		{"203.0.113.1-203.0.113.2-203.0.113.3", `has more than one "-"`},
		{"203.0.113.1-banana", `last address: "banana" is not an IP address`},
		{"fe80::1%eth0", "has a zone"},
		{"fe80::1%eth0/64", "has a zone"},
		{"fe80::1%eth0-fe80::2%eth0", "has a zone"},
		{"::ffff:1.2.3.4", "IPv4-mapped IPv6 address: write it as 1.2.3.4"},
		{"::ffff:1.2.3.0/120", "IPv4-mapped IPv6 CIDR"},
		{"::ffff:1.2.3.4-::ffff:1.2.3.5", "IPv4-mapped"},
		{"203.0.113.010", "is not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddressRange(tt.in)
			if err == nil {
				t.Fatalf("ParseAddressRange(%q) = %v, want an error containing %q", tt.in, got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseAddressRange(%q) error %q does not contain %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestRangePrefixes(t *testing.T) {
	tests := []struct {
		r    Range
		want []netip.Prefix
	}{
		{rng("203.0.113.10", "203.0.113.20"), prefixes("203.0.113.10/31", "203.0.113.12/30", "203.0.113.16/30", "203.0.113.20/32")},
		{rng("203.0.113.0", "203.0.113.15"), prefixes("203.0.113.0/28")},
		{rng("203.0.113.5", "203.0.113.5"), prefixes("203.0.113.5/32")},
		{rng("0.0.0.0", "255.255.255.255"), prefixes("0.0.0.0/0")},
		{rng("0.0.0.1", "255.255.255.255"), prefixes(
			"0.0.0.1/32", "0.0.0.2/31", "0.0.0.4/30", "0.0.0.8/29", "0.0.0.16/28", "0.0.0.32/27", "0.0.0.64/26",
			"0.0.0.128/25", "0.0.1.0/24", "0.0.2.0/23", "0.0.4.0/22", "0.0.8.0/21", "0.0.16.0/20", "0.0.32.0/19",
			"0.0.64.0/18", "0.0.128.0/17", "0.1.0.0/16", "0.2.0.0/15", "0.4.0.0/14", "0.8.0.0/13", "0.16.0.0/12",
			"0.32.0.0/11", "0.64.0.0/10", "0.128.0.0/9", "1.0.0.0/8", "2.0.0.0/7", "4.0.0.0/6", "8.0.0.0/5",
			"16.0.0.0/4", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1")},
		{rng("255.255.255.254", "255.255.255.255"), prefixes("255.255.255.254/31")},
		{rng("2001:db8::ff", "2001:db8::200"), prefixes("2001:db8::ff/128", "2001:db8::100/120", "2001:db8::200/128")},
		{rng("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), prefixes("::/0")},
		{Range{}, nil},
		{rng("203.0.113.2", "203.0.113.1"), nil},
		{rng("203.0.113.1", "2001:db8::1"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.r.First.String()+"-"+tt.r.Last.String(), func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.r.Prefixes(), addrOpts); diff != "" {
				t.Errorf("Prefixes() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRangeSize(t *testing.T) {
	tests := []struct {
		r    Range
		want uint64
	}{
		{rng("203.0.113.10", "203.0.113.20"), 11},
		{rng("203.0.113.5", "203.0.113.5"), 1},
		{rng("0.0.0.0", "255.255.255.255"), 1 << 32},
		{rng("2001:db8::", "2001:db8::ffff:ffff:ffff:fffe"), math.MaxUint64},
		{rng("2001:db8::", "2001:db8::7fff:ffff:ffff:ffff"), 1 << 63},
		{rng("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"), math.MaxUint64}, // 2^64, saturated
		{rng("2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::"), 2},          // carries into the high half
		{rng("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), math.MaxUint64},
		{Range{}, 0},
		{rng("203.0.113.2", "203.0.113.1"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.r.First.String()+"-"+tt.r.Last.String(), func(t *testing.T) {
			if got := tt.r.Size(); got != tt.want {
				t.Errorf("Size() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRangeContainsAndOverlaps(t *testing.T) {
	r := rng("203.0.113.10", "203.0.113.20")
	for _, tt := range []struct {
		a    string
		want bool
	}{
		{"203.0.113.9", false},
		{"203.0.113.10", true},
		{"203.0.113.20", true},
		{"203.0.113.21", false},
		{"::ffff:203.0.113.15", false},
		{"2001:db8::1", false},
	} {
		if got := r.Contains(netip.MustParseAddr(tt.a)); got != tt.want {
			t.Errorf("%v.Contains(%s) = %t, want %t", r, tt.a, got, tt.want)
		}
	}
	v6 := rng("fe80::1", "fe80::2")
	if v6.Contains(netip.MustParseAddr("fe80::1%eth0")) {
		t.Errorf("%v.Contains(fe80::1%%eth0) = true, want false: an address with a zone is in no pool", v6)
	}
	for _, tt := range []struct {
		o    Range
		want bool
	}{
		{rng("203.0.113.0", "203.0.113.9"), false},
		{rng("203.0.113.0", "203.0.113.10"), true},
		{rng("203.0.113.20", "203.0.113.30"), true},
		{rng("203.0.113.12", "203.0.113.13"), true},
		{rng("203.0.113.0", "203.0.113.255"), true},
		{rng("203.0.113.21", "203.0.113.30"), false},
		{rng("::", "ffff::"), false},
	} {
		if got := r.Overlaps(tt.o); got != tt.want {
			t.Errorf("%v.Overlaps(%v) = %t, want %t", r, tt.o, got, tt.want)
		}
		if got := tt.o.Overlaps(r); got != tt.want {
			t.Errorf("%v.Overlaps(%v) = %t, want %t", tt.o, r, got, tt.want)
		}
	}
}

// addressSeeds are the inputs of past and likely bugs.
var addressSeeds = []string{
	"203.0.113.0/28", "203.0.113.7/28", "2001:db8::/120", "203.0.113.10-203.0.113.20",
	"203.0.113.10 - 203.0.113.20", "203.0.113.5", "2001:db8::5", "0.0.0.0/0", "::/0",
	"255.255.255.255/32", "255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "0.0.0.0-255.255.255.255",
	"203.0.113.20-203.0.113.10", "fe80::1%eth0", "fe80::1%eth0/64", "::ffff:1.2.3.4",
	"::ffff:1.2.3.4/128", "1.2.3.4-::1", "", "-", "/", "1.2.3.4/", "1.2.3.4/-1", "::-::",
	"1.2.3.4--1.2.3.5", "::1.2.3.4", "64:ff9b::1.2.3.4/96",
}

// FuzzParseAddressRange checks that ParseAddressRange never panics, that
// what it accepts is a well-formed range, and that the range round-trips
// through String.
func FuzzParseAddressRange(f *testing.F) {
	for _, s := range addressSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseAddressRange(s)
		if err != nil {
			return
		}
		if !r.valid() {
			t.Fatalf("ParseAddressRange(%q) = %#v, which is not a valid range", s, r)
		}
		if r.First.Is4In6() || r.Last.Is4In6() {
			t.Fatalf("ParseAddressRange(%q) = %v, which holds an IPv4-mapped IPv6 address", s, r)
		}
		again, err := ParseAddressRange(r.String())
		if err != nil {
			t.Fatalf("ParseAddressRange(%q) = %v, whose String %q does not parse: %v", s, r, r.String(), err)
		}
		if again != r {
			t.Fatalf("ParseAddressRange(%q) = %v, but its String %q parses as %v", s, r, r.String(), again)
		}
		checkCover(t, r)
	})
}

// FuzzRangePrefixes checks that the prefixes of any range exactly and
// minimally cover it.
func FuzzRangePrefixes(f *testing.F) {
	f.Add([]byte{203, 0, 113, 10}, []byte{203, 0, 113, 20})
	f.Add([]byte{0, 0, 0, 0}, []byte{255, 255, 255, 255})
	f.Add([]byte{0, 0, 0, 1}, []byte{255, 255, 255, 254})
	f.Add([]byte{255, 255, 255, 255}, []byte{255, 255, 255, 255})
	f.Add(netip.MustParseAddr("::").AsSlice(), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").AsSlice())
	f.Add(netip.MustParseAddr("::1").AsSlice(), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe").AsSlice())
	f.Add(netip.MustParseAddr("2001:db8::ff").AsSlice(), netip.MustParseAddr("2001:db8::200").AsSlice())
	f.Fuzz(func(t *testing.T, a, b []byte) {
		first, ok1 := netip.AddrFromSlice(a)
		last, ok2 := netip.AddrFromSlice(b)
		if !ok1 || !ok2 || first.BitLen() != last.BitLen() {
			return
		}
		if first.Compare(last) > 0 {
			first, last = last, first
		}
		checkCover(t, Range{First: first, Last: last})
	})
}

// checkCover fails t unless r.Prefixes() holds exactly r's addresses, in
// order, without gaps or overlaps, each prefix as large as it can be.
func checkCover(t *testing.T, r Range) {
	t.Helper()
	ps := r.Prefixes()
	if len(ps) == 0 {
		t.Fatalf("%v.Prefixes() is empty", r)
	}
	if len(ps) > 2*r.First.BitLen() {
		t.Fatalf("%v.Prefixes() has %d prefixes, more than a minimal cover's %d", r, len(ps), 2*r.First.BitLen())
	}
	next := r.First
	var total uint64
	for i, p := range ps {
		if p != p.Masked() {
			t.Fatalf("%v.Prefixes()[%d] = %v has host bits set", r, i, p)
		}
		if p.Addr() != next {
			t.Fatalf("%v.Prefixes()[%d] = %v, want a prefix starting at %v: gap or overlap", r, i, p, next)
		}
		pr := prefixRange(p)
		if pr.Last.Compare(r.Last) > 0 {
			t.Fatalf("%v.Prefixes()[%d] = %v reaches past the range", r, i, p)
		}
		if p.Bits() > 0 {
			if parent := prefixRange(netip.PrefixFrom(p.Addr(), p.Bits()-1).Masked()); r.First.Compare(parent.First) <= 0 && parent.Last.Compare(r.Last) <= 0 {
				t.Fatalf("%v.Prefixes()[%d] = %v could be merged into its parent: the cover is not minimal", r, i, p)
			}
		}
		total = saturatingAdd(total, pr.Size())
		next = pr.Last.Next()
	}
	if last := prefixRange(ps[len(ps)-1]).Last; last != r.Last {
		t.Fatalf("%v.Prefixes() ends at %v", r, last)
	}
	if total != r.Size() {
		t.Fatalf("%v.Prefixes() hold %d addresses, the range %d", r, total, r.Size())
	}
	if p, ok := r.prefix(); ok != (len(ps) == 1) || ok && p != ps[0] {
		t.Fatalf("%v.prefix() = %v, %t, but Prefixes() = %v", r, p, ok, ps)
	}
}
