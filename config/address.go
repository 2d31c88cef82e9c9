package config

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"strings"
)

// Family is an IP address family.
type Family uint8

// The IP address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// FamilyOf returns the family of a: IPv4 for an IPv4 address, IPv6 for any
// other valid address, including an IPv4-mapped IPv6 one.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// String returns "IPv4" or "IPv6", the spelling Kubernetes uses in a
// Service's ipFamilies.
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	default:
		return fmt.Sprintf("Family(%d)", uint8(f))
	}
}

// bitLen returns the number of bits in an address of the family.
func (f Family) bitLen() int {
	if f == IPv4 {
		return 32
	}
	return 128
}

// Range is an inclusive range of addresses of one family: First, Last and
// every address between them. A Range built by ParseAddressRange has
// First <= Last, both of the same family and without a zone.
type Range struct {
	First netip.Addr
	Last  netip.Addr
}

// ParseAddressRange parses one entry of an IPAddressPool's spec.addresses:
// a CIDR such as "203.0.113.0/28" or "2001:db8::/120", whose host bits, if
// any are set, are cleared as MetalLB does; a range such as
// "203.0.113.10-203.0.113.20", with optional spaces around the "-", whose
// ends are of the same family and in order; or a single address, which is a
// range of one. Zones and IPv4-mapped IPv6 addresses are rejected.
func ParseAddressRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Range{}, errors.New("empty address: want a CIDR such as 203.0.113.0/28, a range such as 203.0.113.10-203.0.113.20, or a single address")
	}
	if strings.Contains(s, "%") {
		return Range{}, fmt.Errorf("%q has a zone: pool addresses cannot be scoped to an interface", s)
	}
	if first, last, isRange := strings.Cut(s, "-"); isRange {
		return parseRange(s, first, last)
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, fmt.Errorf("%q is not a valid CIDR: %w", s, err)
		}
		if p.Addr().Is4In6() {
			return Range{}, fmt.Errorf("%q is an IPv4-mapped IPv6 CIDR: write it as IPv4 CIDR", s)
		}
		return prefixRange(p.Masked()), nil
	}
	a, err := parseAddr(s)
	if err != nil {
		return Range{}, err
	}
	return Range{First: a, Last: a}, nil
}

// parseRange parses the range s, already cut at its "-" into first and last.
func parseRange(s, first, last string) (Range, error) {
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" || last == "" {
		return Range{}, fmt.Errorf("range %q lacks an end: want two addresses such as 203.0.113.10-203.0.113.20", s)
	}
	if strings.Contains(last, "-") {
		return Range{}, fmt.Errorf("range %q has more than one \"-\": want two addresses such as 203.0.113.10-203.0.113.20", s)
	}
	f, err := parseAddr(first)
	if err != nil {
		return Range{}, fmt.Errorf("range %q: first address: %w", s, err)
	}
	l, err := parseAddr(last)
	if err != nil {
		return Range{}, fmt.Errorf("range %q: last address: %w", s, err)
	}
	if FamilyOf(f) != FamilyOf(l) {
		return Range{}, fmt.Errorf("range %s-%s mixes IPv4 and IPv6: both ends must be of the same family", f, l)
	}
	if f.Compare(l) > 0 {
		return Range{}, fmt.Errorf("range %s-%s is reversed: the first address must not be greater than the last", f, l)
	}
	return Range{First: f, Last: l}, nil
}

// parseAddr parses one address of an address range.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address, a CIDR or a range of addresses: %w", s, err)
	}
	if a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("address %q is an IPv4-mapped IPv6 address: write it as %s", s, a.Unmap())
	}
	return a, nil
}

// prefixRange returns the range of addresses in the masked prefix p.
func prefixRange(p netip.Prefix) Range {
	return Range{First: p.Addr(), Last: lastAddr(p)}
}

// lastAddr returns the last address of the masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		setHostBits(b[:], p.Bits())
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	setHostBits(b[:], p.Bits())
	return netip.AddrFrom16(b)
}

// setHostBits sets every bit of the address b after its first prefixLen bits.
func setHostBits(b []byte, prefixLen int) {
	for i := prefixLen; i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
}

