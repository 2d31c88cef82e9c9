package allocator

import (
	"math/bits"
	"net/netip"
)

// blockBits is the number of low address bits that index an address in its
// block of a heldSet: a block covers 512 addresses.
const blockBits = 9

// heldSet is the set of addresses held, as a sparse bitmap: blocks of 512
// consecutive addresses, only for those that hold one. A cursor passes a run
// of held addresses 64 at a time, and a block at a time through the map,
// where looking each address up would be a cache miss apiece. Memory grows
// with the addresses held: about 100 bytes per block in use.
type heldSet struct {
	blocks map[netip.Addr]*heldBlock
}

// heldBlock is one block of a heldSet.
type heldBlock struct {
	bits [1 << blockBits / 64]uint64
	// n is the number of addresses set.
	n int
}

// add adds a to the set.
func (h *heldSet) add(a netip.Addr) {
	base, off := splitAddr(a)
	b, ok := h.blocks[base]
	if !ok {
		if h.blocks == nil {
			h.blocks = make(map[netip.Addr]*heldBlock)
		}
		b = &heldBlock{}
		h.blocks[base] = b
	}
	if w, m := off/64, uint64(1)<<(off%64); b.bits[w]&m == 0 {
		b.bits[w] |= m
		b.n++
	}
}

// remove removes a from the set.
func (h *heldSet) remove(a netip.Addr) {
	base, off := splitAddr(a)
	b, ok := h.blocks[base]
	if !ok {
		return
	}
	if w, m := off/64, uint64(1)<<(off%64); b.bits[w]&m != 0 {
		b.bits[w] &^= m
		b.n--
	}
	if b.n == 0 {
		delete(h.blocks, base)
	}
}

// contains reports whether a is in the set.
func (h *heldSet) contains(a netip.Addr) bool {
	base, off := splitAddr(a)
	b, ok := h.blocks[base]
	return ok && b.bits[off/64]&(1<<(off%64)) != 0
}

// nextFree returns the first address from from to last, inclusive, that is
// not in the set, or false if there is none.
func (h *heldSet) nextFree(from, last netip.Addr) (netip.Addr, bool) {
	base, off := splitAddr(from)
	for {
		b, ok := h.blocks[base]
		if !ok {
			a := withOffset(base, off)
			return a, a.Compare(last) <= 0
		}
		for w := off / 64; w < len(b.bits); w++ {
			free := ^b.bits[w]
			if w == off/64 {
				free &= ^uint64(0) << (off % 64)
			}
			if free != 0 {
				a := withOffset(base, w*64+bits.TrailingZeros64(free))
				return a, a.Compare(last) <= 0
			}
		}
		base, ok = nextBlock(base)
		if !ok || base.Compare(last) > 0 {
			return netip.Addr{}, false
		}
		off = 0
	}
}

// splitAddr returns the first address of a's block and a's offset in it.
func splitAddr(a netip.Addr) (netip.Addr, int) {
	if a.Is4() {
		b := a.As4()
		off := int(b[2]&1)<<8 | int(b[3])
		b[2] &^= 1
		b[3] = 0
		return netip.AddrFrom4(b), off
	}
	b := a.As16()
	off := int(b[14]&1)<<8 | int(b[15])
	b[14] &^= 1
	b[15] = 0
	return netip.AddrFrom16(b), off
}

// withOffset returns the address at offset off of the block that begins at
// base.
func withOffset(base netip.Addr, off int) netip.Addr {
	if base.Is4() {
		b := base.As4()
		b[2] |= byte(off >> 8)
		b[3] = byte(off)
		return netip.AddrFrom4(b)
	}
	b := base.As16()
	b[14] |= byte(off >> 8)
	b[15] = byte(off)
	return netip.AddrFrom16(b)
}

// nextBlock returns the first address of the block after the one that
// begins at base, or false if base's is the family's last block.
func nextBlock(base netip.Addr) (netip.Addr, bool) {
	if base.Is4() {
		b := base.As4()
		if !addCarry(b[:3], 2) {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4(b), true
	}
	b := base.As16()
	if !addCarry(b[:15], 2) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(b), true
}

// addCarry adds v to the big-endian number b, and reports whether the sum
// fits.
func addCarry(b []byte, v int) bool {
	for i := len(b) - 1; i >= 0 && v > 0; i-- {
		sum := int(b[i]) + v
		b[i] = byte(sum)
		v = sum >> 8
	}
	return v == 0
}
