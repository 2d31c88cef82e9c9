package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	ironlbv1beta1 "github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/speaker/eligibility"
	"github.com/ironlb/ironlb/speaker/layer2"
	"github.com/ironlb/ironlb/speaker/layer2/interfaces"
)

// Announcer is what the Speaker drives in layer 2: *layer2.Announcer.
type Announcer interface {
	Apply(layer2.Desired) error
	Reannounce()
}

// Options configure a Speaker.
type Options struct {
	// Node is the name of this speaker's Node.
	Node string
	// Namespace is ironlb's namespace, where its configuration lives.
	Namespace string
	// Announcer answers ARP and NDP.
	Announcer Announcer
	// Recorder records events on Services.
	Recorder events.EventRecorder
	// Peers, if set, is given the addresses of the other Nodes whenever
	// they change: the speakers the failure detector should join.
	Peers func([]netip.Addr)
	// BGP advertises over BGP; nil advertises nothing.
	BGP BGP
	// Metrics receives the speaker's metrics; nil records none.
	Metrics *Metrics
}

// Speaker keeps this node's announcements in step with the cluster.
type Speaker struct {
	client    client.Client
	node      string
	namespace string
	announcer Announcer
	peers     func([]netip.Addr)
	lastPeers *[]netip.Addr // nil until the first call of peers
	bgp       BGP
	recorder  events.EventRecorder
	metrics   *Metrics
	log       logr.Logger

	changed chan event.GenericEvent

	mu    sync.Mutex
	links []interfaces.Link
	live  map[string]bool
	// rejoined names the speakers the failure detector saw come back
	// since the last reconcile.
	rejoined []string
	// cfg is the last valid configuration, kept when a change is invalid.
	cfg    *config.Config
	cfgErr string
	// owners remembers each Service's layer-2 owner, to tell when it moves.
	owners map[string]string
	// advertised remembers the peers each Service is advertised to.
	advertised map[string][]string
}

// New returns a Speaker that reads and writes through c.
func New(c client.Client, o Options) *Speaker {
	return &Speaker{
		client: c, node: o.Node, namespace: o.Namespace, announcer: o.Announcer, bgp: o.BGP, peers: o.Peers,
		recorder: o.Recorder, metrics: o.Metrics, log: ctrl.Log.WithName("speaker"),
		changed: make(chan event.GenericEvent, 1),
		owners:  map[string]string{}, advertised: map[string][]string{},
	}
}

// SetLinks records this node's network interfaces, as an
// interfaces.Watcher reports them, and recomputes the announcements.
func (s *Speaker) SetLinks(links []interfaces.Link) {
	s.mu.Lock()
	s.links = links
	s.mu.Unlock()
	s.Changed()
}

// SetLive records the nodes whose speaker the failure detector sees alive
// (nil: none runs), and recomputes the announcements.
//
// A speaker that comes back after this one saw it dead may have been
// alive all along, on the other side of a partition, and announced some
// of this node's addresses there: once the announcements are recomputed,
// this node announces again every address it kept.
func (s *Speaker) SetLive(live map[string]bool) {
	s.mu.Lock()
	if s.live != nil {
		s.rejoined = append(s.rejoined, joined(s.live, live)...)
	}
	s.live = live
	s.mu.Unlock()
	s.Changed()
}

// joined returns the members of live that before does not hold, sorted.
func joined(before, live map[string]bool) []string {
	var out []string
	for n, ok := range live {
		if ok && !before[n] {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Changed asks for the announcements to be recomputed.
func (s *Speaker) Changed() {
	select {
	case s.changed <- event.GenericEvent{Object: &metav1.PartialObjectMetadata{}}:
	default:
	}
}

// theKey is the Speaker's one work item: any change recomputes everything.
var theKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "announcements"}}

// SetupWithManager watches everything the announcements depend on.
func (s *Speaker) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{theKey}
	})
	b := ctrl.NewControllerManagedBy(mgr).Named("announcements").
		WatchesRawSource(source.Channel(s.changed, all)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1})
	for _, obj := range []client.Object{
		&corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{},
		&ironlbv1beta1.IPAddressPool{}, &ironlbv1beta1.L2Advertisement{}, &ironlbv1beta1.BGPAdvertisement{},
		&ironlbv1beta1.BGPPeer{}, &ironlbv1beta1.Community{}, &corev1.Secret{},
	} {
		b = b.Watches(obj, all)
	}
	if err := b.Complete(reconcile.Func(s.reconcile)); err != nil {
		return fmt.Errorf("create the announcement controller: %w", err)
	}
	return nil
}

