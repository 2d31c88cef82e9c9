package lab

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// managedBy is the EndpointSlice label value of slices the lab writes.
const managedBy = "lab.ironlb.io"

// proxyTable is the nftables table of the kube-proxy stand-in in every
// node namespace.
const proxyTable = "lab-kube-proxy"

// startProxy starts the lab's stand-ins for the EndpointSlice controller
// and kube-proxy: a loop that, whenever a Service, an EndpointSlice or a
// pod changes, writes the EndpointSlices of the Services that select pods
// and each node's nftables rules.
func (l *Lab) startProxy(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(l.Clientset, 0)
	services := factory.Core().V1().Services()
	slices := factory.Discovery().V1().EndpointSlices()
	trigger := make(chan struct{}, 1)
	kick := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { kick() },
		UpdateFunc: func(any, any) { kick() },
		DeleteFunc: func(any) { kick() },
	}
	if _, err := services.Informer().AddEventHandler(handler); err != nil {
		return fmt.Errorf("watch Services: %w", err)
	}
	if _, err := slices.Informer().AddEventHandler(handler); err != nil {
		return fmt.Errorf("watch EndpointSlices: %w", err)
	}
	l.pods.mu.Lock()
	l.pods.changed = kick
	l.pods.mu.Unlock()

	runCtx, cancel := context.WithCancel(context.Background())
	l.proxyStop = cancel
	l.proxyDone = make(chan struct{})
	factory.Start(runCtx.Done())
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	for typ, ok := range factory.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			cancel()
			close(l.proxyDone)
			return fmt.Errorf("sync the cache of %v", typ)
		}
	}
	applied := map[string]string{}
	go func() {
		defer close(l.proxyDone)
		defer factory.Shutdown()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-trigger:
			default:
				l.setProxyBusy(false)
				select {
				case <-runCtx.Done():
					return
				case <-trigger:
				}
			}
			l.setProxyBusy(true)
			began := time.Now()
			svcs, err := services.Lister().List(labels.Everything())
			if err != nil {
				continue
			}
			allSlices, err := slices.Lister().List(labels.Everything())
			if err != nil {
				continue
			}
			if err := l.syncEndpointSlices(runCtx, svcs, allSlices); err != nil && runCtx.Err() == nil {
				l.logf("endpoint slices: %v", err)
				time.AfterFunc(200*time.Millisecond, kick)
			}
			for _, n := range l.Nodes {
				rules := renderProxyRules(n.Name, svcs, allSlices)
				if applied[n.Name] == rules {
					continue
				}
				if _, err := runInput(runCtx, []byte(rules), "ip", "netns", "exec", n.Namespace, "nft", "-f", "-"); err != nil {
					if runCtx.Err() == nil {
						l.logf("apply kube-proxy rules on %s: %v", n.Name, err)
						time.AfterFunc(200*time.Millisecond, kick)
					}
					continue
				}
				applied[n.Name] = rules
				l.setProxyRules(n.Name, rules)
			}
			// With thousands of Services a pass takes seconds; rest as
			// long as it took, so that the stand-in leaves the API
			// server at least half of the machine. Small labs, whose
			// passes take milliseconds, never wait.
			if took := time.Since(began); took > 50*time.Millisecond {
				select {
				case <-runCtx.Done():
					return
				case <-time.After(took):
				}
			}
		}
	}()
	kick()
	return nil
}

