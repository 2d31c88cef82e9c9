package ndp

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/speaker/layer2/internal/netnstest"
)

// TestPrivilegedResolve starts a real Responder in a node namespace and
// checks, from a client namespace on the same veth link, that the client's
// kernel resolves the load-balancer address to the node's hardware
// address, that an unsolicited advertisement replaces a wrong entry, and
// that a removed address is no longer answered.
func TestPrivilegedResolve(t *testing.T) {
	netnstest.Require(t, "ping")
	const vipS = "2001:db8:1::1:c8"
	node := netnstest.New(t, "node")
	client := netnstest.New(t, "client")
	nodeIf, clientIf := netnstest.LinkName(t, "n"), netnstest.LinkName(t, "c")
	netnstest.Veth(t, node, nodeIf, client, clientIf)
	node.MustRun(t, "ip", "addr", "add", "2001:db8:1::11/64", "dev", nodeIf)
	client.MustRun(t, "ip", "addr", "add", "2001:db8:1::100/64", "dev", clientIf)
	nodeMAC := node.MAC(t, nodeIf)

	rec := newCounts()
	r := netnstest.Serve(t, node, nodeIf, func(ifi *net.Interface) (*Responder, error) { return Listen(ifi, rec) })
	if err := r.Add(netip.MustParseAddr(vipS)); err != nil {
		t.Fatal(err)
	}

	// The client resolves the address through the solicited-node group:
	// nothing but the Responder can have answered, as the node does not
	// hold it.
	_, _ = client.Run("ping", "-6", "-c1", "-W1", vipS) // the node drops the echo itself
	if mac, line := client.NeighborMAC(t, vipS, clientIf); mac != nodeMAC {
		t.Fatalf("client's neighbour entry for %s is %q, want lladdr %s", vipS, line, nodeMAC)
	}
	rec.mu.Lock()
	if rec.answered[netip.MustParseAddr(vipS)] == 0 {
		t.Errorf("no answer recorded")
	}
	rec.mu.Unlock()

	// An unsolicited advertisement replaces a wrong entry, as after a
	// failover.
	client.MustRun(t, "ip", "neigh", "replace", vipS, "lladdr", "02:00:00:00:00:99", "dev", clientIf, "nud", "stale")
	if err := r.Gratuitous(netip.MustParseAddr(vipS)); err != nil {
		t.Fatalf("Gratuitous: %v", err)
	}
	client.WaitNeighbor(t, vipS, clientIf, nodeMAC, 2*time.Second)

	// A removed address is not answered any more.
	if err := r.Remove(netip.MustParseAddr(vipS)); err != nil {
		t.Fatal(err)
	}
	client.MustRun(t, "ip", "neigh", "flush", "dev", clientIf)
	_, _ = client.Run("ping", "-6", "-c1", "-W1", vipS)
	if mac, line := client.NeighborMAC(t, vipS, clientIf); mac != "" {
		t.Errorf("after Remove, the client's neighbour entry for %s is %q", vipS, line)
	}
}

// TestPrivilegedManyAddresses gives a real Responder more addresses than
// one socket can hold multicast memberships for, in a namespace whose
// net.core.optmem_max is cut to 8 KiB (room for about a hundred
// memberships a socket), and checks that the interface joined every
// address's solicited-node group, that the client resolves addresses
// added first and last, and that removing them all leaves every group.
func TestPrivilegedManyAddresses(t *testing.T) {
	netnstest.Require(t, "ping")
	node := netnstest.New(t, "node")
	client := netnstest.New(t, "client")
	nodeIf, clientIf := netnstest.LinkName(t, "n"), netnstest.LinkName(t, "c")
	netnstest.Veth(t, node, nodeIf, client, clientIf)
	node.MustRun(t, "sysctl", "-qw", "net.core.optmem_max=8192")
	node.MustRun(t, "ip", "addr", "add", "2001:db8:1::11/64", "dev", nodeIf)
	client.MustRun(t, "ip", "addr", "add", "2001:db8:1::100/64", "dev", clientIf)
	nodeMAC := node.MAC(t, nodeIf)

	ips := consecutive(netip.MustParseAddr("2001:db8:1::1:0"), 2000)
	r := netnstest.Serve(t, node, nodeIf, func(ifi *net.Interface) (*Responder, error) { return Listen(ifi, nil) })
	if err := r.Set(ips); err != nil {
		t.Fatalf("Set %d addresses: %v", len(ips), err)
	}
	if n := solicitedGroups(t, node, nodeIf); n != len(ips) {
		t.Errorf("%s is in %d solicited-node groups of 2001:db8:1::1:0/112, want %d", nodeIf, n, len(ips))
	}
	for _, ip := range []netip.Addr{ips[0], ips[len(ips)/2], ips[len(ips)-1]} {
		_, _ = client.Run("ping", "-6", "-c1", "-W1", ip.String())
		if mac, line := client.NeighborMAC(t, ip.String(), clientIf); mac != nodeMAC {
			t.Errorf("client's neighbour entry for %s is %q, want lladdr %s", ip, line, nodeMAC)
		}
	}
	if err := r.Set(nil); err != nil {
		t.Fatalf("Set no addresses: %v", err)
	}
	if n := solicitedGroups(t, node, nodeIf); n != 0 {
		t.Errorf("after removing every address %s is still in %d of their solicited-node groups", nodeIf, n)
	}
}

// consecutive returns n addresses counting up from first.
func consecutive(first netip.Addr, n int) []netip.Addr {
	ips := make([]netip.Addr, n)
	ips[0] = first
	for i := 1; i < n; i++ {
		ips[i] = ips[i-1].Next()
	}
	return ips
}

// solicitedGroups returns how many solicited-node groups of addresses in
// 2001:db8:1::1:0/112 (ff02::1:ff01:0/112) the interface ifname in ns has
// joined, from /proc/net/igmp6.
func solicitedGroups(t *testing.T, ns *netnstest.NS, ifname string) int {
	t.Helper()
	n := 0
	for line := range strings.Lines(ns.MustRun(t, "cat", "/proc/net/igmp6")) {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == ifname && strings.HasPrefix(f[2], "ff0200000000000000000001ff01") {
			n++
		}
	}
	return n
}
