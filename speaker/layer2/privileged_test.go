package layer2

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/speaker/layer2/internal/netnstest"
)

// labNode is one node namespace on the test's bridge, with its Announcer.
type labNode struct {
	ns      *netnstest.NS
	ifname  string
	mac     string
	a       *Announcer
	factory Factory
}

// TestPrivilegedFailover runs two nodes and a client on one bridge, each in
// its own namespace. The first node's Announcer takes a dual-stack
// Service's addresses and the client resolves them to it; then the
// addresses move to the second node, and the client's neighbour entries
// follow from the gratuitous packets alone, with no traffic of its own.
func TestPrivilegedFailover(t *testing.T) {
	netnstest.Require(t, "ping")
	const vip4, vip6 = "198.51.100.200", "2001:db8:1::1:c8"
	lan := netnstest.New(t, "lan")
	lan.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	lan.MustRun(t, "ip", "link", "set", "br0", "up")
	attach := func(ns *netnstest.NS, prefix string) string {
		ifname, port := netnstest.LinkName(t, prefix), netnstest.LinkName(t, "p")
		netnstest.Veth(t, ns, ifname, lan, port)
		lan.MustRun(t, "ip", "link", "set", port, "master", "br0")
		return ifname
	}

	client := netnstest.New(t, "client")
	clientIf := attach(client, "c")
	client.MustRun(t, "ip", "addr", "add", "198.51.100.100/24", "dev", clientIf)
	client.MustRun(t, "ip", "addr", "add", "2001:db8:1::100/64", "dev", clientIf)

	var nodes []*labNode
	for i, addr := range []struct{ v4, v6 string }{{"198.51.100.11/24", "2001:db8:1::11/64"}, {"198.51.100.12/24", "2001:db8:1::12/64"}} {
		ns := netnstest.New(t, "node")
		ns.MustRun(t, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
		ifname := attach(ns, "n")
		ns.MustRun(t, "ip", "addr", "add", addr.v4, "dev", ifname)
		ns.MustRun(t, "ip", "addr", "add", addr.v6, "dev", ifname)
		n := &labNode{ns: ns, ifname: ifname, mac: ns.MAC(t, ifname)}
		n.factory = FactoryFunc(func(ifname string, f config.Family) (Responder, error) {
			var r Responder
			err := ns.Do(func() error {
				var err error
				r, err = Listener{}.Open(ifname, f)
				return err
			})
			return r, err
		})
		n.a = NewAnnouncer(n.factory)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.a.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node %d: Run: %v", i, err)
			}
		})
		nodes = append(nodes, n)
	}

	desired := func(n *labNode) Desired {
		return Desired{netip.MustParseAddr(vip4): {n.ifname}, netip.MustParseAddr(vip6): {n.ifname}}
	}
	if err := nodes[0].a.Apply(desired(nodes[0])); err != nil {
		t.Fatalf("node 0: Apply: %v", err)
	}
	_, _ = client.Run("ping", "-c1", "-W1", vip4) // the node drops the echo itself
	_, _ = client.Run("ping", "-6", "-c1", "-W1", vip6)
	for _, vip := range []string{vip4, vip6} {
		if mac, line := client.NeighborMAC(t, vip, clientIf); mac != nodes[0].mac {
			t.Fatalf("client's neighbour entry for %s is %q, want lladdr %s (node 0)", vip, line, nodes[0].mac)
		}
	}

	// Failover: node 0 lets go, node 1 takes over.
	start := time.Now()
	if err := nodes[0].a.Apply(Desired{}); err != nil {
		t.Fatalf("node 0: Apply: %v", err)
	}
	if err := nodes[1].a.Apply(desired(nodes[1])); err != nil {
		t.Fatalf("node 1: Apply: %v", err)
	}
	for _, vip := range []string{vip4, vip6} {
		client.WaitNeighbor(t, vip, clientIf, nodes[1].mac, time.Second)
	}
	t.Logf("the client's neighbour entries moved to node 1 within %v", time.Since(start))
	if got := nodes[0].a.Bindings(); len(got) != 0 {
		t.Errorf("node 0 still answers for %v", got)
	}
}
