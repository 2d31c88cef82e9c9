package ipam

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	ironlbv1beta1 "github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/controller/allocator"
)

// IPAM assigns addresses to Services and reports on pools. Create it with
// New and add it to a manager with SetupWithManager.
type IPAM struct {
	client    client.Client
	namespace string
	selection Selection
	recorder  events.EventRecorder
	metrics   *Metrics
	log       logr.Logger

	alloc *allocator.Allocator

	mu sync.Mutex
	// started is set once the first valid configuration is in force and
	// every address in the Services' status has been claimed again.
	started bool
	// poolErrors holds the configuration errors of the last invalid
	// configuration, by pool name; empty when the configuration is valid.
	poolErrors map[string]string
	// configError is the last configuration's error, nil if it was valid.
	configError error
	// pending are the Services that hold no address for want of one; a
	// release or a configuration change may let them have one.
	pending map[string]bool

	requeue     chan event.GenericEvent
	poolsDirty  chan struct{}
	configDirty chan event.GenericEvent
}

// Options configure an IPAM.
type Options struct {
	// Namespace is ironlb's namespace, where the pools live.
	Namespace string
	// Selection says which Services are served.
	Selection Selection
	// Recorder records events on Services and pools.
	Recorder events.EventRecorder
	// Metrics receives the allocation metrics; nil records none.
	Metrics *Metrics
}

// New returns an IPAM that reads and writes through c.
func New(c client.Client, o Options) *IPAM {
	return &IPAM{
		client:      c,
		namespace:   o.Namespace,
		selection:   o.Selection,
		recorder:    o.Recorder,
		metrics:     o.Metrics,
		log:         ctrl.Log.WithName("ipam"),
		alloc:       allocator.New(nil),
		pending:     map[string]bool{},
		requeue:     make(chan event.GenericEvent, 1024),
		poolsDirty:  make(chan struct{}, 1),
		configDirty: make(chan event.GenericEvent, 1),
	}
}

// configKey is the one work item of the configuration controller: every
// change to any pool is handled by rereading them all.
var configKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "pools"}}

