package layer2

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/ironlb/ironlb/config"
)

// DefaultSchedule is when an Announcer sends gratuitous packets after it
// starts answering for an address: at once, then three times over two
// seconds, for hosts that missed the first.
var DefaultSchedule = []time.Duration{0, 500 * time.Millisecond, time.Second, 2 * time.Second}

// DefaultRetryInterval is how long an Announcer waits before it opens a
// Responder again after opening or running it failed.
const DefaultRetryInterval = time.Second

// ErrStopped is returned by Apply after the Announcer's Run returned.
var ErrStopped = errors.New("layer2: announcer stopped")

// Responder answers ARP or NDP for a set of addresses on one interface.
// *arp.Responder and *ndp.Responder are Responders.
type Responder interface {
	// Run answers requests until ctx is done or the Responder is closed,
	// when it returns nil, or until it fails.
	Run(ctx context.Context) error
	// Add starts answering for ip.
	Add(ip netip.Addr) error
	// Remove stops answering for ip before it returns.
	Remove(ip netip.Addr) error
	// Gratuitous sends one gratuitous ARP or unsolicited Neighbor
	// Advertisement for ip, which the Responder answers for.
	Gratuitous(ip netip.Addr) error
	// Close stops answering and releases the Responder's socket.
	Close() error
}

// Factory opens Responders.
type Factory interface {
	// Open returns a Responder answering for addresses of family f on the
	// interface named ifname.
	Open(ifname string, f config.Family) (Responder, error)
}

// FactoryFunc is a function that is a Factory.
type FactoryFunc func(ifname string, f config.Family) (Responder, error)

// Open calls f.
func (f FactoryFunc) Open(ifname string, fam config.Family) (Responder, error) {
	return f(ifname, fam)
}

// An Announcer makes a node answer for the addresses it owns, on the
// interfaces it is told, through one Responder per interface and family.
// It is safe for concurrent use. Set its fields before calling Apply or
// Run.
type Announcer struct {
	// Schedule holds the delays, counted from the moment an address starts
	// being answered on an interface, at which a gratuitous packet is
	// sent; a delay of zero or less is sent by Apply before it returns.
	// NewAnnouncer sets DefaultSchedule.
	Schedule []time.Duration
	// RetryInterval is how long to wait before opening a Responder again
	// after opening, adding to, or running it failed.
	RetryInterval time.Duration
	// Log receives errors and changes; the zero Logger discards them.
	Log logr.Logger

	factory Factory
	wake    chan struct{}

	mu        sync.Mutex
	desired   Desired
	links     map[Link]*link
	answering map[Binding]bool
	pending   []repeat
	retryAt   time.Time
	failing   map[Link]string // the root cause each link last failed with, so it is logged once
	ctx       context.Context // Run's; nil before Run
	stopped   bool
	wg        sync.WaitGroup
}

// link is one open Responder.
type link struct {
	r      Responder
	cancel context.CancelFunc // nil until Run starts the Responder
}

// repeat is a gratuitous packet due later.
type repeat struct {
	b   Binding
	due time.Time
}

// NewAnnouncer returns an Announcer that opens its Responders with f. It
// starts nothing: Apply opens Responders and answers at once; Run serves
// them and sends the repeated gratuitous packets.
func NewAnnouncer(f Factory) *Announcer {
	return &Announcer{
		Schedule:      slices.Clone(DefaultSchedule),
		RetryInterval: DefaultRetryInterval,
		factory:       f,
		wake:          make(chan struct{}, 1),
		desired:       Desired{},
		links:         make(map[Link]*link),
		answering:     make(map[Binding]bool),
		failing:       make(map[Link]string),
	}
}

// Apply makes the node answer for exactly the addresses of desired, on
// their interfaces. It stops answering for the others before it returns,
// opens the Responders newly needed, and sends the first gratuitous packet
// for every address newly answered on an interface. Applying the same
// state again changes nothing.
//
// Apply returns the errors of opening and adding; the Announcer retries
// them by itself every RetryInterval while Run runs.
func (a *Announcer) Apply(desired Desired) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return ErrStopped
	}
	a.desired = desired.Clone()
	err := a.reconcile(time.Now())
	a.signal()
	return err
}