// A pass that took at least restAfter is followed by a rest as long as
// the pass, up to maxRest. Every pass reads every Service: with thousands
// changing at once (a bulk creation) back-to-back passes would take a whole
// core and starve the API server and the routers of a small node, and the
// speaker's own watches with them. Changes that arrive meanwhile are
// folded into the next pass. A pass over a few hundred Services takes a
// millisecond or two and is never held back.
const (
	restAfter = 20 * time.Millisecond
	maxRest   = time.Second
)

func (s *Speaker) reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	start := time.Now()
	defer func() { rest(ctx, time.Since(start)) }()
	snap, err := s.snapshot(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	res := Compute(snap)
	if err := s.announcer.Apply(res.L2); err != nil {
		s.log.Error(err, "announce in layer 2 (retried in the background)")
	}
	s.mu.Lock()
	rejoined := s.rejoined
	s.rejoined = nil
	s.mu.Unlock()
	if len(rejoined) > 0 && len(res.L2) > 0 {
		s.log.Info("speakers came back: announcing this node's addresses again", "speakers", rejoined, "ips", len(res.L2))
		s.announcer.Reannounce()
	}
	s.metrics.announced(res.L2)
	s.advertise(ctx, snap, res)
	s.report(ctx, snap, res)
	return reconcile.Result{}, s.writeStatuses(ctx, res)
}

// rest waits after a pass that took d, as the restAfter comment says,
// or until ctx ends.
func rest(ctx context.Context, d time.Duration) {
	if d < restAfter {
		return
	}
	t := time.NewTimer(min(d, maxRest))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// snapshot reads the cluster from the cache. It reads the cached objects
// themselves, not copies, and must not change them.
func (s *Speaker) snapshot(ctx context.Context) (Snapshot, error) {
	cfg, err := s.config(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	var nodes corev1.NodeList
	if err := s.client.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return Snapshot{}, fmt.Errorf("list Nodes: %w", err)
	}
	var services corev1.ServiceList
	if err := s.client.List(ctx, &services, client.UnsafeDisableDeepCopy); err != nil {
		return Snapshot{}, fmt.Errorf("list Services: %w", err)
	}
	var epSlices discoveryv1.EndpointSliceList
	if err := s.client.List(ctx, &epSlices, client.UnsafeDisableDeepCopy); err != nil {
		return Snapshot{}, fmt.Errorf("list EndpointSlices: %w", err)
	}
	s.mu.Lock()
	snap := Snapshot{Node: s.node, Config: cfg, Live: s.live, Links: s.links}
	s.mu.Unlock()

	for i := range nodes.Items {
		n := &nodes.Items[i]
		snap.Nodes = append(snap.Nodes, nodeOf(n))
		if n.Name == s.node {
			for _, a := range n.Status.Addresses {
				if ip, err := netip.ParseAddr(a.Address); err == nil && (a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP) {
					snap.NodeAddrs = append(snap.NodeAddrs, ip)
				}
			}
		}
	}
	s.updatePeers(nodes.Items)
	endpoints := map[string][]eligibility.Endpoint{}
	for i := range epSlices.Items {
		sl := &epSlices.Items[i]
		name := sl.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		key := sl.Namespace + "/" + name
		for _, e := range sl.Endpoints {
			endpoints[key] = append(endpoints[key], endpointOf(e))
		}
	}
	for i := range services.Items {
		svc := &services.Items[i]
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		var ips []netip.Addr
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if ip, err := netip.ParseAddr(in.IP); err == nil {
				ips = append(ips, ip.Unmap())
			}
		}
		if len(ips) == 0 {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		snap.Services = append(snap.Services, Service{
			Key: key, IPs: ips, Endpoints: endpoints[key],
			ExternalTrafficPolicyLocal: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
		})
	}
	return snap, nil
}

// config returns the announcement configuration: the one the objects
// describe when it is valid, else the last valid one.
func (s *Speaker) config(ctx context.Context) (*config.Config, error) {
	var pools ironlbv1beta1.IPAddressPoolList
	var l2 ironlbv1beta1.L2AdvertisementList
	var peers ironlbv1beta1.BGPPeerList
	var bgpAdvs ironlbv1beta1.BGPAdvertisementList
	var communities ironlbv1beta1.CommunityList
	var secrets corev1.SecretList
	for _, l := range []client.ObjectList{&pools, &l2, &peers, &bgpAdvs, &communities, &secrets} {
		if err := s.client.List(ctx, l, client.InNamespace(s.namespace)); err != nil {
			return nil, fmt.Errorf("list configuration: %w", err)
		}
	}
	in := config.Resources{
		Namespace: s.namespace, Pools: pools.Items, L2Advertisements: l2.Items, BGPPeers: peers.Items,
		BGPAdvertisements: bgpAdvs.Items, Communities: communities.Items, Secrets: secrets.Items,
	}
	cfg, err := config.New(in)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if msg := err.Error(); msg != s.cfgErr {
			state := "the last valid configuration stays in force"
			if s.cfg == nil {
				state = "nothing is announced until it is fixed"
			}
			s.log.Error(err, "the configuration is invalid: "+state)
			s.cfgErr = msg
		}
		return s.cfg, nil
	}
	if s.cfgErr != "" {
		s.log.Info("the configuration is valid again")
		s.cfgErr = ""
	}
	s.cfg = cfg
	return cfg, nil
}

