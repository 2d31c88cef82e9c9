package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// maxErrors is how many failures an error from Reconcile spells out; it
// counts the others.
const maxErrors = 10

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
// ends.
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

	for _, list := range [][]PeerRoute{changes.Add, changes.Update} {
		for _, pr := range list {
			if broken[pr.Peer] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return changes, errs.withContext(err)
			}
			if err := r.router.Advertise(ctx, pr.Peer, pr.Route); err != nil {
				errs.add(fmt.Errorf("advertise %s to peer %q: %w", pr.Route.Prefix, pr.Peer, err))
				continue
			}
			routes := r.applied.Routes[pr.Peer]
			if routes == nil {
				routes = map[netip.Prefix]Route{}
				r.applied.Routes[pr.Peer] = routes
			}
			routes[pr.Route.Prefix] = pr.Route.clone()
		}
	}
	for _, pr := range changes.Withdraw {
		if broken[pr.Peer] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return changes, errs.withContext(err)
		}
		if err := r.router.Withdraw(ctx, pr.Peer, pr.Route.Prefix); err != nil {
			errs.add(fmt.Errorf("withdraw %s from peer %q: %w", pr.Route.Prefix, pr.Peer, err))
			continue
		}
		delete(r.applied.Routes[pr.Peer], pr.Route.Prefix)
	}
	return changes, errs.err()
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
