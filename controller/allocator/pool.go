package allocator

import (
	"net/netip"
	"slices"

	"github.com/ironlb/ironlb/config"
)

// familyAt returns the family whose index in per-family arrays is i.
func familyAt(i int) config.Family {
	if i == 1 {
		return config.IPv6
	}
	return config.IPv4
}

// famIndex returns f's index in per-family arrays.
func famIndex(f config.Family) int {
	if f == config.IPv6 {
		return 1
	}
	return 0
}

// pool is a configured pool and what the allocator knows of its addresses.
type pool struct {
	cfg *config.Pool
	// families hold the pool's addresses of each family, by famIndex.
	families [2]poolFamily
}

// name returns the pool's name.
func (p *pool) name() string {
	return p.cfg.Name
}

// family returns the pool's addresses of family f.
func (p *pool) family(f config.Family) *poolFamily {
	return &p.families[famIndex(f)]
}

// poolFamily is the addresses of one family of a pool.
//
// Every address of the family that the pool may hand out and nobody holds
// is either on the free list or, in its span, at or after the span's
// cursor. So an address can be found without looking at those held: pop the
// free list, whose stale entries (held again, or no longer in the pool) are
// dropped, else move the first unfinished span's cursor past held ones. A
// cursor passes each address once, so its cost is paid for by the
// addresses it skips when they were taken; and it passes held addresses 64
// at a time (see heldSet).
type poolFamily struct {
	// spans are the family's ranges, in address order.
	spans []*span
	// cur is the index of the first span whose cursor has not finished.
	cur int
	// size is the number of addresses of the family the pool may hand
	// out, as config.Pool.Size gives it.
	size uint64
	// assigned is the number of addresses of the family held, each
	// counted once however many keys share it.
	assigned uint64
	// free holds released addresses, which are handed out first.
	free freeList
	// rescans counts the times take found no address although assigned
	// was below size and had to start the cursors over: never, unless the
	// invariant above is broken.
	rescans int
}

// available returns the number of addresses of the family that the pool
// can still hand out.
func (pf *poolFamily) available() uint64 {
	if pf.assigned >= pf.size {
		return 0
	}
	return pf.size - pf.assigned
}

// take returns an address of the family that the pool may hand out and
// that is not in held, or false if the pool has none left. The caller holds
// the address at once.
func (pf *poolFamily) take(p *config.Pool, held *heldSet) (netip.Addr, bool) {
	if pf.assigned >= pf.size {
		return netip.Addr{}, false
	}
	for {
		a, ok := pf.free.pop()
		if !ok {
			break
		}
		if !held.contains(a) && p.Assignable(a) {
			return a, true
		}
	}
	for range 2 {
		for ; pf.cur < len(pf.spans); pf.cur++ {
			if a, ok := pf.spans[pf.cur].scan(p.AvoidBuggyIPs, held); ok {
				return a, true
			}
		}
		// Fewer addresses are held than the pool has, yet none was found.
		// This cannot happen; if it does, look at every address again
		// rather than refuse one.
		pf.rescans++
		for _, s := range pf.spans {
			s.next, s.done = s.r.First, false
		}
		pf.cur = 0
	}
	return netip.Addr{}, false
}

// span is one range of a pool and the cursor that hands out its addresses
// in order.
type span struct {
	r    config.Range
	pool *pool
	// next is the cursor: the first address not yet looked at, unless done.
	next netip.Addr
	// done tells that the cursor has passed the range's last address.
	done bool
}

// advance moves the cursor past next.
func (s *span) advance() {
	if s.next == s.r.Last {
		s.done = true
		return
	}
	s.next = s.next.Next()
}

// scan moves the cursor past the next address that is neither held nor, if
// the pool avoids them, buggy, and returns it; or reports that the range
// has none left ahead of the cursor.
func (s *span) scan(avoidBuggy bool, held *heldSet) (netip.Addr, bool) {
	for !s.done {
		a, ok := held.nextFree(s.next, s.r.Last)
		if !ok {
			s.done = true
			break
		}
		s.next = a
		s.advance()
		if avoidBuggy && buggy(a) {
			continue
		}
		return a, true
	}
	return netip.Addr{}, false
}

// skipHeld moves the cursor past held addresses and, if the pool avoids
// them, buggy ones. After addresses are claimed in the order a cursor would
// have handed them out, as when a restarted controller reloads them, this
// keeps the next allocation from skipping them all at once.
func (s *span) skipHeld(held *heldSet) {
	for !s.done {
		a, ok := held.nextFree(s.next, s.r.Last)
		if !ok {
			s.done = true
			return
		}
		s.next = a
		if !s.pool.cfg.AvoidBuggyIPs || !buggy(a) {
			return
		}
		s.advance()
	}
}

// resume carries the cursor of o, the span that began at the same address
// in the previous configuration, over to s, so that a pool change does not
// make the cursor walk again over the addresses held. The addresses o's
// cursor passed that are free are on o's pool's free list, which the
// caller carries over too.
func (s *span) resume(o *span) {
	if o.pool.cfg.AvoidBuggyIPs && !s.pool.cfg.AvoidBuggyIPs && s.r.Family() == config.IPv4 {
		// The cursor skipped buggy addresses that s may hand out: start
		// over.
		return
	}
	switch {
	case !o.done:
		s.next = o.next
	case o.r.Last.Compare(s.r.Last) < 0:
		// The range grew past where the cursor finished.
		s.next = o.r.Last.Next()
	default:
		s.done = true
	}
	if !s.done && s.next.Compare(s.r.Last) > 0 {
		s.done = true
	}
}

// buggy reports whether a is an IPv4 address ending in .0 or .255, which
// pools that avoid buggy IPs do not hand out.
func buggy(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	b := a.As4()
	return b[3] == 0 || b[3] == 255
}

// freeList is a queue of released addresses, each at most once. Entries
// may be stale: the caller checks an address it pops.
type freeList struct {
	queue []netip.Addr
	head  int
	in    map[netip.Addr]struct{}
}

// len returns the number of entries.
func (l *freeList) len() int {
	return len(l.queue) - l.head
}

// push appends a, unless it is already queued.
func (l *freeList) push(a netip.Addr) {
	if _, ok := l.in[a]; ok {
		return
	}
	if l.in == nil {
		l.in = make(map[netip.Addr]struct{})
	}
	l.in[a] = struct{}{}
	l.queue = append(l.queue, a)
}

// pop removes and returns the oldest entry.
func (l *freeList) pop() (netip.Addr, bool) {
	if l.head == len(l.queue) {
		return netip.Addr{}, false
	}
	a := l.queue[l.head]
	l.head++
	delete(l.in, a)
	switch {
	case l.head == len(l.queue):
		l.queue, l.head = l.queue[:0], 0
	case l.head >= 64 && l.head*2 >= len(l.queue):
		l.queue = slices.Delete(l.queue, 0, l.head)
		l.head = 0
	}
	return a, true
}

// all returns the entries, oldest first.
func (l *freeList) all() []netip.Addr {
	return l.queue[l.head:]
}
