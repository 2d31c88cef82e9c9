package layer2

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"

	"github.com/ironlb/ironlb/config"
)

// Desired is what a node announces: for each address it owns, the names of
// the interfaces to answer on. Invalid addresses and empty names are
// ignored; duplicate names count once.
type Desired map[netip.Addr][]string

// Link is where one Responder answers: one interface, one address family
// (ARP for IPv4, NDP for IPv6).
type Link struct {
	// Interface is the interface's name.
	Interface string
	// Family is the family of the addresses answered.
	Family config.Family
}

// Binding is one address answered on one interface.
type Binding struct {
	// Interface is the interface's name.
	Interface string
	// IP is the address.
	IP netip.Addr
}

// Link returns the Link whose Responder answers for the binding.
func (b Binding) Link() Link {
	return Link{Interface: b.Interface, Family: config.FamilyOf(b.IP)}
}

// Changes are what turns the current announcements into the desired ones,
// in the order to apply them: Remove, Close, Open, Add. Each list is
// sorted.
type Changes struct {
	// Remove are the bindings to stop answering.
	Remove []Binding
	// Close are the Responders no longer needed.
	Close []Link
	// Open are the Responders to open.
	Open []Link
	// Add are the bindings to start answering.
	Add []Binding
}

// IsEmpty reports whether there is nothing to change.
func (c Changes) IsEmpty() bool {
	return len(c.Remove) == 0 && len(c.Close) == 0 && len(c.Open) == 0 && len(c.Add) == 0
}

// Plan returns the changes that turn the current state, the Responders
// open and the bindings answered, into desired. It is a pure function.
func Plan(open map[Link]bool, answering map[Binding]bool, desired Desired) Changes {
	want := desired.Bindings()
	wantLinks := make(map[Link]bool)
	for b := range want {
		wantLinks[b.Link()] = true
	}
	var c Changes
	for b, ok := range answering {
		if ok && !want[b] {
			c.Remove = append(c.Remove, b)
		}
	}
	for l, ok := range open {
		if ok && !wantLinks[l] {
			c.Close = append(c.Close, l)
		}
	}
	for l := range wantLinks {
		if !open[l] {
			c.Open = append(c.Open, l)
		}
	}
	for b := range want {
		if !answering[b] {
			c.Add = append(c.Add, b)
		}
	}
	slices.SortFunc(c.Remove, compareBindings)
	slices.SortFunc(c.Close, compareLinks)
	slices.SortFunc(c.Open, compareLinks)
	slices.SortFunc(c.Add, compareBindings)
	return c
}

// Bindings returns the set of bindings d asks for.
func (d Desired) Bindings() map[Binding]bool {
	out := make(map[Binding]bool)
	for ip, names := range d {
		if !ip.IsValid() {
			continue
		}
		for _, n := range names {
			if n != "" {
				out[Binding{Interface: n, IP: ip}] = true
			}
		}
	}
	return out
}

// Clone returns a deep copy of d.
func (d Desired) Clone() Desired {
	out := make(Desired, len(d))
	for ip, names := range d {
		out[ip] = slices.Clone(names)
	}
	return out
}

// SortedBindings returns the keys of set that are true, sorted by
// interface then address.
func SortedBindings(set map[Binding]bool) []Binding {
	out := slices.Collect(maps.Keys(set))
	out = slices.DeleteFunc(out, func(b Binding) bool { return !set[b] })
	slices.SortFunc(out, compareBindings)
	return out
}

func compareBindings(a, b Binding) int {
	if c := cmp.Compare(a.Interface, b.Interface); c != 0 {
		return c
	}
	return a.IP.Compare(b.IP)
}

func compareLinks(a, b Link) int {
	if c := cmp.Compare(a.Interface, b.Interface); c != 0 {
		return c
	}
	return cmp.Compare(a.Family, b.Family)
}