// SetupWithManager adds the Service controller, the pool configuration
// controller and the pool status writer to mgr.
func (m *IPAM) SetupWithManager(mgr ctrl.Manager, workers int) error {
	err := ctrl.NewControllerManagedBy(mgr).
		Named("pools").
		WatchesRawSource(source.Kind(mgr.GetCache(), &ironlbv1beta1.IPAddressPool{},
			handler.TypedEnqueueRequestsFromMapFunc(func(context.Context, *ironlbv1beta1.IPAddressPool) []reconcile.Request {
				return []reconcile.Request{configKey}
			}),
			// Status writes (ours) change neither the generation nor the
			// labels.
			predicate.Or[*ironlbv1beta1.IPAddressPool](
				predicate.TypedGenerationChangedPredicate[*ironlbv1beta1.IPAddressPool]{},
				predicate.TypedLabelChangedPredicate[*ironlbv1beta1.IPAddressPool]{}),
		)).
		WatchesRawSource(source.Channel(m.configDirty, handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
			return []reconcile.Request{configKey}
		}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(reconcile.Func(m.reconcileConfig))
	if err != nil {
		return fmt.Errorf("create the pool controller: %w", err)
	}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("services").
		For(&corev1.Service{}).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(m.servicesInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(m.requeue, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(reconcile.Func(m.reconcileService))
	if err != nil {
		return fmt.Errorf("create the Service controller: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(m.writePoolStatus)); err != nil {
		return fmt.Errorf("add the pool status writer: %w", err)
	}
	return nil
}

// servicesInNamespace maps a Namespace whose labels changed to its
// Services, for pools whose namespaceSelectors may now match or not.
func (m *IPAM) servicesInNamespace(ctx context.Context, ns client.Object) []reconcile.Request {
	var list corev1.ServiceList
	if err := m.client.List(ctx, &list, client.InNamespace(ns.GetName())); err != nil {
		m.log.Error(err, "list Services for a namespace change", "namespace", ns.GetName())
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if m.selection.Serves(&list.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// reconcileConfig rebuilds the configuration from the pools. A valid one
// replaces the allocator's, and the Services it affects are reconciled; an
// invalid one is reported and changes nothing.
func (m *IPAM) reconcileConfig(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var pools ironlbv1beta1.IPAddressPoolList
	if err := m.client.List(ctx, &pools, client.InNamespace(m.namespace)); err != nil {
		return reconcile.Result{}, fmt.Errorf("list pools: %w", err)
	}
	cfg, cfgErr := config.New(config.Resources{Namespace: m.namespace, Pools: pools.Items})

	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.markPoolsDirty()
	m.reportConfig(pools.Items, cfgErr)
	if cfgErr != nil {
		return reconcile.Result{}, nil
	}
	if !m.started {
		return reconcile.Result{}, m.start(ctx, cfg)
	}
	moved := m.alloc.SetConfig(cfg)
	if len(moved) > 0 {
		m.log.Info("the pools changed: Services whose addresses left them get new ones", "services", moved)
	}
	// Any Service may be concerned, not only those that lost an address:
	// one waiting for an address, or a PreferDualStack one that can now
	// have its second family. Reconciling one that is not is cheap and
	// changes nothing.
	return reconcile.Result{}, m.enqueueServed(ctx)
}

// enqueueServed reconciles again every Service this controller serves.
func (m *IPAM) enqueueServed(ctx context.Context) error {
	var services corev1.ServiceList
	if err := m.client.List(ctx, &services); err != nil {
		return fmt.Errorf("list Services: %w", err)
	}
	var keys []string
	for i := range services.Items {
		if m.selection.Serves(&services.Items[i]) {
			keys = append(keys, Key(services.Items[i].Namespace, services.Items[i].Name))
		}
	}
	m.enqueue(keys)
	return nil
}

// reportConfig records the configuration's errors by pool, logs them and
// records an event on each pool whose error changed. Call with mu held.
func (m *IPAM) reportConfig(pools []ironlbv1beta1.IPAddressPool, err error) {
	byPool := map[string]string{}
	for ref, errs := range config.ObjectErrors(err) {
		if ref.Kind != config.KindIPAddressPool {
			continue
		}
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		byPool[ref.Name] = joinSentences(msgs)
	}
	if err != nil {
		state := "the last valid configuration stays in force"
		if !m.started {
			state = "no address is handed out until it is fixed"
		}
		m.log.Error(err, "the pool configuration is invalid: "+state)
	} else if m.configError != nil {
		m.log.Info("the pool configuration is valid again")
	}
	for i := range pools {
		p := &pools[i]
		if msg := byPool[p.Name]; msg != "" && msg != m.poolErrors[p.Name] {
			m.recorder.Eventf(p, nil, corev1.EventTypeWarning, "InvalidConfiguration", "ValidateConfiguration", "%s", msg)
		}
	}
	m.poolErrors, m.configError = byPool, err
}

// start brings the allocator up to date on start: it takes the first valid
// configuration and claims again every address the Services' status shows,
// before any address is handed out. Call with mu held.
func (m *IPAM) start(ctx context.Context, cfg *config.Config) error {
	var services corev1.ServiceList
	if err := m.client.List(ctx, &services); err != nil {
		return fmt.Errorf("list Services to reload their addresses: %w", err)
	}
	m.alloc.SetConfig(cfg)
	var claims []allocator.Claim
	var all []string
	for i := range services.Items {
		svc := &services.Items[i]
		if !m.selection.Serves(svc) {
			continue
		}
		all = append(all, Key(svc.Namespace, svc.Name))
		ips := StatusIPs(svc)
		if len(ips) == 0 {
			continue
		}
		req, err := m.request(ctx, svc)
		if err != nil {
			continue // reconciled below, where the error is reported
		}
		claims = append(claims, allocator.Claim{Request: req, IPs: ips})
	}
	errs, displaced := m.alloc.Reload(claims)
	for i, err := range errs {
		if err != nil {
			m.log.Info("an address in a Service's status cannot be kept", "service", claims[i].Request.Key, "ips", claims[i].IPs, "reason", err.Error())
		}
	}
	if len(displaced) > 0 {
		m.log.Info("Services lost an address claimed by an older Service", "services", displaced)
	}
	m.started = true
	m.log.Info("reloaded the addresses held by Services", "services", len(all), "claims", len(claims))
	// Every Service is reconciled anyway as the controller starts; those
	// seen before the configuration was valid are queued again here.
	m.enqueue(all)
	return nil
}

// request returns svc's allocator request, reading its namespace's labels.
func (m *IPAM) request(ctx context.Context, svc *corev1.Service) (allocator.Request, error) {
	var ns corev1.Namespace
	if err := m.client.Get(ctx, client.ObjectKey{Name: svc.Namespace}, &ns); err != nil && !isNotFound(err) {
		return allocator.Request{}, fmt.Errorf("read namespace %s: %w", svc.Namespace, err)
	}
	return RequestFor(svc, ns.Labels)
}

// enqueue reconciles the Services with the given keys again. Call with mu
// held or not; it never blocks.
func (m *IPAM) enqueue(keys []string) {
	if len(keys) == 0 {
		return
	}
	objs := make([]event.GenericEvent, len(keys))
	for i, k := range keys {
		ns, name := splitKey(k)
		objs[i] = event.GenericEvent{Object: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}
	}
	go func() {
		for _, o := range objs {
			m.requeue <- o
		}
	}()
}

// enqueuePending reconciles again the Services waiting for an address.
// Call with mu held.
func (m *IPAM) enqueuePending() {
	keys := make([]string, 0, len(m.pending))
	for k := range m.pending {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	m.enqueue(keys)
}

// markPoolsDirty asks the pool status writer to write the pools' status.
func (m *IPAM) markPoolsDirty() {
	select {
	case m.poolsDirty <- struct{}{}:
	default:
	}
}

// writePoolStatus writes the pools' status whenever it may have changed,
// at most every poolStatusInterval, until ctx ends.
func (m *IPAM) writePoolStatus(ctx context.Context) error {
	// The first configuration is loaded even if no pool exists yet.
	m.configDirty <- event.GenericEvent{Object: &metav1.PartialObjectMetadata{}}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.poolsDirty:
		}
		if err := m.syncPoolStatus(ctx); err != nil {
			m.log.Error(err, "write pool status")
			m.markPoolsDirty()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poolStatusInterval):
		}
	}
}

// poolStatusInterval is the shortest time between two rounds of pool status
// writes: during a burst of allocations the counts are written a few times
// a second, not once per Service.
const poolStatusInterval = 250 * time.Millisecond

// syncPoolStatus writes each pool's address counts and validity where they
// changed, and updates the pool metrics.
func (m *IPAM) syncPoolStatus(ctx context.Context) error {
	var pools ironlbv1beta1.IPAddressPoolList
	if err := m.client.List(ctx, &pools, client.InNamespace(m.namespace)); err != nil {
		return fmt.Errorf("list pools: %w", err)
	}
	m.mu.Lock()
	poolErrors, started := m.poolErrors, m.started
	m.mu.Unlock()
	statuses := m.alloc.PoolStatuses()
	m.metrics.pools(statuses)
	counts := map[string]allocator.PoolStatus{}
	for _, s := range statuses {
		counts[s.Pool] = s
	}
	var errs []error
	for i := range pools.Items {
		p := &pools.Items[i]
		want := p.Status.DeepCopy()
		if c, ok := counts[p.Name]; ok {
			want.AssignedIPv4, want.AssignedIPv6 = saturate(c.AssignedIPv4), saturate(c.AssignedIPv6)
			want.AvailableIPv4, want.AvailableIPv6 = saturate(c.AvailableIPv4), saturate(c.AvailableIPv6)
		}
		cond := metav1.Condition{Type: ironlbv1beta1.ConditionValid, Status: metav1.ConditionTrue, Reason: "Valid",
			Message: "the pool's addresses are in use", ObservedGeneration: p.Generation}
		switch msg, bad := poolErrors[p.Name]; {
		case bad:
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "InvalidConfiguration", msg
			if _, inForce := counts[p.Name]; inForce {
				cond.Message += " (the pool's last valid configuration stays in force)"
			}
		case !started:
			cond.Status, cond.Reason, cond.Message = metav1.ConditionUnknown, "Waiting", "waiting for a valid configuration of every pool"
		case !has(counts, p.Name):
			// Valid, but not yet in the allocator: the next round has it.
			continue
		}
		meta.SetStatusCondition(&want.Conditions, cond)
		if equalPoolStatus(&p.Status, want) {
			continue
		}
		patch := client.MergeFrom(p.DeepCopy())
		p.Status = *want
		if err := m.client.Status().Patch(ctx, p, patch); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("pool %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

func has(m map[string]allocator.PoolStatus, k string) bool {
	_, ok := m[k]
	return ok
}