// syncEndpointSlices makes the lab's EndpointSlices match the pods: one
// slice per IP family of every Service with a selector.
func (l *Lab) syncEndpointSlices(ctx context.Context, svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) error {
	existing := map[string]*discoveryv1.EndpointSlice{}
	for _, s := range slices {
		if s.Labels[discoveryv1.LabelManagedBy] == managedBy {
			existing[s.Namespace+"/"+s.Name] = s
		}
	}
	api := l.Clientset.DiscoveryV1()
	var errs []string
	for _, svc := range svcs {
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		pods := l.pods.selected(svc.Namespace, svc.Spec.Selector)
		for _, fam := range svc.Spec.IPFamilies {
			want := desiredSlice(svc, fam, pods)
			key := want.Namespace + "/" + want.Name
			have, ok := existing[key]
			delete(existing, key)
			var err error
			switch {
			case !ok:
				_, err = api.EndpointSlices(want.Namespace).Create(ctx, want, metav1.CreateOptions{})
			case !equality.Semantic.DeepEqual(have.Endpoints, want.Endpoints) ||
				!equality.Semantic.DeepEqual(have.Ports, want.Ports) ||
				!equality.Semantic.DeepEqual(have.Labels, want.Labels):
				upd := have.DeepCopy()
				upd.Endpoints, upd.Ports, upd.Labels = want.Endpoints, want.Ports, want.Labels
				_, err = api.EndpointSlices(want.Namespace).Update(ctx, upd, metav1.UpdateOptions{})
			}
			if err != nil && !apierrors.IsAlreadyExists(err) {
				errs = append(errs, err.Error())
			}
		}
	}
	// Slices of Services that are gone (no garbage collector runs here).
	for _, s := range existing {
		if err := api.EndpointSlices(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// desiredSlice returns the EndpointSlice of family fam for svc over pods.
func desiredSlice(svc *corev1.Service, fam corev1.IPFamily, pods []*Pod) *discoveryv1.EndpointSlice {
	addrType := discoveryv1.AddressTypeIPv4
	suffix := "ipv4"
	if fam == corev1.IPv6Protocol {
		addrType, suffix = discoveryv1.AddressTypeIPv6, "ipv6"
	}
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      svc.Name + "-lab-" + suffix,
			Namespace: svc.Namespace,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: svc.Name,
				discoveryv1.LabelManagedBy:   managedBy,
			},
		},
		AddressType: addrType,
		Endpoints:   []discoveryv1.Endpoint{},
		Ports:       []discoveryv1.EndpointPort{},
	}
	for _, sp := range svc.Spec.Ports {
		port := int32(0)
		if sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0 {
			port = sp.TargetPort.IntVal
		} else if sp.TargetPort.Type == intstr.Int {
			port = sp.Port
		}
		if port == 0 && len(pods) > 0 {
			port = int32(pods[0].Port) // a named target port: the pods' one port
		}
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{
			Name: ptr.To(sp.Name), Protocol: ptr.To(sp.Protocol), Port: ptr.To(port),
		})
	}
	for _, p := range pods {
		ready, terminating := p.state()
		addr := p.IPv4
		if fam == corev1.IPv6Protocol {
			addr = p.IPv6
		}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{addr.String()},
			Conditions: discoveryv1.EndpointConditions{
				Ready:       ptr.To(ready && !terminating),
				Serving:     ptr.To(ready),
				Terminating: ptr.To(terminating),
			},
			NodeName:  ptr.To(p.Node.Name),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name},
		})
	}
	return s
}

