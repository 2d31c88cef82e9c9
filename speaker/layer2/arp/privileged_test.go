package arp

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ironlb/ironlb/speaker/layer2/internal/netnstest"
)

// TestPrivilegedResolve starts a real Responder in a node namespace and
// checks, from a client namespace on the same veth link, that the client's
// kernel resolves the load-balancer address to the node's hardware
// address, that gratuitous ARP replaces a wrong entry, and that a removed
// address is no longer answered.
func TestPrivilegedResolve(t *testing.T) {
	netnstest.Require(t, "ping")
	for _, withIPv4 := range []bool{true, false} {
		name := "node-has-ipv4"
		if !withIPv4 {
			name = "node-has-no-ipv4"
		}
		t.Run(name, func(t *testing.T) { testResolve(t, withIPv4) })
	}
}

func testResolve(t *testing.T, nodeHasIPv4 bool) {
	const vipS = "198.51.100.200"
	node := netnstest.New(t, "node")
	client := netnstest.New(t, "client")
	node.MustRun(t, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
	nodeIf, clientIf := netnstest.LinkName(t, "n"), netnstest.LinkName(t, "c")
	netnstest.Veth(t, node, nodeIf, client, clientIf)
	if nodeHasIPv4 {
		node.MustRun(t, "ip", "addr", "add", "198.51.100.11/24", "dev", nodeIf)
	}
	client.MustRun(t, "ip", "addr", "add", "198.51.100.100/24", "dev", clientIf)
	nodeMAC := node.MAC(t, nodeIf)

	rec := newCounts()
	r := netnstest.Serve(t, node, nodeIf, func(ifi *net.Interface) (*Responder, error) { return Listen(ifi, rec) })
	if err := r.Add(netip.MustParseAddr(vipS)); err != nil {
		t.Fatal(err)
	}

	// The client resolves the address: nothing but the Responder can
	// have answered, as the node does not hold it.
	_, _ = client.Run("ping", "-c1", "-W1", vipS) // the node drops the echo itself
	if mac, line := client.NeighborMAC(t, vipS, clientIf); mac != nodeMAC {
		t.Fatalf("client's neighbour entry for %s is %q, want lladdr %s", vipS, line, nodeMAC)
	}
	rec.mu.Lock()
	if rec.answered[netip.MustParseAddr(vipS)] == 0 {
		t.Errorf("no answer recorded")
	}
	rec.mu.Unlock()

	// Gratuitous ARP replaces a wrong entry, as after a failover.
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
	_, _ = client.Run("ping", "-c1", "-W1", vipS)
	if mac, line := client.NeighborMAC(t, vipS, clientIf); mac != "" {
		t.Errorf("after Remove, the client's neighbour entry for %s is %q", vipS, line)
	}
}
