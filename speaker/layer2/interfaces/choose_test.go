package interfaces

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// node is a typical node: a NIC carrying the node's addresses, a bridge
// with a port, a bond with two slaves, pod veths, a VRF, a tunnel, lo.
var node = []Link{
	{Name: "lo", Index: 1, Kind: "device", Up: true, Loopback: true, Addrs: prefixes("127.0.0.1/8", "::1/128")},
	{Name: "eth0", Index: 2, Kind: "device", Up: true, Addrs: prefixes("198.51.100.11/24", "2001:db8:1::11/64", "fe80::1/64")},
	{Name: "eth1", Index: 3, Kind: "device", Up: true, MasterIndex: 4},
	{Name: "br0", Index: 4, Kind: "bridge", Up: true, Addrs: prefixes("203.0.113.11/24")},
	{Name: "bond0", Index: 5, Kind: "bond", Up: true, Addrs: prefixes("203.0.113.71/28")},
	{Name: "eth2", Index: 6, Kind: "device", Up: true, MasterIndex: 5},
	{Name: "eth3", Index: 7, Kind: "device", Up: true, MasterIndex: 5, Addrs: prefixes("203.0.113.72/28")}, // odd, but a slave
	{Name: "cali1234", Index: 8, Kind: "veth", Up: true, Addrs: prefixes("fe80::ecee:eeff:feee:eeee/64")},
	{Name: "veth9", Index: 9, Kind: "veth", Up: true, MasterIndex: 4, Addrs: prefixes("203.0.113.99/24")},
	{Name: "vrf-blue", Index: 10, Kind: "vrf", Up: true},
	{Name: "eth4", Index: 11, Kind: "device", Up: true, MasterIndex: 10, Addrs: prefixes("198.51.100.51/24")},
	{Name: "wg0", Index: 12, Kind: "wireguard", Up: true, NoARP: true, Addrs: prefixes("198.51.100.61/32")},
	{Name: "eth5", Index: 13, Kind: "device", Up: false, Addrs: prefixes("198.51.100.81/24")},
	{Name: "veth-node", Index: 14, Kind: "veth", Up: true, Addrs: prefixes("203.0.113.140/28")},
	{Name: "orphan", Index: 15, Kind: "device", Up: true, MasterIndex: 99, Addrs: prefixes("203.0.113.150/28")},
}

func TestChoose(t *testing.T) {
	tests := []struct {
		name      string
		links     []Link
		nodeAddrs []netip.Addr
		named     []string
		want      []string
	}{
		{"node-ipv4", node, addrs("198.51.100.11"), nil, []string{"eth0"}},
		{"node-ipv6", node, addrs("2001:db8:1::11"), nil, []string{"eth0"}},
		{"node-dual-stack", node, addrs("198.51.100.11", "2001:db8:1::11"), nil, []string{"eth0"}},
		{"address-on-bridge", node, addrs("203.0.113.11"), nil, []string{"br0"}},
		{"address-on-bond", node, addrs("203.0.113.71"), nil, []string{"bond0"}},
		{"address-on-bond-slave", node, addrs("203.0.113.72"), nil, nil},
		{"address-on-bridged-veth", node, addrs("203.0.113.99"), nil, nil},
		{"address-on-veth-without-master", node, addrs("203.0.113.140"), nil, []string{"veth-node"}},
		{"address-on-vrf-port", node, addrs("198.51.100.51"), nil, []string{"eth4"}},
		{"address-on-noarp", node, addrs("198.51.100.61"), nil, nil},
		{"address-on-down-link", node, addrs("198.51.100.81"), nil, nil},
		{"address-on-loopback", node, addrs("127.0.0.1"), nil, nil},
		{"link-local-node-address", node, addrs("fe80::1"), nil, []string{"eth0"}},
		{"unknown-master", node, addrs("203.0.113.150"), nil, nil},
		{"two-nics", node, addrs("198.51.100.11", "203.0.113.11"), nil, []string{"br0", "eth0"}},
		{"address-nowhere", node, addrs("198.51.100.222"), nil, nil},
		{
			"no-node-addresses-means-any-global", node, nil, nil,
			[]string{"bond0", "br0", "eth0", "eth4", "veth-node"},
		},
		{"named", node, addrs("198.51.100.11"), []string{"eth1", "bond0"}, []string{"bond0", "eth1"}},
		{"named-missing-down-loopback-noarp", node, nil, []string{"nope", "eth5", "lo", "wg0"}, nil},
		{"no-links", nil, addrs("198.51.100.11"), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Choose(tt.links, tt.nodeAddrs, tt.named)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Choose (-want +got):\n%s", diff)
			}
		})
	}
}
