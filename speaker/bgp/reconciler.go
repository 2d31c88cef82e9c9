package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
)

// maxErrors is how many failures an error from Reconcile spells out; it
// counts the others.
const maxErrors = 10

// callsInFlight is how many Advertise and Withdraw calls a Reconcile keeps
// in flight on each session. A Router call waits on the BGP
// implementation's own goroutines (gobgp's server handles one request at
// a time), so ten thousand calls in a row add up ten thousand waits to be
// scheduled; with several in flight the implementation finds the next
// request waiting when it finishes one.
const callsInFlight = 8

// Reconciler brings a Router to a desired State, applying only the
// difference between that State and the one it last applied. It must be
// the only writer of its Router, which starts with no sessions.
//
// Each change that succeeds is remembered; one that fails is not, so the
// next Reconcile tries it again. Reconciling the same State twice changes
// nothing the second time.
//
// A Reconciler is safe for concurrent use; calls to Reconcile run one at
// a time.
type Reconciler struct {
	router Router

	mu      sync.Mutex
	applied State
}

// NewReconciler returns a Reconciler that applies changes through router.
func NewReconciler(router Router) *Reconciler {
	return &Reconciler{router: router, applied: State{}.Clone()}
}

// Applied returns the State the Router holds as far as the Reconciler
// knows: what it applied successfully.
func (r *Reconciler) Applied() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied.Clone()
}

// Reconcile applies to the Router the changes that turn the State last
// applied into desired, and returns them.
//
// It applies them in this order: it closes the sessions that go, resets
// those whose settings changed and opens the new ones; then it advertises
// new and changed routes before withdrawing old ones, so that a route
// whose aggregation changes is replaced without a gap. It goes on after a
// failure, skipping only the routes of a session it could not open or
// reset, and returns every failure joined; it stops early only when ctx
// ends. The sessions' routes change concurrently: each session's
// independently of the others', with several calls in flight on each, so
// the Router must take concurrent calls about different prefixes.
func (r *Reconciler) Reconcile(ctx context.Context, desired State) (Changes, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	changes := Plan{Current: r.applied, Desired: desired}.Calculate()
	var errs errorList
	broken := map[string]bool{}

	for _, name := range changes.DeletePeers {
		if err := ctx.Err(); err != nil {
			return changes, errs.withContext(err)
		}
		if err := r.router.DeletePeer(ctx, name); err != nil {
			errs.add(fmt.Errorf("delete peer %q: %w", name, err))
			continue
		}
		delete(r.applied.Peers, name)
		delete(r.applied.Routes, name)
	}
	for _, p := range changes.ResetPeers {
		if err := ctx.Err(); err != nil {
			return changes, errs.withContext(err)
		}
		if err := r.router.UpdatePeer(ctx, p); err != nil {
			errs.add(fmt.Errorf("reset peer %q: %w", p.Name, err))
			broken[p.Name] = true
			continue
		}
		r.applied.Peers[p.Name] = p
	}
	for _, p := range changes.AddPeers {
		if err := ctx.Err(); err != nil {
			return changes, errs.withContext(err)
		}
		if err := r.router.AddPeer(ctx, p); err != nil {
			errs.add(fmt.Errorf("add peer %q: %w", p.Name, err))
			broken[p.Name] = true
			continue
		}
		r.applied.Peers[p.Name] = p
		r.applied.Routes[p.Name] = map[netip.Prefix]Route{}
	}

	// Each session's routes change concurrently with the others'.
	work := map[string]*routeWork{}
	workOf := func(peer string) *routeWork {
		w := work[peer]
		if w == nil {
			w = &routeWork{peer: peer}
			work[peer] = w
			if r.applied.Routes[peer] == nil {
				r.applied.Routes[peer] = map[netip.Prefix]Route{}
			}
		}
		return w
	}
	for _, list := range [][]PeerRoute{changes.Add, changes.Update} {
		for _, pr := range list {
			if !broken[pr.Peer] {
				w := workOf(pr.Peer)
				w.advertise = append(w.advertise, pr.Route)
			}
		}
	}
	for _, pr := range changes.Withdraw {
		if !broken[pr.Peer] {
			w := workOf(pr.Peer)
			w.withdraw = append(w.withdraw, pr.Route.Prefix)
		}
	}
	var mu sync.Mutex // guards errs and r.applied.Routes' maps
	var wg sync.WaitGroup
	for _, w := range work {
		wg.Go(func() { r.applyRoutes(ctx, w, &mu, &errs) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return changes, errs.withContext(err)
	}
	return changes, errs.err()
}

// routeWork is what a Reconcile changes on one session: the routes it
// advertises, and then the prefixes it withdraws.
type routeWork struct {
	peer      string
	advertise []Route
	withdraw  []netip.Prefix
}

// applyRoutes advertises w's routes, then withdraws its prefixes, keeping
// up to callsInFlight calls in flight, and records in r.applied what
// succeeded and in errs what failed, holding mu. It stops starting calls
// when ctx ends.
func (r *Reconciler) applyRoutes(ctx context.Context, w *routeWork, mu *sync.Mutex, errs *errorList) {
	applied := r.applied.Routes[w.peer]
	forEach(ctx, w.advertise, func(route Route) {
		err := r.router.Advertise(ctx, w.peer, route)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs.add(fmt.Errorf("advertise %s to peer %q: %w", route.Prefix, w.peer, err))
			return
		}
		applied[route.Prefix] = route.clone()
	})
	forEach(ctx, w.withdraw, func(prefix netip.Prefix) {
		err := r.router.Withdraw(ctx, w.peer, prefix)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs.add(fmt.Errorf("withdraw %s from peer %q: %w", prefix, w.peer, err))
			return
		}
		delete(applied, prefix)
	})
}

// forEach calls fn with each item, up to callsInFlight at a time, and
// returns when every call has returned. It starts no call after ctx ends.
func forEach[T any](ctx context.Context, items []T, fn func(T)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(callsInFlight, len(items)) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(items)) || ctx.Err() != nil {
					return
				}
				fn(items[i])
			}
		})
	}
	wg.Wait()
}

// errorList collects errors, keeping the first maxErrors and counting the
// rest, so that ten thousand failed routes make a readable error.
type errorList struct {
	errs    []error
	dropped int
}

// add records err.
func (l *errorList) add(err error) {
	if len(l.errs) < maxErrors {
		l.errs = append(l.errs, err)
		return
	}
	l.dropped++
}

// err returns the errors joined, or nil if there are none.
func (l *errorList) err() error {
	errs := l.errs
	if l.dropped > 0 {
		errs = append(errs, fmt.Errorf("and %d more errors", l.dropped))
	}
	return errors.Join(errs...)
}

// withContext returns the errors joined with ctxErr, which ended the
// reconcile early.
func (l *errorList) withContext(ctxErr error) error {
	l.errs = append(l.errs, fmt.Errorf("reconcile stopped early: %w", ctxErr))
	return l.err()
}