// updatePeers gives the failure detector the other Nodes' addresses, the
// first time (none, in a one-node cluster, is news too) and when they
// changed.
func (s *Speaker) updatePeers(nodes []corev1.Node) {
	if s.peers == nil {
		return
	}
	var addrs []netip.Addr
	for i := range nodes {
		if nodes[i].Name == s.node {
			continue
		}
		for _, a := range nodes[i].Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP {
				addrs = append(addrs, ip)
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	if s.lastPeers != nil && slices.Equal(addrs, *s.lastPeers) {
		return
	}
	s.lastPeers = &addrs
	s.peers(addrs)
}

func nodeOf(n *corev1.Node) eligibility.Node {
	out := eligibility.Node{Name: n.Name, Labels: n.Labels}
	for _, c := range n.Status.Conditions {
		switch c.Type {
		case corev1.NodeReady:
			out.Ready = c.Status == corev1.ConditionTrue
		case corev1.NodeNetworkUnavailable:
			out.NetworkUnavailable = c.Status == corev1.ConditionTrue
		}
	}
	return out
}

func endpointOf(e discoveryv1.Endpoint) eligibility.Endpoint {
	out := eligibility.Endpoint{Ready: true}
	if e.NodeName != nil {
		out.NodeName = *e.NodeName
	}
	if e.Conditions.Ready != nil {
		out.Ready = *e.Conditions.Ready
	}
	out.Serving = out.Ready
	if e.Conditions.Serving != nil {
		out.Serving = *e.Conditions.Serving
	}
	if e.Conditions.Terminating != nil {
		out.Terminating = *e.Conditions.Terminating
	}
	return out
}

// report logs what changed and records a nodeAssigned event on each
// Service this node starts to announce.
func (s *Speaker) report(ctx context.Context, snap Snapshot, res Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for key, a := range res.Layer2 {
		seen[key] = true
		old, known := s.owners[key]
		if known && old == a.Owner {
			continue
		}
		s.owners[key] = a.Owner
		switch {
		case a.Owner == s.node:
			s.log.Info("announcing in layer 2", "service", key, "interfaces", a.Interfaces, "eligible", a.Eligible)
			s.event(ctx, key, "nodeAssigned", fmt.Sprintf("announcing from node %s, protocol layer2, interfaces %s", s.node, strings.Join(a.Interfaces, ", ")))
		case a.Owner == "":
			s.log.Info("no node may announce the Service in layer 2", "service", key, "why", whyString(a.Why))
		case old == s.node:
			s.log.Info("stopped announcing in layer 2: another node owns the Service", "service", key, "owner", a.Owner)
		default:
			if why, ok := a.Why[s.node]; ok {
				s.log.V(1).Info("not announcing in layer 2", "service", key, "owner", a.Owner, "why", why.String())
			}
		}
	}
	for key := range s.owners {
		if !seen[key] {
			delete(s.owners, key)
		}
	}
}

func (s *Speaker) event(ctx context.Context, key, reason, note string) {
	ns, name, _ := strings.Cut(key, "/")
	var svc corev1.Service
	if err := s.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
		return
	}
	s.recorder.Eventf(&svc, nil, corev1.EventTypeNormal, reason, "Announce", "%s", note)
}

func whyString(why map[string]eligibility.Why) string {
	names := make([]string, 0, len(why))
	for n := range why {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ": " + why[n].String()
	}
	return strings.Join(parts, "; ")
}

// statusName is the name of the ServiceL2Status of a Service: its
// namespace and name joined by a dot, which neither may contain.
func statusName(key string) string {
	return strings.Replace(key, "/", ".", 1)
}

// writeStatuses creates or updates the ServiceL2Status of every Service
// this node announces, and deletes those of Services nobody announces that
// name this node.
func (s *Speaker) writeStatuses(ctx context.Context, res Result) error {
	var existing ironlbv1beta1.ServiceL2StatusList
	// The cached objects themselves: writeStatus copies one before
	// changing it.
	if err := s.client.List(ctx, &existing, client.InNamespace(s.namespace), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list ServiceL2Statuses: %w", err)
	}
	byName := map[string]*ironlbv1beta1.ServiceL2Status{}
	for i := range existing.Items {
		byName[existing.Items[i].Name] = &existing.Items[i]
	}
	announced := map[string]bool{}
	for key, a := range res.Layer2 {
		if a.Owner == "" {
			continue
		}
		announced[statusName(key)] = true
		if a.Owner != s.node {
			continue
		}
		ns, name, _ := strings.Cut(key, "/")
		want := ironlbv1beta1.ServiceL2StatusStatus{Node: s.node, ServiceName: name, ServiceNamespace: ns}
		for _, i := range a.Interfaces {
			want.Interfaces = append(want.Interfaces, ironlbv1beta1.InterfaceInfo{Name: i})
		}
		if err := s.writeStatus(ctx, byName[statusName(key)], statusName(key), want); err != nil {
			return err
		}
	}
	for name, st := range byName {
		if !announced[name] && st.Status.Node == s.node {
			if err := s.client.Delete(ctx, st); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete ServiceL2Status %s: %w", name, err)
			}
		}
	}
	return nil
}

func (s *Speaker) writeStatus(ctx context.Context, st *ironlbv1beta1.ServiceL2Status, name string, want ironlbv1beta1.ServiceL2StatusStatus) error {
	if st == nil {
		// Create fills st with what the server stored; the cache may not
		// have it yet, so it is not read back. If another node created it
		// meanwhile, the patch below overwrites its status all the same.
		st = &ironlbv1beta1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: name}}
		if err := s.client.Create(ctx, st); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ServiceL2Status %s: %w", name, err)
		}
	}
	if equalL2Status(st.Status, want) {
		return nil
	}
	patched := st.DeepCopy()
	patched.Status = want
	if err := s.client.Status().Patch(ctx, patched, client.MergeFrom(st)); err != nil {
		return fmt.Errorf("write ServiceL2Status %s: %w", name, err)
	}
	return nil
}

func equalL2Status(a, b ironlbv1beta1.ServiceL2StatusStatus) bool {
	return a.Node == b.Node && a.ServiceName == b.ServiceName && a.ServiceNamespace == b.ServiceNamespace &&
		slices.Equal(a.Interfaces, b.Interfaces)
}
