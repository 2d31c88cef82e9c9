package eligibility

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config"
)

// selector returns the Selector of an L2Advertisement named name whose
// node selectors are sel (none: every node).
func selector(t *testing.T, name string, sel ...string) Selector {
	t.Helper()
	a := &config.L2Advertisement{Name: name, Pools: []string{"pool"}}
	for _, s := range sel {
		parsed, err := labels.Parse(s)
		if err != nil {
			t.Fatalf("parse selector %q: %v", s, err)
		}
		a.NodeSelectors = append(a.NodeSelectors, parsed)
	}
	return L2Selector(a)
}

func node(name string, l labels.Set) Node {
	return Node{Name: name, Labels: l, Ready: true}
}

func ready(node string) Endpoint { return Endpoint{NodeName: node, Ready: true, Serving: true} }

func terminating(node string) Endpoint {
	return Endpoint{NodeName: node, Serving: true, Terminating: true}
}

func notReady(node string) Endpoint { return Endpoint{NodeName: node} }

func live(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func why(rs ...Reason) Why { return Why{Reasons: rs} }

func TestEligible(t *testing.T) {
	all := selector(t, "all")
	west := selector(t, "west", "zone=west")
	east := selector(t, "east", "zone=east")
	svc := func(local bool, eps ...Endpoint) Service {
		return Service{
			Key:                        "default/web",
			IPs:                        []netip.Addr{netip.MustParseAddr("198.51.100.200")},
			Pool:                       "pool",
			ExternalTrafficPolicyLocal: local,
			Endpoints:                  eps,
		}
	}
	a, b, c := node("a", labels.Set{"zone": "west"}), node("b", labels.Set{"zone": "east"}), node("c", nil)

	tests := []struct {
		name string
		in   Input
		want Result
	}{
		{
			name: "cluster-policy-every-node",
			in:   Input{Nodes: []Node{c, b, a}, Live: live("a", "b", "c"), Service: svc(false, ready("a")), Selectors: []Selector{all}},
			want: Result{Eligible: []string{"a", "b", "c"}, Ineligible: map[string]Why{}},
		},
		{
			name: "selected-by-one-of-two",
			in:   Input{Nodes: []Node{a, b, c}, Live: live("a", "b", "c"), Service: svc(false, ready("a")), Selectors: []Selector{west, east}},
			want: Result{Eligible: []string{"a", "b"}, Ineligible: map[string]Why{
				"c": {Reasons: []Reason{NotSelected}, Selectors: []string{`L2Advertisement "west"`, `L2Advertisement "east"`}},
			}},
		},
		{
			name: "pool-not-advertised",
			in:   Input{Nodes: []Node{a}, Live: live("a"), Service: svc(false, ready("a"))},
			want: Result{Eligible: []string{}, Ineligible: map[string]Why{"a": why(NotAdvertised)}},
		},
		{
			name: "excluded-by-label",
			in: Input{
				Nodes: []Node{a, node("x", labels.Set{ExcludeLabel: ""})}, Live: live("a", "x"),
				Service: svc(false, ready("a")), Selectors: []Selector{all},
			},
			want: Result{Eligible: []string{"a"}, Ineligible: map[string]Why{"x": why(ExcludedByLabel)}},
		},
		{
			name: "network-unavailable",
			in: Input{
				Nodes: []Node{a, {Name: "x", Ready: true, NetworkUnavailable: true}}, Live: live("a", "x"),
				Service: svc(false, ready("a")), Selectors: []Selector{all},
			},
			want: Result{Eligible: []string{"a"}, Ineligible: map[string]Why{"x": why(NetworkUnavailable)}},
		},
		{
			name: "speaker-not-alive",
			in:   Input{Nodes: []Node{a, b}, Live: live("b"), Service: svc(false, ready("a")), Selectors: []Selector{all}},
			want: Result{Eligible: []string{"b"}, Ineligible: map[string]Why{"a": why(SpeakerNotAlive)}},
		},
		{
			name: "no-detector-falls-back-to-ready",
			in: Input{
				Nodes: []Node{a, {Name: "x"}}, Live: nil,
				Service: svc(false, ready("a")), Selectors: []Selector{all},
			},
			want: Result{Eligible: []string{"a"}, Ineligible: map[string]Why{"x": why(SpeakerNotAlive)}},
		},
		{
			name: "empty-live-set-means-none-alive",
			in:   Input{Nodes: []Node{a}, Live: map[string]bool{}, Service: svc(false, ready("a")), Selectors: []Selector{all}},
			want: Result{Eligible: []string{}, Ineligible: map[string]Why{"a": why(SpeakerNotAlive)}},
		},
		{
			name: "cluster-policy-no-endpoints",
			in:   Input{Nodes: []Node{a, b}, Live: live("a", "b"), Service: svc(false), Selectors: []Selector{all}},
			want: Result{Eligible: []string{}, Ineligible: map[string]Why{"a": why(NoServingEndpoint), "b": why(NoServingEndpoint)}},
		},
		{
			name: "cluster-policy-no-ready-endpoint",
			in:   Input{Nodes: []Node{a}, Live: live("a"), Service: svc(false, notReady("a"), notReady("b")), Selectors: []Selector{all}},
			want: Result{Eligible: []string{}, Ineligible: map[string]Why{"a": why(NoServingEndpoint)}},
		},
		{
			name: "cluster-policy-terminating-serves-when-none-ready",
			in:   Input{Nodes: []Node{a, b}, Live: live("a", "b"), Service: svc(false, terminating("b")), Selectors: []Selector{all}},
			want: Result{Eligible: []string{"a", "b"}, Ineligible: map[string]Why{}},
		},
		{
			name: "cluster-policy-endpoint-without-node",
			in:   Input{Nodes: []Node{a}, Live: live("a"), Service: svc(false, ready("")), Selectors: []Selector{all}},
			want: Result{Eligible: []string{"a"}, Ineligible: map[string]Why{}},
		},
		{
			name: "local-policy-only-nodes-with-ready-endpoint",
			in: Input{
				Nodes: []Node{a, b, c}, Live: live("a", "b", "c"),
				Service: svc(true, ready("b"), notReady("a"), ready("elsewhere")), Selectors: []Selector{all},
			},
			want: Result{Eligible: []string{"b"}, Ineligible: map[string]Why{"a": why(NoLocalEndpoint), "c": why(NoLocalEndpoint)}},
		},
		{
			name: "local-policy-terminating-ignored-while-any-ready",
			in: Input{
				Nodes: []Node{a, b}, Live: live("a", "b"),
				Service: svc(true, ready("b"), terminating("a")), Selectors: []Selector{all},
			},
			want: Result{Eligible: []string{"b"}, Ineligible: map[string]Why{"a": why(NoLocalEndpoint)}},
		},
		{
			name: "local-policy-terminating-serves-when-none-ready",
			in: Input{
				Nodes: []Node{a, b}, Live: live("a", "b"),
				Service: svc(true, terminating("a"), notReady("b")), Selectors: []Selector{all},
			},
			want: Result{Eligible: []string{"a"}, Ineligible: map[string]Why{"b": why(NoLocalEndpoint)}},
		},
		{
			name: "local-policy-no-endpoint-anywhere",
			in:   Input{Nodes: []Node{a}, Live: live("a"), Service: svc(true), Selectors: []Selector{all}},
			want: Result{Eligible: []string{}, Ineligible: map[string]Why{"a": why(NoServingEndpoint)}},
		},
		{
			name: "every-reason-at-once",
			in: Input{
				Nodes: []Node{{Name: "x", Labels: labels.Set{ExcludeLabel: "true"}, NetworkUnavailable: true}},
				Live:  live("a"), Service: svc(true, ready("a")), Selectors: []Selector{west},
			},
			want: Result{Eligible: []string{}, Ineligible: map[string]Why{"x": {
				Reasons:   []Reason{NotSelected, ExcludedByLabel, NetworkUnavailable, SpeakerNotAlive, NoLocalEndpoint},
				Selectors: []string{`L2Advertisement "west"`},
			}}},
		},
		{
			name: "no-nodes",
			in:   Input{Live: live(), Service: svc(false, ready("a")), Selectors: []Selector{all}},
			want: Result{Eligible: []string{}, Ineligible: map[string]Why{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Eligible(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Eligible (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBGPSelector(t *testing.T) {
	sel, err := labels.Parse("rack=r1")
	if err != nil {
		t.Fatal(err)
	}
	s := BGPSelector(&config.BGPAdvertisement{Name: "upstream", NodeSelectors: []labels.Selector{sel}})
	in := Input{
		Nodes:     []Node{node("a", labels.Set{"rack": "r1"}), node("b", labels.Set{"rack": "r2"})},
		Live:      live("a", "b"),
		Service:   Service{Endpoints: []Endpoint{ready("a")}},
		Selectors: []Selector{s},
	}
	got := Eligible(in)
	if diff := cmp.Diff([]string{"a"}, got.Eligible); diff != "" {
		t.Errorf("Eligible (-want +got):\n%s", diff)
	}
	if w := got.Ineligible["b"].String(); w != `not selected by BGPAdvertisement "upstream"` {
		t.Errorf("why b = %q", w)
	}
}

func TestWhyString(t *testing.T) {
	tests := []struct {
		why  Why
		want string
	}{
		{Why{}, ""},
		{why(SpeakerNotAlive), "speaker not alive"},
		{why(NetworkUnavailable, NoLocalEndpoint), "network unavailable; no local endpoint"},
		{why(ExcludedByLabel), "excluded by label node.kubernetes.io/exclude-from-external-load-balancers"},
		{Why{Reasons: []Reason{NotSelected}, Selectors: []string{`L2Advertisement "a"`, `L2Advertisement "b"`}}, `not selected by L2Advertisement "a" or L2Advertisement "b"`},
		{why(NotAdvertised, NoServingEndpoint), "pool not advertised; no serving endpoint"},
		{why(Reason(99)), "Reason(99)"},
	}
	for _, tt := range tests {
		if got := tt.why.String(); got != tt.want {
			t.Errorf("%v.String() = %q, want %q", tt.why.Reasons, got, tt.want)
		}
	}
	if !why(NoLocalEndpoint).Has(NoLocalEndpoint) || why(NoLocalEndpoint).Has(NotSelected) {
		t.Errorf("Has is wrong")
	}
}