// String returns the range as ParseAddressRange reads it: a CIDR when the
// range is exactly one prefix (a single address is a /32 or /128), and
// "first-last" otherwise.
func (r Range) String() string {
	if p, ok := r.prefix(); ok {
		return p.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// prefix returns the prefix whose addresses are exactly r's, if there is
// one.
func (r Range) prefix() (netip.Prefix, bool) {
	if !r.valid() {
		return netip.Prefix{}, false
	}
	for n := 0; n <= r.First.BitLen(); n++ {
		p := netip.PrefixFrom(r.First, n).Masked()
		if p.Addr() == r.First && lastAddr(p) == r.Last {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// valid reports whether r is a range ParseAddressRange could return.
func (r Range) valid() bool {
	return r.First.IsValid() && r.First.Zone() == "" && r.Last.Zone() == "" &&
		r.First.BitLen() == r.Last.BitLen() && r.First.Compare(r.Last) <= 0
}

// Family returns the family of the range's addresses.
func (r Range) Family() Family {
	return FamilyOf(r.First)
}

// Contains reports whether a lies within the range. An address of the other
// family, or with a zone, never does.
func (r Range) Contains(a netip.Addr) bool {
	if a.Zone() != "" || a.BitLen() != r.First.BitLen() {
		return false
	}
	return r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// Overlaps reports whether r and o share an address.
func (r Range) Overlaps(o Range) bool {
	if r.First.BitLen() != o.First.BitLen() {
		return false
	}
	return r.First.Compare(o.Last) <= 0 && o.First.Compare(r.Last) <= 0
}

// intersection returns the addresses r and o share; it is only meaningful
// when they overlap.
func (r Range) intersection(o Range) Range {
	out := r
	if o.First.Compare(out.First) > 0 {
		out.First = o.First
	}
	if o.Last.Compare(out.Last) < 0 {
		out.Last = o.Last
	}
	return out
}

// Size returns the number of addresses in the range, saturated at the
// largest uint64: an IPv6 range can hold up to 2^128 addresses. An invalid
// range, such as the zero Range, has none.
func (r Range) Size() uint64 {
	if !r.valid() {
		return 0
	}
	first, last := toUint128(r.First), toUint128(r.Last)
	lo, borrow := bits.Sub64(last.lo, first.lo, 0)
	hi, _ := bits.Sub64(last.hi, first.hi, borrow)
	if hi != 0 || lo == math.MaxUint64 {
		return math.MaxUint64
	}
	return lo + 1
}

// Prefixes returns the fewest prefixes that together hold exactly the
// addresses of the range, in address order: "203.0.113.10-203.0.113.20"
// gives 203.0.113.10/31, 203.0.113.12/30, 203.0.113.16/30 and
// 203.0.113.20/32. An invalid range, such as the zero Range, has none.
func (r Range) Prefixes() []netip.Prefix {
	if !r.valid() {
		return nil
	}
	var out []netip.Prefix
	for start := r.First; start.IsValid(); {
		p := largestPrefixAt(start, r.Last)
		out = append(out, p)
		end := lastAddr(p)
		if end == r.Last {
			break
		}
		start = end.Next()
	}
	return out
}

// largestPrefixAt returns the largest prefix that begins at start and does
// not reach past last.
func largestPrefixAt(start, last netip.Addr) netip.Prefix {
	for n := 0; n < start.BitLen(); n++ {
		p := netip.PrefixFrom(start, n).Masked()
		if p.Addr() == start && lastAddr(p).Compare(last) <= 0 {
			return p
		}
	}
	return netip.PrefixFrom(start, start.BitLen())
}

// uint128 is an address as a 128-bit number, for counting.
type uint128 struct{ hi, lo uint64 }

// toUint128 returns a as a number; an IPv4 address is its 32-bit value.
func toUint128(a netip.Addr) uint128 {
	if a.Is4() {
		b := a.As4()
		return uint128{lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var n uint128
	for i := range 8 {
		n.hi = n.hi<<8 | uint64(b[i])
		n.lo = n.lo<<8 | uint64(b[i+8])
	}
	return n
}

// saturatingAdd returns a+b, or the largest uint64 if the sum overflows.
func saturatingAdd(a, b uint64) uint64 {
	sum, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return sum
}
