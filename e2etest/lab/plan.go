package lab

import (
	"fmt"
	"net/netip"
)

// MaxNodes is the largest number of nodes a lab can have: node i takes
// 198.51.100.1i and the pod range 203.0.113.192/26 is cut in eight.
const MaxNodes = 8

// Fixed addresses of the lab's address plan.
var (
	// SegmentV4 and SegmentV6 are the node segment (the bridge).
	SegmentV4 = netip.MustParsePrefix("198.51.100.0/24")
	SegmentV6 = netip.MustParsePrefix("2001:db8:1::/64")

	// FRRv4 and FRRv6 are FRR's addresses on the segment.
	FRRv4 = netip.MustParseAddr("198.51.100.1")
	FRRv6 = netip.MustParseAddr("2001:db8:1::1")
	// BIRDv4 and BIRDv6 are BIRD's addresses on the segment.
	BIRDv4 = netip.MustParseAddr("198.51.100.2")
	BIRDv6 = netip.MustParseAddr("2001:db8:1::2")
	// ClientV4 and ClientV6 are the layer-2 client's addresses on the
	// segment.
	ClientV4 = netip.MustParseAddr("198.51.100.100")
	ClientV6 = netip.MustParseAddr("2001:db8:1::100")

	// RoutedV4 and RoutedV6 are the network between FRR and the routed
	// client.
	RoutedV4 = netip.MustParsePrefix("203.0.113.128/28")
	RoutedV6 = netip.MustParsePrefix("2001:db8:200::/64")
	// RoutedGatewayV4 and RoutedGatewayV6 are FRR's side of that network.
	RoutedGatewayV4 = netip.MustParseAddr("203.0.113.129")
	RoutedGatewayV6 = netip.MustParseAddr("2001:db8:200::1")
	// RoutedClientV4 and RoutedClientV6 are the routed client's addresses.
	RoutedClientV4 = netip.MustParseAddr("203.0.113.130")
	RoutedClientV6 = netip.MustParseAddr("2001:db8:200::2")

	// PodsV4 holds every node's pod range (a /29 each).
	PodsV4 = netip.MustParsePrefix("203.0.113.192/26")

	// ServiceCIDRV4 and ServiceCIDRV6 are the API server's cluster IP
	// ranges. They are never routed: no kube-proxy stand-in serves cluster
	// IPs. The IPv4 one holds 62 Services: tests with more Services use
	// IPv6 single-stack ones.
	ServiceCIDRV4 = netip.MustParsePrefix("198.51.100.128/26")
	ServiceCIDRV6 = netip.MustParsePrefix("2001:db8:ffff::/108")
)

// Management network: 169.254.K.0/24, K chosen per lab among these.
const (
	mgmtFirst = 100
	mgmtLast  = 199
	// APIServerPort is the API server's port on the management address.
	APIServerPort = 6443
)

// nodeV4 returns node i's (1-based) segment address.
func nodeV4(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)}) }

// nodeV6 returns node i's segment address, 2001:db8:1::1i.
func nodeV6(i int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("2001:db8:1::%d", 10+i))
}

// nodeMgmt returns node i's management address in 169.254.k.0/24.
func nodeMgmt(k, i int) netip.Addr { return netip.AddrFrom4([4]byte{169, 254, byte(k), byte(10 + i)}) }

// rootMgmt returns the root namespace's management address, where the API
// server listens.
func rootMgmt(k int) netip.Addr { return netip.AddrFrom4([4]byte{169, 254, byte(k), 1}) }

// podPrefixV4 returns node i's IPv4 pod range, a /29 of PodsV4.
func podPrefixV4(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(192 + 8*(i-1))}), 29)
}

// podPrefixV6 returns node i's IPv6 pod range, 2001:db8:2:i::/64.
func podPrefixV6(i int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("2001:db8:2:%d::/64", i))
}

// maxPodsPerNode is how many pod addresses a node's /29 holds (.1 to .6;
// .0 and .7 stay unused so that the range reads well).
const maxPodsPerNode = 6

// podAddrs returns the addresses of pod k (0-based) on node i.
func podAddrs(i, k int) (netip.Addr, netip.Addr) {
	v4 := podPrefixV4(i).Addr().As4()
	v4[3] += byte(k + 1)
	v6 := podPrefixV6(i).Addr().As16()
	v6[15] = byte(k + 1)
	return netip.AddrFrom4(v4), netip.AddrFrom16(v6)
}
