package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ironlb/ironlb/controller/allocator"
)

// reconcileService gives the Service its addresses, or releases them, and
// writes the outcome to its status, annotation and events.
func (m *IPAM) reconcileService(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	m.mu.Lock()
	started := m.started
	m.mu.Unlock()
	if !started {
		// start queues every Service again once the configuration is valid.
		return reconcile.Result{}, nil
	}
	key := Key(req.Namespace, req.Name)
	log := m.log.WithValues("service", key)

	var svc corev1.Service
	if err := m.client.Get(ctx, req.NamespacedName, &svc); err != nil {
		if !isNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("read Service %s: %w", key, err)
		}
		m.release(key)
		return reconcile.Result{}, nil
	}
	if !m.selection.Serves(&svc) {
		m.release(key)
		return reconcile.Result{}, m.clearStatus(ctx, &svc)
	}

	r, err := m.request(ctx, &svc)
	var asg allocator.Assignment
	if err == nil {
		asg, err = m.alloc.Allocate(r)
	}
	var aerr *allocator.Error
	if err != nil && !asAllocatorError(err, &aerr) {
		return reconcile.Result{}, err
	}
	m.mu.Lock()
	if aerr != nil {
		// A refused request holds no address: others may take its old one.
		m.pending[key] = true
		m.enqueuePendingExcept(key)
	} else {
		delete(m.pending, key)
	}
	m.mu.Unlock()
	m.markPoolsDirty()

	if aerr != nil {
		log.Info("no address for the Service", "reason", aerr.Reason, "message", aerr.Message)
		return reconcile.Result{}, m.writeFailure(ctx, &svc, aerr)
	}
	return reconcile.Result{}, m.writeAssignment(ctx, &svc, asg)
}

// release frees the addresses of the Service with key, if it held any, and
// lets waiting Services try again.
func (m *IPAM) release(key string) {
	if _, held := m.alloc.Assigned(key); !held {
		return
	}
	m.alloc.Release(key)
	m.mu.Lock()
	delete(m.pending, key)
	m.enqueuePending()
	m.mu.Unlock()
	m.markPoolsDirty()
}

