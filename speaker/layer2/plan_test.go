package layer2

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ironlb/ironlb/config"
)

var (
	v4a = netip.MustParseAddr("198.51.100.200")
	v4b = netip.MustParseAddr("198.51.100.201")
	v6a = netip.MustParseAddr("2001:db8:1::1:c8")
)

var netipOpts = cmpopts.EquateComparable(netip.Addr{})

func bind(ifname string, ip netip.Addr) Binding { return Binding{Interface: ifname, IP: ip} }

func set[K comparable](ks ...K) map[K]bool {
	m := map[K]bool{}
	for _, k := range ks {
		m[k] = true
	}
	return m
}

func TestPlan(t *testing.T) {
	eth0v4, eth0v6, eth1v4 := Link{"eth0", config.IPv4}, Link{"eth0", config.IPv6}, Link{"eth1", config.IPv4}
	tests := []struct {
		name      string
		open      map[Link]bool
		answering map[Binding]bool
		desired   Desired
		want      Changes
	}{
		{name: "nothing"},
		{
			name:    "first-addresses",
			desired: Desired{v4a: {"eth0", "eth1"}, v6a: {"eth0"}},
			want: Changes{
				Open: []Link{eth0v4, eth0v6, eth1v4},
				Add:  []Binding{bind("eth0", v4a), bind("eth0", v6a), bind("eth1", v4a)},
			},
		},
		{
			name:      "in-sync",
			open:      set(eth0v4, eth0v6),
			answering: set(bind("eth0", v4a), bind("eth0", v6a)),
			desired:   Desired{v6a: {"eth0"}, v4a: {"eth0", "eth0"}},
		},
		{
			name:      "address-moves-interface",
			open:      set(eth0v4),
			answering: set(bind("eth0", v4a)),
			desired:   Desired{v4a: {"eth1"}},
			want: Changes{
				Remove: []Binding{bind("eth0", v4a)},
				Close:  []Link{eth0v4},
				Open:   []Link{eth1v4},
				Add:    []Binding{bind("eth1", v4a)},
			},
		},
		{
			name:      "one-of-two-addresses-goes",
			open:      set(eth0v4),
			answering: set(bind("eth0", v4a), bind("eth0", v4b)),
			desired:   Desired{v4b: {"eth0"}},
			want:      Changes{Remove: []Binding{bind("eth0", v4a)}},
		},
		{
			name:      "everything-goes",
			open:      set(eth0v4, eth0v6),
			answering: set(bind("eth0", v4a), bind("eth0", v6a)),
			want: Changes{
				Remove: []Binding{bind("eth0", v4a), bind("eth0", v6a)},
				Close:  []Link{eth0v4, eth0v6},
			},
		},
		{
			name:      "open-but-not-yet-answering",
			open:      set(eth0v4),
			answering: set[Binding](),
			desired:   Desired{v4a: {"eth0"}},
			want:      Changes{Add: []Binding{bind("eth0", v4a)}},
		},
		{
			name:    "invalid-address-and-empty-name-ignored",
			desired: Desired{{}: {"eth0"}, v4a: {""}},
		},
		{
			name:      "false-entries-count-as-absent",
			open:      map[Link]bool{eth0v4: false},
			answering: map[Binding]bool{bind("eth0", v4a): false},
			desired:   Desired{v4a: {"eth0"}},
			want:      Changes{Open: []Link{eth0v4}, Add: []Binding{bind("eth0", v4a)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Plan(tt.open, tt.answering, tt.desired)
			if diff := cmp.Diff(tt.want, got, netipOpts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Plan (-want +got):\n%s", diff)
			}
			if got.IsEmpty() != (len(tt.want.Remove)+len(tt.want.Close)+len(tt.want.Open)+len(tt.want.Add) == 0) {
				t.Errorf("IsEmpty = %v", got.IsEmpty())
			}
		})
	}
}

// TestPlanApplied checks that applying a plan reaches the desired state,
// and that planning again from there gives nothing to do.
func TestPlanApplied(t *testing.T) {
	states := []Desired{
		{},
		{v4a: {"eth0"}},
		{v4a: {"eth0", "eth1"}, v6a: {"eth1"}},
		{v4b: {"eth1"}, v6a: {"eth0"}},
	}
	for _, from := range states {
		for _, to := range states {
			open, answering := map[Link]bool{}, from.Bindings()
			for b := range answering {
				open[b.Link()] = true
			}
			c := Plan(open, answering, to)
			for _, b := range c.Remove {
				delete(answering, b)
			}
			for _, l := range c.Close {
				delete(open, l)
			}
			for _, l := range c.Open {
				open[l] = true
			}
			for _, b := range c.Add {
				if !open[b.Link()] {
					t.Fatalf("%v → %v: adds %v on a link not open", from, to, b)
				}
				answering[b] = true
			}
			if diff := cmp.Diff(to.Bindings(), answering, netipOpts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%v → %v: answering (-want +got):\n%s", from, to, diff)
			}
			if again := Plan(open, answering, to); !again.IsEmpty() {
				t.Errorf("%v → %v: planning again gives %+v", from, to, again)
			}
		}
	}
}
