package eligibility

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config"
)

// ExcludeLabel is the label that keeps a node out of every external load
// balancer, whatever its value.
const ExcludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// Node is what eligibility needs to know about a Node.
type Node struct {
	// Name is the Node's name.
	Name string
	// Labels are the Node's labels.
	Labels labels.Set
	// NetworkUnavailable is true when the Node's NetworkUnavailable
	// condition is True.
	NetworkUnavailable bool
	// Ready is true when the Node's Ready condition is True. It stands in
	// for speaker liveness when no failure detector runs (Input.Live is
	// nil).
	Ready bool
}

// Endpoint is one endpoint of a Service, from its EndpointSlices.
type Endpoint struct {
	// NodeName is the node the endpoint runs on; empty when unknown.
	NodeName string
	// Ready is the endpoint's ready condition (a nil condition in an
	// EndpointSlice means true).
	Ready bool
	// Serving is the endpoint's serving condition (a nil condition means
	// the same as Ready).
	Serving bool
	// Terminating is the endpoint's terminating condition (a nil condition
	// means false).
	Terminating bool
}

// Service is what eligibility needs to know about a Service.
type Service struct {
	// Key is the Service's namespace/name, for logs.
	Key string
	// IPs are the Service's load-balancer addresses.
	IPs []netip.Addr
	// Pool is the name of the pool the addresses come from.
	Pool string
	// ExternalTrafficPolicyLocal is true for externalTrafficPolicy: Local.
	ExternalTrafficPolicyLocal bool
	// Endpoints are the Service's endpoints.
	Endpoints []Endpoint
}

// Selector is an advertisement that announces a Service's pool, as far as
// choosing nodes goes.
type Selector struct {
	// Kind is the advertisement's kind, such as config.KindL2Advertisement.
	Kind config.Kind
	// Name is the advertisement's name.
	Name string
	// SelectsNode reports whether a node with the given labels may
	// announce.
	SelectsNode func(labels.Labels) bool
}

// String returns the advertisement's kind and name, as `L2Advertisement
// "west"`.
func (s Selector) String() string {
	return fmt.Sprintf("%s %q", s.Kind, s.Name)
}

// L2Selector returns the Selector of an L2Advertisement.
func L2Selector(a *config.L2Advertisement) Selector {
	return Selector{Kind: config.KindL2Advertisement, Name: a.Name, SelectsNode: a.SelectsNode}
}

// BGPSelector returns the Selector of a BGPAdvertisement.
func BGPSelector(a *config.BGPAdvertisement) Selector {
	return Selector{Kind: config.KindBGPAdvertisement, Name: a.Name, SelectsNode: a.SelectsNode}
}

// Input is everything Eligible decides from.
type Input struct {
	// Nodes are the cluster's nodes.
	Nodes []Node
	// Live holds the names of the nodes whose speaker the failure detector
	// sees alive. Nil means no failure detector runs: a node's speaker
	// then counts as alive when the node is Ready. An empty, non-nil set
	// means no speaker is alive.
	Live map[string]bool
	// Service is the Service to announce.
	Service Service
	// Selectors are the advertisements that announce the Service's pool
	// (those whose SelectsPool(Service.Pool) is true); none means the
	// pool is not announced, and no node is eligible.
	Selectors []Selector
}

// Reason is why a node may not announce a Service.
type Reason uint8

// The reasons a node may not announce a Service, in the order Eligible
// checks them.
const (
	// NotAdvertised: no advertisement announces the Service's pool.
	NotAdvertised Reason = iota + 1
	// NotSelected: no advertisement of the pool selects the node.
	NotSelected
	// ExcludedByLabel: the node carries ExcludeLabel.
	ExcludedByLabel
	// NetworkUnavailable: the node's NetworkUnavailable condition is
	// True.
	NetworkUnavailable
	// SpeakerNotAlive: the node's speaker is not alive.
	SpeakerNotAlive
	// NoServingEndpoint: no endpoint of the Service, on any node, can
	// serve.
	NoServingEndpoint
	// NoLocalEndpoint: the Service's externalTrafficPolicy is Local and
	// no endpoint on the node can serve.
	NoLocalEndpoint
)