// renderProxyRules returns the nftables script that makes node's
// namespace serve the Services' external IPs (status.loadBalancer.ingress)
// as kube-proxy does: DNAT to a random endpoint, only local ones for
// externalTrafficPolicy Local, ready ones first and else serving
// terminating ones, masquerade when the endpoint is on another node, and
// reject when no endpoint can serve. Echo requests to an address with an
// endpoint are answered by that endpoint (as in kube-proxy's IPVS mode),
// so that the address can be pinged. The script replaces the table
// atomically.
func renderProxyRules(node string, svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) string {
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range slices {
		name := s.Labels[discoveryv1.LabelServiceName]
		if name != "" {
			bySvc[s.Namespace+"/"+name] = append(bySvc[s.Namespace+"/"+name], s)
		}
	}
	sorted := append([]*corev1.Service(nil), svcs...)
	sort.Slice(sorted, func(i, j int) bool {
		return sorted[i].Namespace+"/"+sorted[i].Name < sorted[j].Namespace+"/"+sorted[j].Name
	})
	var chains, dispatch, rejects strings.Builder
	n := 0
	for _, svc := range sorted {
		local := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			vip, err := netip.ParseAddr(ing.IP)
			if err != nil {
				continue
			}
			family, addrType, icmp := "ip", discoveryv1.AddressTypeIPv4, "icmp"
			if vip.Is6() {
				family, addrType, icmp = "ip6", discoveryv1.AddressTypeIPv6, "icmpv6"
			}
			pinged := false
			for _, sp := range svc.Spec.Ports {
				proto := strings.ToLower(string(sp.Protocol))
				if proto == "" {
					proto = "tcp"
				}
				match := fmt.Sprintf("%s daddr %s %s dport %d", family, vip, proto, sp.Port)
				eps := endpointsFor(bySvc[svc.Namespace+"/"+svc.Name], addrType, sp.Name, node, local)
				if len(eps) == 0 {
					fmt.Fprintf(&rejects, "    %s reject\n", match)
					continue
				}
				if !pinged {
					// Echo requests go to the first endpoint, which
					// answers them, as with kube-proxy's IPVS mode.
					fmt.Fprintf(&dispatch, "    %s daddr %s %s type echo-request dnat %s to %s # %s/%s\n",
						family, vip, icmp, family, eps[0].Addr, svc.Namespace, svc.Name)
					pinged = true
				}
				name := fmt.Sprintf("svc%d", n)
				n++
				fmt.Fprintf(&dispatch, "    %s goto %s # %s/%s\n", match, name, svc.Namespace, svc.Name)
				var vmap []string
				for i, ep := range eps {
					fmt.Fprintf(&chains, "  chain %s-ep%d {\n    meta l4proto %s dnat %s to %s\n  }\n",
						name, i, proto, family, netip.AddrPortFrom(ep.Addr, ep.port).String())
					vmap = append(vmap, fmt.Sprintf("%d : goto %s-ep%d", i, name, i))
				}
				fmt.Fprintf(&chains, "  chain %s {\n    numgen random mod %d vmap { %s }\n  }\n", name, len(eps), strings.Join(vmap, ", "))
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\ntable inet %s {\n", proxyTable, proxyTable, proxyTable)
	b.WriteString(chains.String())
	b.WriteString("  chain services {\n")
	b.WriteString(dispatch.String())
	b.WriteString("  }\n")
	b.WriteString("  chain prerouting {\n    type nat hook prerouting priority -100; policy accept;\n    jump services\n  }\n")
	b.WriteString("  chain output {\n    type nat hook output priority -100; policy accept;\n    jump services\n  }\n")
	// Traffic DNATed to a pod of another node leaves through the segment:
	// masquerade it so that the answer comes back through this node.
	b.WriteString("  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n    ct status dnat oifname \"" + segmentLink + "\" masquerade\n  }\n")
	b.WriteString("  chain no-endpoints {\n")
	b.WriteString(rejects.String())
	b.WriteString("  }\n")
	b.WriteString("  chain forward {\n    type filter hook forward priority 0; policy accept;\n    jump no-endpoints\n  }\n")
	b.WriteString("  chain input {\n    type filter hook input priority 0; policy accept;\n    jump no-endpoints\n  }\n")
	b.WriteString("}\n")
	return b.String()
}

type endpoint struct {
	netip.Addr
	port uint16
}

// endpointsFor picks the endpoints kube-proxy would use for one Service
// port on node: of the address type, local ones only when local; ready
// ones, else serving terminating ones.
func endpointsFor(slices []*discoveryv1.EndpointSlice, addrType discoveryv1.AddressType, portName, node string, local bool) []endpoint {
	var ready, terminating []endpoint
	for _, s := range slices {
		if s.AddressType != addrType {
			continue
		}
		port := int32(-1)
		for _, p := range s.Ports {
			if ptr.Deref(p.Name, "") == portName && p.Port != nil {
				port = *p.Port
			}
		}
		if port < 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			if local && ptr.Deref(ep.NodeName, "") != node {
				continue
			}
			if len(ep.Addresses) == 0 {
				continue
			}
			a, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil {
				continue
			}
			e := endpoint{Addr: a, port: uint16(port)}
			switch {
			case ptr.Deref(ep.Conditions.Ready, true):
				ready = append(ready, e)
			case ptr.Deref(ep.Conditions.Serving, false) && ptr.Deref(ep.Conditions.Terminating, false):
				terminating = append(terminating, e)
			}
		}
	}
	eps := ready
	if len(eps) == 0 {
		eps = terminating
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].Addr.Less(eps[j].Addr) })
	return eps
}

// setProxyRules records the rules last applied on a node.
func (l *Lab) setProxyRules(node, rules string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.proxyRules == nil {
		l.proxyRules = map[string]string{}
	}
	l.proxyRules[node] = rules
}

// setProxyBusy records whether the kube-proxy stand-in has work: a pass
// runs, or one is due.
func (l *Lab) setProxyBusy(busy bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.proxyBusy = busy
	if !busy {
		l.proxyIdleSince = time.Now()
	}
}

// WaitProxyIdle waits until the stand-ins for the EndpointSlice controller
// and kube-proxy have had nothing to do for quiet. With thousands of
// Services each of their passes rewrites thousands of nftables chains,
// which takes seconds of a core: benchmarks wait for them to finish
// before they time something else.
func (l *Lab) WaitProxyIdle(ctx context.Context, quiet time.Duration) error {
	for {
		l.mu.Lock()
		idle := !l.proxyBusy && time.Since(l.proxyIdleSince) >= quiet
		l.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the kube-proxy stand-in never went idle: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ProxyRules returns the nftables script the kube-proxy stand-in last
// applied on a node.
func (l *Lab) ProxyRules(node string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.proxyRules[node]
}

// WaitProxy waits until the kube-proxy stand-in serves addr on every node
// (with DNAT, or with a reject where no endpoint can serve).
func (l *Lab) WaitProxy(ctx context.Context, addr netip.Addr) error {
	want := " daddr " + addr.String() + " "
	for {
		all := true
		for _, n := range l.Nodes {
			if !strings.Contains(l.ProxyRules(n.Name), want) {
				all = false
				break
			}
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the kube-proxy stand-in to serve %s: %w", addr, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
