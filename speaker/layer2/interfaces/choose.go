package interfaces

import (
	"net/netip"
	"slices"
)

// Link is what choosing needs to know about a network interface.
type Link struct {
	// Name is the interface's name.
	Name string
	// Index is the interface's index.
	Index int
	// Kind is the link's type as netlink reports it: "device", "veth",
	// "bridge", "bond", "vlan", "vrf", ...
	Kind string
	// MasterIndex is the index of the link's master (bridge, bond, VRF),
	// or 0.
	MasterIndex int
	// Up is true when the link is administratively up and its operational
	// state is up or unknown.
	Up bool
	// Loopback is true for a loopback link.
	Loopback bool
	// NoARP is true for a link that does no neighbour resolution (IFF_NOARP,
	// such as a tunnel or WireGuard).
	NoARP bool
	// Addrs are the link's addresses.
	Addrs []netip.Prefix
}

// portMasters are the kinds of master whose ports are never announced on.
var portMasters = []string{"bridge", "bond", "team", "openvswitch"}

// Choose returns the names of the links to announce on, sorted. When named
// is not empty, these are the links of those names that can answer;
// otherwise, the links that can answer and carry one of nodeAddrs, or,
// when nodeAddrs is empty, any global unicast address. See the package
// documentation for which links can answer.
func Choose(links []Link, nodeAddrs []netip.Addr, named []string) []string {
	byIndex := make(map[int]Link, len(links))
	for _, l := range links {
		byIndex[l.Index] = l
	}
	var out []string
	for _, l := range links {
		if !l.Up || l.Loopback || l.NoARP {
			continue
		}
		if len(named) > 0 {
			if slices.Contains(named, l.Name) {
				out = append(out, l.Name)
			}
			continue
		}
		if isPort(l, byIndex) || isPodVeth(l) {
			continue
		}
		if carries(l, nodeAddrs) {
			out = append(out, l.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// isPort reports whether l is enslaved to a master it must not be
// announced behind. A master not in links counts as one.
func isPort(l Link, byIndex map[int]Link) bool {
	if l.MasterIndex == 0 {
		return false
	}
	m, ok := byIndex[l.MasterIndex]
	return !ok || slices.Contains(portMasters, m.Kind)
}

// isPodVeth reports whether l looks like the host end of a pod's veth.
func isPodVeth(l Link) bool {
	if l.Kind != "veth" {
		return false
	}
	return l.MasterIndex != 0 || !slices.ContainsFunc(l.Addrs, func(p netip.Prefix) bool { return isGlobal(p.Addr()) })
}

// carries reports whether l holds one of addrs or, when addrs is empty, a
// global unicast address.
func carries(l Link, addrs []netip.Addr) bool {
	for _, p := range l.Addrs {
		a := p.Addr().WithZone("")
		if len(addrs) == 0 {
			if isGlobal(a) {
				return true
			}
			continue
		}
		if slices.Contains(addrs, a) {
			return true
		}
	}
	return false
}

// isGlobal reports whether a is a global unicast address (private ranges
// included; link-local, loopback and multicast not).
func isGlobal(a netip.Addr) bool {
	return a.IsGlobalUnicast()
}