// String returns the reason in words, as it appears in logs.
func (r Reason) String() string {
	switch r {
	case NotAdvertised:
		return "pool not advertised"
	case NotSelected:
		return "not selected"
	case ExcludedByLabel:
		return "excluded by label"
	case NetworkUnavailable:
		return "network unavailable"
	case SpeakerNotAlive:
		return "speaker not alive"
	case NoServingEndpoint:
		return "no serving endpoint"
	case NoLocalEndpoint:
		return "no local endpoint"
	default:
		return fmt.Sprintf("Reason(%d)", uint8(r))
	}
}

// Why is why one node may not announce a Service.
type Why struct {
	// Reasons are every reason that applies, in the order of the Reason
	// constants.
	Reasons []Reason
	// Selectors name the advertisements that did not select the node,
	// when Reasons holds NotSelected.
	Selectors []string
}

// Has reports whether r is one of the reasons.
func (w Why) Has(r Reason) bool {
	return slices.Contains(w.Reasons, r)
}

// String returns the reasons in words, such as `not selected by
// L2Advertisement "west"; speaker not alive`.
func (w Why) String() string {
	parts := make([]string, len(w.Reasons))
	for i, r := range w.Reasons {
		parts[i] = r.String()
		if r == NotSelected && len(w.Selectors) > 0 {
			parts[i] += " by " + strings.Join(w.Selectors, " or ")
		}
		if r == ExcludedByLabel {
			parts[i] += " " + ExcludeLabel
		}
	}
	return strings.Join(parts, "; ")
}

// Result is which nodes may announce a Service.
type Result struct {
	// Eligible are the names of the nodes that may announce, sorted.
	Eligible []string
	// Ineligible holds, for every other node, why it may not.
	Ineligible map[string]Why
}

// Eligible returns which of in.Nodes may announce in.Service, and why the
// others may not.
func Eligible(in Input) Result {
	res := Result{Eligible: []string{}, Ineligible: map[string]Why{}}
	canServe, anyServing := servingNodes(in.Service.Endpoints)
	var selectorNames []string
	for _, s := range in.Selectors {
		selectorNames = append(selectorNames, s.String())
	}
	for _, n := range in.Nodes {
		var why Why
		nodeLabels := n.Labels
		if nodeLabels == nil {
			nodeLabels = labels.Set{}
		}
		switch {
		case len(in.Selectors) == 0:
			why.Reasons = append(why.Reasons, NotAdvertised)
		case !slices.ContainsFunc(in.Selectors, func(s Selector) bool { return s.SelectsNode(nodeLabels) }):
			why.Reasons = append(why.Reasons, NotSelected)
			why.Selectors = selectorNames
		}
		if nodeLabels.Has(ExcludeLabel) {
			why.Reasons = append(why.Reasons, ExcludedByLabel)
		}
		if n.NetworkUnavailable {
			why.Reasons = append(why.Reasons, NetworkUnavailable)
		}
		if !alive(in.Live, n) {
			why.Reasons = append(why.Reasons, SpeakerNotAlive)
		}
		switch {
		case !anyServing:
			why.Reasons = append(why.Reasons, NoServingEndpoint)
		case in.Service.ExternalTrafficPolicyLocal && !canServe[n.Name]:
			why.Reasons = append(why.Reasons, NoLocalEndpoint)
		}
		if len(why.Reasons) > 0 {
			res.Ineligible[n.Name] = why
			continue
		}
		res.Eligible = append(res.Eligible, n.Name)
	}
	slices.Sort(res.Eligible)
	res.Eligible = slices.Compact(res.Eligible)
	return res
}

// alive reports whether the speaker of node n is alive.
func alive(live map[string]bool, n Node) bool {
	if live == nil {
		return n.Ready
	}
	return live[n.Name]
}

// servingNodes returns the nodes holding an endpoint that can serve, and
// whether any endpoint, on any node or none, can. Endpoints that can serve
// are the ready ones, or, when none is ready, the serving ones (which are
// then terminating).
func servingNodes(eps []Endpoint) (map[string]bool, bool) {
	usable := func(ep Endpoint) bool { return ep.Ready }
	if !slices.ContainsFunc(eps, usable) {
		usable = func(ep Endpoint) bool { return ep.Serving }
	}
	nodes := make(map[string]bool)
	anyUsable := false
	for _, ep := range eps {
		if !usable(ep) {
			continue
		}
		anyUsable = true
		if ep.NodeName != "" {
			nodes[ep.NodeName] = true
		}
	}
	return nodes, anyUsable
}
