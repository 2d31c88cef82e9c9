package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
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

// rewriteEvery is how often WriteSessions writes every entry again even
// if nothing changed, which restores an entry another speaker removed
// while it could not see this one.
const rewriteEvery = time.Minute

// WriteSessions writes this node's entry in the status of every BGPPeer it
// holds a session with, every interval until ctx ends, and removes its
// entry from those it no longer holds one with. Each speaker owns its own
// entry (server-side apply, one field manager per node), so speakers never
// overwrite each other. The live speaker with the lowest node name also
// removes the entries of nodes whose speaker the failure detector sees
// gone, so that a dead node's last state does not stay on display.
func (s *Speaker) WriteSessions(ctx context.Context, interval time.Duration) error {
	if s.bgp == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	written := map[string]ironlbv1beta1.BGPSessionStatus{}
	rewrite := time.Now().Add(rewriteEvery)
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
		if time.Now().After(rewrite) {
			clear(written)
			rewrite = time.Now().Add(rewriteEvery)
		}
		holding := map[string]bool{}
		for _, st := range states {
			holding[st.Name] = true
			want := sessionStatus(s.node, st)
			if old, ok := written[st.Name]; ok && old.State == want.State && old.PrefixesSent == want.PrefixesSent {
				continue
			}
			if err := s.applySession(ctx, st.Name, &want); err != nil {
				s.log.Error(err, "write BGPPeer status", "peer", st.Name)
				continue
			}
			written[st.Name] = want
		}
		for peer := range written {
			if holding[peer] {
				continue
			}
			if err := s.applySession(ctx, peer, nil); err != nil && !apierrors.IsNotFound(err) {
				s.log.Error(err, "remove this node's entry from BGPPeer status", "peer", peer)
				continue
			}
			delete(written, peer)
		}
		if live := s.liveSet(); live != nil && slices.Min(slices.Collect(maps.Keys(live))) == s.node {
			s.pruneSessions(ctx, live)
		}
	}
}

// liveSet returns the nodes the failure detector sees alive, nil if none
// runs.
func (s *Speaker) liveSet() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.live) == 0 {
		return nil
	}
	return maps.Clone(s.live)
}

// pruneSessions removes, from every BGPPeer's status, the entries of nodes
// not in live.
func (s *Speaker) pruneSessions(ctx context.Context, live map[string]bool) {
	var peers ironlbv1beta1.BGPPeerList
	if err := s.client.List(ctx, &peers, client.InNamespace(s.namespace)); err != nil {
		s.log.Error(err, "list BGPPeers")
		return
	}
	for i := range peers.Items {
		p := &peers.Items[i]
		for j := len(p.Status.Sessions) - 1; j >= 0; j-- {
			node := p.Status.Sessions[j].Node
			if live[node] {
				continue
			}
			// The test makes the removal miss rather than remove another
			// entry if the list changed meanwhile.
			patch, _ := json.Marshal([]map[string]any{
				{"op": "test", "path": fmt.Sprintf("/status/sessions/%d/node", j), "value": node},
				{"op": "remove", "path": fmt.Sprintf("/status/sessions/%d", j)},
			})
			if err := s.client.Status().Patch(ctx, p, client.RawPatch(types.JSONPatchType, patch)); err != nil {
				s.log.V(1).Info("cannot remove a gone node's entry from BGPPeer status; retrying", "peer", p.Name, "node", node, "error", err.Error())
				break
			}
			s.log.Info("removed the BGPPeer status entry of a node whose speaker is gone", "peer", p.Name, "node", node)
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

// applySession writes this node's entry in peer's status, or removes it
// when st is nil.
func (s *Speaker) applySession(ctx context.Context, peer string, st *ironlbv1beta1.BGPSessionStatus) error {
	sessions := []any{}
	if st != nil {
		entry := map[string]any{"node": st.Node, "state": string(st.State), "prefixesSent": st.PrefixesSent}
		if st.Since != nil {
			entry["since"] = st.Since.UTC().Format(time.RFC3339)
		}
		sessions = append(sessions, entry)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": ironlbv1beta1.GroupVersion.String(),
		"kind":       "BGPPeer",
		"metadata":   map[string]any{"name": peer, "namespace": s.namespace},
		"status":     map[string]any{"sessions": sessions},
	}}
	return s.client.Status().Patch(ctx, u, client.Apply, client.FieldOwner("ironlb-speaker-"+s.node), client.ForceOwnership)
}

func ptrTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}
