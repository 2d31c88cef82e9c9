package cluster

import (
	"net/netip"
	"slices"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/speaker/bgp"
	"github.com/ironlb/ironlb/speaker/election"
	"github.com/ironlb/ironlb/speaker/eligibility"
	"github.com/ironlb/ironlb/speaker/layer2"
	"github.com/ironlb/ironlb/speaker/layer2/interfaces"
)

// Service is what the speaker needs to know about a Service that holds
// load-balancer addresses.
type Service struct {
	// Key is the Service's namespace/name.
	Key string
	// IPs are the addresses of its status.loadBalancer.ingress.
	IPs []netip.Addr
	// ExternalTrafficPolicyLocal is true for externalTrafficPolicy: Local.
	ExternalTrafficPolicyLocal bool
	// Endpoints are the endpoints of its EndpointSlices.
	Endpoints []eligibility.Endpoint
}

// Snapshot is everything Compute decides from.
type Snapshot struct {
	// Node is the name of this speaker's node.
	Node string
	// Config is the announcement configuration in force.
	Config *config.Config
	// Nodes are the cluster's nodes.
	Nodes []eligibility.Node
	// Live are the nodes whose speaker the failure detector sees alive; nil
	// means none runs and Node readiness stands in.
	Live map[string]bool
	// Services are the Services that hold addresses.
	Services []Service
	// Links are this node's network interfaces.
	Links []interfaces.Link
	// NodeAddrs are this node's own addresses, from its Node object.
	NodeAddrs []netip.Addr
}

// Layer2 is how one Service is announced in layer 2.
type Layer2 struct {
	// Owner is the node that announces the Service; empty when none may.
	Owner string
	// Interfaces are the interfaces this node answers on, when it is the
	// owner.
	Interfaces []string
	// Eligible are the nodes that may announce it.
	Eligible []string
	// Why says, for every node that may not, why not.
	Why map[string]eligibility.Why
}

// Result is what this node announces.
type Result struct {
	// L2 is what this node answers ARP and NDP for, and where.
	L2 layer2.Desired
	// Layer2 holds, for every Service announced in layer 2 by some node
	// (or that could be, were a node eligible), how.
	Layer2 map[string]Layer2
	// BGP are the Services this node may advertise over BGP.
	BGP []bgp.Service
	// NotAnnounced holds, for every Service no advertisement announces,
	// why (the pool is in no L2Advertisement or BGPAdvertisement, or its
	// addresses are in no pool).
	NotAnnounced map[string]string
}

// Compute decides what this node announces.
func Compute(s Snapshot) Result {
	r := Result{L2: layer2.Desired{}, Layer2: map[string]Layer2{}, NotAnnounced: map[string]string{}}
	if s.Config == nil {
		return r
	}
	self := nodeByName(s.Nodes, s.Node)

	// Services sharing an address must have one owner: group them by
	// election key, and let a group's eligible nodes be the union of its
	// Services' (they select the same pods when the policy is Local).
	addrs := make([][]netip.Addr, len(s.Services))
	for i, svc := range s.Services {
		addrs[i] = svc.IPs
	}
	keys := election.Keys(addrs)

	type l2svc struct {
		svc      Service
		key      string
		res      eligibility.Result
		selected []*config.L2Advertisement
	}
	var l2 []l2svc
	groupEligible := map[string]map[string]bool{}
	for _, svc := range s.Services {
		if len(svc.IPs) == 0 {
			continue
		}
		pool, ok := poolOf(s.Config, svc.IPs)
		if !ok {
			r.NotAnnounced[svc.Key] = "its addresses are in no pool"
			continue
		}
		in := eligibility.Input{
			Nodes: s.Nodes, Live: s.Live,
			Service: eligibility.Service{Key: svc.Key, IPs: svc.IPs, Pool: pool.Name,
				ExternalTrafficPolicyLocal: svc.ExternalTrafficPolicyLocal, Endpoints: svc.Endpoints},
		}
		var l2advs []*config.L2Advertisement
		for _, a := range s.Config.L2Advertisements {
			if a.SelectsPool(pool.Name) {
				l2advs = append(l2advs, a)
				in.Selectors = append(in.Selectors, eligibility.L2Selector(a))
			}
		}
		var bgpSelectors []eligibility.Selector
		for _, a := range s.Config.BGPAdvertisements {
			if a.SelectsPool(pool.Name) {
				bgpSelectors = append(bgpSelectors, eligibility.BGPSelector(a))
			}
		}
		if len(l2advs) == 0 && len(bgpSelectors) == 0 {
			r.NotAnnounced[svc.Key] = "no L2Advertisement or BGPAdvertisement announces pool " + pool.Name
			continue
		}
		if len(bgpSelectors) > 0 {
			in := in
			in.Selectors = bgpSelectors
			if slices.Contains(eligibility.Eligible(in).Eligible, s.Node) {
				r.BGP = append(r.BGP, bgp.Service{Key: svc.Key, IPs: svc.IPs, Pool: pool.Name})
			}
		}
		if len(l2advs) == 0 {
			continue
		}
		key, _ := election.ServiceKey(svc.IPs)
		if k, ok := keys[svc.IPs[0]]; ok {
			key = k
		}
		res := eligibility.Eligible(in)
		if groupEligible[key] == nil {
			groupEligible[key] = map[string]bool{}
		}
		for _, n := range res.Eligible {
			groupEligible[key][n] = true
		}
		l2 = append(l2, l2svc{svc: svc, key: key, res: res, selected: l2advs})
	}

	for _, e := range l2 {
		eligible := make([]string, 0, len(groupEligible[e.key]))
		for n := range groupEligible[e.key] {
			eligible = append(eligible, n)
		}
		slices.Sort(eligible)
		owner, _ := election.Owner(eligible, e.key)
		a := Layer2{Owner: owner, Eligible: e.res.Eligible, Why: e.res.Ineligible}
		if owner == s.Node && self != nil {
			a.Interfaces = chooseInterfaces(e.selected, self, s.Links, s.NodeAddrs)
			for _, ip := range e.svc.IPs {
				r.L2[ip] = append(r.L2[ip], a.Interfaces...)
			}
		}
		r.Layer2[e.svc.Key] = a
	}
	for ip, names := range r.L2 {
		slices.Sort(names)
		r.L2[ip] = slices.Compact(names)
	}
	return r
}

// chooseInterfaces returns the interfaces this node answers on for a
// Service announced by advs: those the advertisements selecting the node
// name, and the default ones if any of them names none.
func chooseInterfaces(advs []*config.L2Advertisement, self *eligibility.Node, links []interfaces.Link, nodeAddrs []netip.Addr) []string {
	var named []string
	useDefault := false
	for _, a := range advs {
		if !a.SelectsNode(self.Labels) {
			continue
		}
		if len(a.Interfaces) == 0 {
			useDefault = true
		}
		named = append(named, a.Interfaces...)
	}
	var out []string
	if len(named) > 0 {
		out = interfaces.Choose(links, nodeAddrs, named)
	}
	if useDefault {
		out = append(out, interfaces.Choose(links, nodeAddrs, nil)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// poolOf returns the pool of a Service's addresses.
func poolOf(cfg *config.Config, ips []netip.Addr) (*config.Pool, bool) {
	for _, ip := range ips {
		if p, ok := cfg.PoolOf(ip); ok {
			return p, true
		}
	}
	return nil, false
}

func nodeByName(nodes []eligibility.Node, name string) *eligibility.Node {
	for i := range nodes {
		if nodes[i].Name == name {
			return &nodes[i]
		}
	}
	return nil
}
