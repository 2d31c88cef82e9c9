package ndp

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
