package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ironlbv1beta1 "github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/speaker/bgp"
)

// BGP is what the Speaker drives over BGP: a *bgp.Reconciler over a
// Router, and the Router's session states.
type BGP interface {
	// Reconcile makes the sessions and routes those of desired.
	Reconcile(ctx context.Context, desired bgp.State) (bgp.Changes, error)
	// Peers returns the state of every session.
	Peers(ctx context.Context) ([]bgp.PeerState, error)
}

// Sessions joins a bgp.Reconciler and its Router into a BGP.
type Sessions struct {
	*bgp.Reconciler
	Router bgp.Router
}

// Peers returns the Router's session states.
func (s Sessions) Peers(ctx context.Context) ([]bgp.PeerState, error) {
	return s.Router.Peers(ctx)
}

// advertise applies what this node advertises over BGP, logs why, and
// records a nodeAssigned event on each Service it starts to advertise.
func (s *Speaker) advertise(ctx context.Context, snap Snapshot, res Result) {
	if s.bgp == nil {
		return
	}
	var labels map[string]string
	if self := nodeByName(snap.Nodes, s.node); self != nil {
		labels = self.Labels
	}
	adv := bgp.Compute(snap.Config, labels, res.BGP)
	if _, err := s.bgp.Reconcile(ctx, adv.State); err != nil {
		s.log.Error(err, "apply BGP sessions and routes (retried on the next change)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, peers := range adv.Services {
		if old, ok := s.advertised[key]; ok && slices.Equal(old, peers) {
			continue
		}
		s.log.Info("advertising over BGP", "service", key, "peers", peers)
		s.event(ctx, key, "nodeAssigned", fmt.Sprintf("advertising from node %s, protocol bgp, peers %v", s.node, peers))
	}
	for key := range s.advertised {
		if _, ok := adv.Services[key]; !ok {
			s.log.Info("stopped advertising over BGP", "service", key)
		}
	}
	s.advertised = maps.Clone(adv.Services)
}

// WriteSessions writes this node's entry in the status of every BGPPeer it
// holds a session with, every interval until ctx ends. Each speaker owns
// its own entry (server-side apply, one field manager per node), so
// speakers never overwrite each other.
func (s *Speaker) WriteSessions(ctx context.Context, interval time.Duration) error {
	if s.bgp == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	written := map[string]ironlbv1beta1.BGPSessionStatus{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		states, err := s.bgp.Peers(ctx)
		if err != nil {
			s.log.Error(err, "read BGP sessions")
			continue
		}
		s.metrics.sessions(states)
		for _, st := range states {
			want := sessionStatus(s.node, st)
			if old, ok := written[st.Name]; ok && old.State == want.State && old.PrefixesSent == want.PrefixesSent {
				continue
			}
			if err := s.applySession(ctx, st.Name, want); err != nil {
				s.log.Error(err, "write BGPPeer status", "peer", st.Name)
				continue
			}
			written[st.Name] = want
		}
	}
}

func sessionStatus(node string, st bgp.PeerState) ironlbv1beta1.BGPSessionStatus {
	out := ironlbv1beta1.BGPSessionStatus{Node: node, State: ironlbv1beta1.BGPSessionState(st.Session.String()), PrefixesSent: int64(min(st.PrefixesSent, 1<<62))}
	if !st.EstablishedAt.IsZero() {
		since := st.EstablishedAt
		out.Since = ptrTime(since)
	}
	return out
}

func (s *Speaker) applySession(ctx context.Context, peer string, st ironlbv1beta1.BGPSessionStatus) error {
	entry := map[string]any{"node": st.Node, "state": string(st.State), "prefixesSent": st.PrefixesSent}
	if st.Since != nil {
		entry["since"] = st.Since.UTC().Format(time.RFC3339)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": ironlbv1beta1.GroupVersion.String(),
		"kind":       "BGPPeer",
		"metadata":   map[string]any{"name": peer, "namespace": s.namespace},
		"status":     map[string]any{"sessions": []any{entry}},
	}}
	return s.client.Status().Patch(ctx, u, client.Apply, client.FieldOwner("ironlb-speaker-"+s.node), client.ForceOwnership)
}

func ptrTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}