// Reannounce sends the gratuitous packets of the Schedule again for every
// address answered, as for one newly answered: the first before it
// returns. A node that kept its addresses while another claimed them (two
// sides of a partition, each seeing the other dead) calls it when the other
// comes back, so that hosts which believed the other's announcements
// return to this node at once, not when their neighbour entries go stale.
func (a *Announcer) Reannounce() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return
	}
	now := time.Now()
	a.pending = a.pending[:0]
	for b := range a.answering {
		a.announce(b, now)
	}
	a.signal()
}

// Bindings returns what the node answers for, sorted by interface then
// address.
func (a *Announcer) Bindings() []Binding {
	a.mu.Lock()
	defer a.mu.Unlock()
	return SortedBindings(a.answering)
}

// Run serves the Responders, sends the repeated gratuitous packets and
// retries what failed, until ctx is done. It then closes every Responder,
// so the node stops answering, and returns nil.
func (a *Announcer) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.ctx != nil || a.stopped {
		a.mu.Unlock()
		return errors.New("layer2: announcer already ran")
	}
	a.ctx = ctx
	for l, ln := range a.links {
		a.start(l, ln)
	}
	a.mu.Unlock()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		a.mu.Lock()
		next := a.tick(time.Now())
		a.mu.Unlock()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			a.shutdown()
			return nil
		case <-a.wake:
		case <-timer.C:
		}
	}
}

// shutdown closes every Responder and waits for their Run to return.
func (a *Announcer) shutdown() {
	a.mu.Lock()
	a.stopped = true
	for l, ln := range a.links {
		a.close(l, ln)
	}
	clear(a.answering)
	a.pending = nil
	a.mu.Unlock()
	a.wg.Wait()
}

// signal wakes Run up.
func (a *Announcer) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// tick sends the gratuitous packets due at now and retries if it is time;
// it returns when it next has something to do (zero: nothing planned).
func (a *Announcer) tick(now time.Time) time.Time {
	if !a.retryAt.IsZero() && !now.Before(a.retryAt) {
		a.retryAt = time.Time{}
		_ = a.reconcile(now) // errors are logged
	}
	var next time.Time
	kept := a.pending[:0]
	for _, p := range a.pending {
		if now.Before(p.due) {
			kept = append(kept, p)
			next = earliest(next, p.due)
			continue
		}
		a.gratuitous(p.b)
	}
	clear(a.pending[len(kept):])
	a.pending = kept
	return earliest(next, a.retryAt)
}

// earliest returns the earlier of two times, the zero time meaning none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	default:
		return b
	}
}

// reconcile applies the changes from the current state to a.desired.
func (a *Announcer) reconcile(now time.Time) error {
	open := make(map[Link]bool, len(a.links))
	for l := range a.links {
		open[l] = true
	}
	ch := Plan(open, a.answering, a.desired)
	var errs []error
	for _, b := range ch.Remove {
		if ln := a.links[b.Link()]; ln != nil {
			if err := ln.r.Remove(b.IP); err != nil {
				// The Responder no longer answers; only cleaning up
				// failed (such as leaving a multicast group).
				a.Log.Error(err, "stop answering", "interface", b.Interface, "ip", b.IP)
			}
		}
		delete(a.answering, b)
		a.dropPending(b)
		a.Log.V(1).Info("stopped answering", "interface", b.Interface, "ip", b.IP)
	}
	for _, l := range ch.Close {
		a.close(l, a.links[l])
	}
	for _, l := range ch.Open {
		r, err := a.factory.Open(l.Interface, l.Family)
		if err != nil {
			errs = append(errs, a.fail(l, fmt.Errorf("open %s responder on %s: %w", l.Family, l.Interface, err)))
			continue
		}
		ln := &link{r: r}
		a.links[l] = ln
		if a.ctx != nil {
			a.start(l, ln)
		}
		a.Log.V(1).Info("opened responder", "interface", l.Interface, "family", l.Family)
	}
	failed := make(map[Link]*addFailure)
	for _, b := range ch.Add {
		ln := a.links[b.Link()]
		if ln == nil {
			continue // opening failed, and was reported
		}
		if err := ln.r.Add(b.IP); err != nil {
			f := failed[b.Link()]
			if f == nil {
				f = &addFailure{first: fmt.Errorf("answer for %s on %s: %w", b.IP, b.Interface, err)}
				failed[b.Link()] = f
			}
			f.n++
			continue
		}
		a.answering[b] = true
		a.Log.V(1).Info("answering", "interface", b.Interface, "ip", b.IP)
		a.announce(b, now)
	}
	for l := range a.failing {
		if failed[l] == nil && a.links[l] != nil {
			delete(a.failing, l)
		}
	}
	for l, f := range failed {
		err := f.first
		if f.n > 1 {
			err = fmt.Errorf("%w (and %d more addresses on %s)", f.first, f.n-1, l.Interface)
		}
		errs = append(errs, a.fail(l, err))
	}
	if len(errs) > 0 && a.retryAt.IsZero() {
		a.retryAt = now.Add(a.RetryInterval)
	}
	return errors.Join(errs...)
}

