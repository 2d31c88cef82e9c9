package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"
)

// PodSpec describes pod stand-ins to run, like a Deployment would.
type PodSpec struct {
	// Namespace is the Kubernetes namespace; empty means "default".
	Namespace string
	// Name prefixes the pods' names (<name>-<node>-<n>); empty means the
	// value of the "app" label, else "pod".
	Name string
	// Labels are the pods' labels, which Service selectors match.
	Labels map[string]string
	// Port is the port the pods listen on; 0 means 8080.
	Port int
	// Nodes are the names of the nodes to run on; empty means all.
	Nodes []string
	// PerNode is the number of pods on each node; 0 means 1.
	PerNode int
}

// Pod is a pod stand-in: an HTTP server listening on a pod address of its
// node's namespace (IPv4 and IPv6, bound to lo), answering
// "node=<node> pod=<name> client=<addr:port>". The lab keeps an
// EndpointSlice entry for it in every Service that selects it.
type Pod struct {
	Name, Namespace string
	Labels          map[string]string
	Node            *Node
	IPv4, IPv6      netip.Addr
	Port            int

	set  *podSet
	slot int
	srv  *http.Server
	// state, guarded by set.mu
	ready, terminating bool
}

// podSet is every pod of a lab.
type podSet struct {
	mu      sync.Mutex
	pods    []*Pod
	used    map[string]map[int]bool // node name → slots taken
	changed func()                  // tells the endpoints sync to run
}

func newPodSet() *podSet {
	return &podSet{used: map[string]map[int]bool{}, changed: func() {}}
}

// RunPods starts pod stand-ins and returns them, ready.
func (l *Lab) RunPods(ctx context.Context, spec PodSpec) ([]*Pod, error) {
	if spec.Namespace == "" {
		spec.Namespace = "default"
	}
	if spec.Name == "" {
		spec.Name = spec.Labels["app"]
	}
	if spec.Name == "" {
		spec.Name = "pod"
	}
	if spec.Port == 0 {
		spec.Port = 8080
	}
	if spec.PerNode == 0 {
		spec.PerNode = 1
	}
	nodes := l.Nodes
	if len(spec.Nodes) > 0 {
		nodes = nil
		for _, name := range spec.Nodes {
			n := l.Node(name)
			if n == nil {
				return nil, fmt.Errorf("run pods: no node %q", name)
			}
			nodes = append(nodes, n)
		}
	}
	var pods []*Pod
	for _, n := range nodes {
		for i := 0; i < spec.PerNode; i++ {
			p, err := l.pods.start(ctx, n, spec)
			if err != nil {
				for _, p := range pods {
					_ = p.Delete(ctx)
				}
				return nil, err
			}
			pods = append(pods, p)
		}
	}
	l.pods.changed()
	return pods, nil
}

// Pods returns every pod the lab runs.
func (l *Lab) Pods() []*Pod {
	l.pods.mu.Lock()
	defer l.pods.mu.Unlock()
	return append([]*Pod(nil), l.pods.pods...)
}

func (s *podSet) start(ctx context.Context, n *Node, spec PodSpec) (*Pod, error) {
	s.mu.Lock()
	slot := -1
	if s.used[n.Name] == nil {
		s.used[n.Name] = map[int]bool{}
	}
	for k := range maxPodsPerNode {
		if !s.used[n.Name][k] {
			slot = k
			break
		}
	}
	if slot < 0 {
		s.mu.Unlock()
		return nil, fmt.Errorf("run pod on %s: it already runs %d pods", n.Name, maxPodsPerNode)
	}
	s.used[n.Name][slot] = true
	s.mu.Unlock()

	v4, v6 := podAddrs(n.index, slot)
	p := &Pod{
		Name: fmt.Sprintf("%s-%s-%d", spec.Name, n.Name, slot), Namespace: spec.Namespace,
		Labels: spec.Labels, Node: n, IPv4: v4, IPv6: v6, Port: spec.Port,
		set: s, slot: slot, ready: true,
	}
	if err := p.serve(ctx); err != nil {
		s.release(p)
		return nil, err
	}
	s.mu.Lock()
	s.pods = append(s.pods, p)
	s.mu.Unlock()
	return p, nil
}

func (s *podSet) release(p *Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.used[p.Node.Name], p.slot)
}

// serve binds the pod's addresses and starts its HTTP server.
func (p *Pod) serve(ctx context.Context) error {
	if err := ipBatch(ctx, p.Node.Namespace, []string{
		"addr replace " + p.IPv4.String() + "/32 dev lo",
		"addr replace " + p.IPv6.String() + "/128 dev lo nodad",
	}); err != nil {
		return fmt.Errorf("bind addresses of pod %s: %w", p.Name, err)
	}
	var ls []net.Listener
	for _, a := range []netip.Addr{p.IPv4, p.IPv6} {
		l, err := listenIn(p.Node.Namespace, net.JoinHostPort(a.String(), strconv.Itoa(p.Port)))
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return err
		}
		ls = append(ls, l)
	}
	node, name := p.Node.Name, p.Name
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "node=%s pod=%s client=%s\n", node, name, r.RemoteAddr)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	for _, l := range ls {
		go func() { _ = p.srv.Serve(l) }()
	}
	return nil
}

// SetReady sets the pod's readiness, as its readiness probe would; its
// EndpointSlice entries follow.
func (p *Pod) SetReady(ready bool) {
	p.set.mu.Lock()
	p.ready = ready
	p.set.mu.Unlock()
	p.set.changed()
}

// Terminate marks the pod terminating, as on deletion with a grace
// period: not ready, still serving. It keeps answering until Delete.
func (p *Pod) Terminate() {
	p.set.mu.Lock()
	p.terminating = true
	p.set.mu.Unlock()
	p.set.changed()
}

// state returns the pod's readiness and termination.
func (p *Pod) state() (ready, terminating bool) {
	p.set.mu.Lock()
	defer p.set.mu.Unlock()
	return p.ready, p.terminating
}

// Delete stops the pod and removes it from its EndpointSlices.
func (p *Pod) Delete(ctx context.Context) error {
	s := p.set
	s.mu.Lock()
	found := false
	for i, q := range s.pods {
		if q == p {
			s.pods = append(s.pods[:i], s.pods[i+1:]...)
			found = true
			break
		}
	}
	s.mu.Unlock()
	if !found {
		return nil
	}
	err := p.stop(ctx)
	s.release(p)
	s.changed()
	return err
}

func (p *Pod) stop(ctx context.Context) error {
	var errs []error
	if p.srv != nil {
		errs = append(errs, p.srv.Close())
	}
	if ctx != nil {
		if err := ipBatch(ctx, p.Node.Namespace, []string{
			"addr del " + p.IPv4.String() + "/32 dev lo",
			"addr del " + p.IPv6.String() + "/128 dev lo",
		}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// closeAll stops every pod's server (the namespaces, and the addresses
// with them, are about to go).
func (s *podSet) closeAll() {
	s.mu.Lock()
	pods := s.pods
	s.pods = nil
	s.mu.Unlock()
	for _, p := range pods {
		_ = p.stop(nil)
	}
}

// selected returns the pods in namespace ns whose labels match selector,
// sorted by name.
func (s *podSet) selected(ns string, selector map[string]string) []*Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Pod
	for _, p := range s.pods {
		if p.Namespace != ns || !matches(selector, p.Labels) {
			continue
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