// enqueuePendingExcept reconciles again the Services waiting for an
// address, but key. Call with mu held.
func (m *IPAM) enqueuePendingExcept(key string) {
	keys := make([]string, 0, len(m.pending))
	for k := range m.pending {
		if k != key {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	m.enqueue(keys)
}

// writeAssignment shows the Service's addresses in its status, condition
// and annotation, and records an event when they changed.
func (m *IPAM) writeAssignment(ctx context.Context, svc *corev1.Service, asg allocator.Assignment) error {
	before := StatusIPs(svc)
	ingress := make([]corev1.LoadBalancerIngress, len(asg.IPs))
	vip := corev1.LoadBalancerIPModeVIP
	for i, ip := range asg.IPs {
		ingress[i] = corev1.LoadBalancerIngress{IP: ip.String(), IPMode: &vip}
	}
	msg := fmt.Sprintf("assigned %s from pool %q", joinIPs(asg.IPs), asg.Pool)
	cond := metav1.Condition{Type: ConditionIPAllocated, Status: metav1.ConditionTrue, Reason: ReasonAllocated, Message: msg, ObservedGeneration: svc.Generation}
	if err := m.patchStatus(ctx, svc, ingress, cond); err != nil {
		return err
	}
	if !slices.Equal(before, asg.IPs) {
		m.recorder.Eventf(svc, nil, corev1.EventTypeNormal, "IPAllocated", "AllocateIP", "%s", msg)
		m.metrics.allocated()
	}
	return m.patchPoolAnnotation(ctx, svc, asg.Pool)
}

// writeFailure shows in the Service's status that it holds no address and
// why, and records an event when the reason changed.
func (m *IPAM) writeFailure(ctx context.Context, svc *corev1.Service, aerr *allocator.Error) error {
	old := meta.FindStatusCondition(svc.Status.Conditions, ConditionIPAllocated)
	cond := metav1.Condition{Type: ConditionIPAllocated, Status: metav1.ConditionFalse, Reason: string(aerr.Reason), Message: aerr.Message, ObservedGeneration: svc.Generation}
	changed := old == nil || old.Status != cond.Status || old.Reason != cond.Reason || old.Message != cond.Message
	if err := m.patchStatus(ctx, svc, nil, cond); err != nil {
		return err
	}
	if changed {
		m.recorder.Eventf(svc, nil, corev1.EventTypeWarning, "AllocationFailed", "AllocateIP", "%s", aerr.Message)
		m.metrics.failed(aerr.Reason)
	}
	return m.patchPoolAnnotation(ctx, svc, "")
}

// clearStatus removes what ironlb wrote on a Service it no longer serves:
// its addresses, condition and annotation. A Service that ironlb never
// served is left alone, whatever another load balancer wrote on it.
func (m *IPAM) clearStatus(ctx context.Context, svc *corev1.Service) error {
	_, annotated := svc.Annotations[AnnotationAllocatedFromPool]
	cond := meta.FindStatusCondition(svc.Status.Conditions, ConditionIPAllocated)
	if !annotated && cond == nil {
		return nil
	}
	orig := svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = nil
	meta.RemoveStatusCondition(&svc.Status.Conditions, ConditionIPAllocated)
	if !equalServiceStatus(&orig.Status, &svc.Status) {
		if err := m.client.Status().Patch(ctx, svc, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return ignoreNotFound(fmt.Errorf("clear the status of Service %s/%s: %w", svc.Namespace, svc.Name, err))
		}
		m.recorder.Eventf(svc, nil, corev1.EventTypeNormal, "IPReleased", "ReleaseIP", "released %s: the Service is no longer a LoadBalancer of this controller's class", joinIPs(StatusIPs(orig)))
	}
	return m.patchPoolAnnotation(ctx, svc, "")
}

// patchStatus sets the Service's load-balancer ingress and IPAllocated
// condition, if they differ from what it shows.
func (m *IPAM) patchStatus(ctx context.Context, svc *corev1.Service, ingress []corev1.LoadBalancerIngress, cond metav1.Condition) error {
	orig := svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = ingress
	meta.SetStatusCondition(&svc.Status.Conditions, cond)
	if equalServiceStatus(&orig.Status, &svc.Status) {
		return nil
	}
	if err := m.client.Status().Patch(ctx, svc, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return ignoreNotFound(fmt.Errorf("write the status of Service %s/%s: %w", svc.Namespace, svc.Name, err))
	}
	return nil
}

// patchPoolAnnotation sets the ironlb.io/ip-allocated-from-pool annotation
// to pool, or removes it when pool is empty.
func (m *IPAM) patchPoolAnnotation(ctx context.Context, svc *corev1.Service, pool string) error {
	if svc.Annotations[AnnotationAllocatedFromPool] == pool {
		return nil
	}
	orig := svc.DeepCopy()
	if pool == "" {
		delete(svc.Annotations, AnnotationAllocatedFromPool)
	} else {
		if svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		svc.Annotations[AnnotationAllocatedFromPool] = pool
	}
	if err := m.client.Patch(ctx, svc, client.MergeFrom(orig)); err != nil {
		return ignoreNotFound(fmt.Errorf("annotate Service %s/%s: %w", svc.Namespace, svc.Name, err))
	}
	return nil
}

func equalServiceStatus(a, b *corev1.ServiceStatus) bool {
	if len(a.LoadBalancer.Ingress) != len(b.LoadBalancer.Ingress) || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.LoadBalancer.Ingress {
		x, y := a.LoadBalancer.Ingress[i], b.LoadBalancer.Ingress[i]
		if x.IP != y.IP || x.Hostname != y.Hostname || (x.IPMode == nil) != (y.IPMode == nil) || (x.IPMode != nil && *x.IPMode != *y.IPMode) || len(x.Ports) != 0 || len(y.Ports) != 0 {
			return false
		}
	}
	for i := range a.Conditions {
		if !sameCondition(a.Conditions[i], b.Conditions[i]) {
			return false
		}
	}
	return true
}

func sameCondition(a, b metav1.Condition) bool {
	return a.Type == b.Type && a.Status == b.Status && a.Reason == b.Reason && a.Message == b.Message &&
		a.ObservedGeneration == b.ObservedGeneration && a.LastTransitionTime.Equal(&b.LastTransitionTime)
}

func joinIPs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

func asAllocatorError(err error, target **allocator.Error) bool {
	e, ok := err.(*allocator.Error)
	if ok {
		*target = e
	}
	return ok
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