// rootCause returns the innermost error err wraps, which names no address.
func rootCause(err error) error {
	for {
		inner := errors.Unwrap(err)
		if inner == nil {
			return err
		}
		err = inner
	}
}

// addFailure is what adding addresses to one link's Responder failed with
// in one reconcile: the first error, and how many addresses failed.
type addFailure struct {
	first error
	n     int
}

// fail logs err for l, unless l failed for the same root cause last time
// (whichever addresses failed), and returns it.
func (a *Announcer) fail(l Link, err error) error {
	if cause := rootCause(err).Error(); a.failing[l] != cause {
		a.failing[l] = cause
		a.Log.Error(err, "layer-2 announcement failed; retrying", "interface", l.Interface, "family", l.Family, "retryInterval", a.RetryInterval)
	}
	return err
}

// announce sends the gratuitous packets of b's schedule that are due now,
// and plans the others.
func (a *Announcer) announce(b Binding, now time.Time) {
	for _, d := range a.Schedule {
		if d <= 0 {
			a.gratuitous(b)
			continue
		}
		a.pending = append(a.pending, repeat{b: b, due: now.Add(d)})
	}
}

// gratuitous sends one gratuitous packet for b, if it is still answered.
func (a *Announcer) gratuitous(b Binding) {
	ln := a.links[b.Link()]
	if ln == nil || !a.answering[b] {
		return
	}
	if err := ln.r.Gratuitous(b.IP); err != nil {
		a.Log.Error(err, "send gratuitous announcement", "interface", b.Interface, "ip", b.IP)
	}
}

// dropPending forgets the gratuitous packets planned for b.
func (a *Announcer) dropPending(b Binding) {
	a.pending = slices.DeleteFunc(a.pending, func(p repeat) bool { return p.b == b })
}

// start runs ln's Responder until it is closed or fails.
func (a *Announcer) start(l Link, ln *link) {
	ctx, cancel := context.WithCancel(a.ctx)
	ln.cancel = cancel
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		err := ln.r.Run(ctx)
		a.ended(l, ln, err)
	}()
}

// ended handles the end of the Run of ln's Responder: unless the
// Announcer closed it, the Responder failed, and is opened again after
// RetryInterval.
func (a *Announcer) ended(l Link, ln *link, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.links[l] != ln || a.stopped {
		return // closed on purpose
	}
	if err == nil {
		err = errors.New("responder stopped")
	}
	_ = a.fail(l, fmt.Errorf("run %s responder on %s: %w", l.Family, l.Interface, err))
	for b := range a.answering {
		if b.Link() == l {
			delete(a.answering, b)
			a.dropPending(b)
		}
	}
	a.close(l, ln)
	if a.retryAt.IsZero() {
		a.retryAt = time.Now().Add(a.RetryInterval)
	}
	a.signal()
}

// close closes ln's Responder and forgets it.
func (a *Announcer) close(l Link, ln *link) {
	delete(a.links, l)
	if ln.cancel != nil {
		ln.cancel()
	}
	if err := ln.r.Close(); err != nil {
		a.Log.Error(err, "close responder", "interface", l.Interface, "family", l.Family)
	}
	a.Log.V(1).Info("closed responder", "interface", l.Interface, "family", l.Family)
}
