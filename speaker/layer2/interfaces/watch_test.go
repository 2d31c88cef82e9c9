package interfaces

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ironlb/ironlb/speaker/layer2/internal/netnstest"
)

// TestPrivilegedWatcher watches a namespace of its own while links and
// addresses come and go in it, and checks that every change is reported,
// without polling, and that Choose follows.
func TestPrivilegedWatcher(t *testing.T) {
	netnstest.Require(t)
	node := netnstest.New(t, "node")
	peer := netnstest.New(t, "peer")

	updates := make(chan []Link, 100)
	w := NewWatcher(func(links []Link) { updates <- links })
	w.Namespace = node.Handle()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return")
		}
	})

	nodeAddrs := []netip.Addr{netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("2001:db8:1::11")}
	// waitFor waits for an update after which Choose gives want.
	waitFor := func(step string, want []string) []Link {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case links := <-updates:
				if got := Choose(links, nodeAddrs, nil); slices.Equal(got, want) {
					return links
				}
			case <-deadline:
				t.Fatalf("%s: no update after which Choose gives %q", step, want)
			}
		}
	}

	first := waitFor("start", nil)
	if len(first) != 1 || first[0].Name != "lo" || !first[0].Loopback || !first[0].Up {
		t.Fatalf("start: links %+v, want lo alone", first)
	}

	ifname := netnstest.LinkName(t, "n")
	netnstest.Veth(t, node, ifname, peer, netnstest.LinkName(t, "p"))
	waitFor("veth without an address", nil) // a veth with no global address is a pod's
	node.MustRun(t, "ip", "addr", "add", "198.51.100.11/24", "dev", ifname)
	links := waitFor("node address added", []string{ifname})
	i := slices.IndexFunc(links, func(l Link) bool { return l.Name == ifname })
	if l := links[i]; l.Kind != "veth" || !slices.Contains(l.Addrs, netip.MustParsePrefix("198.51.100.11/24")) {
		t.Errorf("link %+v, want a veth holding 198.51.100.11/24", l)
	}

	node.MustRun(t, "ip", "link", "set", ifname, "down")
	waitFor("link down", nil)
	node.MustRun(t, "ip", "link", "set", ifname, "up")
	waitFor("link up", []string{ifname})

	node.MustRun(t, "ip", "addr", "del", "198.51.100.11/24", "dev", ifname)
	node.MustRun(t, "ip", "addr", "add", "2001:db8:1::11/64", "dev", ifname)
	waitFor("moved to IPv6", []string{ifname})

	node.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	node.MustRun(t, "ip", "link", "set", "br0", "up")
	node.MustRun(t, "ip", "link", "set", ifname, "master", "br0")
	waitFor("enslaved to a bridge", nil)

	node.MustRun(t, "ip", "link", "del", ifname)
	links = waitFor("link deleted", nil)
	if slices.ContainsFunc(links, func(l Link) bool { return l.Name == ifname }) {
		t.Errorf("deleted link still listed")
	}
}
