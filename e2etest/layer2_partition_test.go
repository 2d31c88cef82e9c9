package e2etest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/ironlb/ironlb/speaker/election"
	"github.com/ironlb/ironlb/speaker/members"
)

// TestLayer2SplitBrain cuts the gossip between node1 and the two other
// nodes while all stay on the segment: each side sees the other dead, so
// node1 announces every Service and node2 and node3 announce node1's
// Services too, and the client's neighbour entries follow the last
// gratuitous packets, node1's. When the partition ends, every address has
// exactly one announcing node again, the one the election picks among all
// three, and the client's neighbour entries hold its MAC within seconds
// without the client sending a packet: an owner that kept its addresses
// announces them again when the speakers it saw dead come back.
func TestLayer2SplitBrain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := newL2Lab(t, ctx, 3, l2PoolYAML)
	if _, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "web"}}); err != nil {
		t.Fatal(err)
	}
	all := []string{"node1", "node2", "node3"}
	services := createWebServices(t, ctx, l, 6)
	owners := map[string]string{}
	count := map[string]int{} // addresses each node owns
	total := 0
	for name, ips := range services {
		key, _ := election.ServiceKey(ips)
		owners[name], _ = election.Owner(all, key)
		count[owners[name]] += len(ips)
		total += len(ips)
		waitAnnouncedBy(t, ctx, l, name, ips, owners[name])
	}
	t.Logf("owners %v", owners)
	if count["node1"] == 0 || count["node1"] == total {
		t.Fatalf("the election gave node1 %d of %d addresses: the test needs Services on both sides", count["node1"], total)
	}
	macs := map[string]string{}
	for _, n := range all {
		mac, err := l.Node(n).MAC(ctx)
		if err != nil {
			t.Fatal(err)
		}
		macs[n] = mac
	}

	partition(t, ctx, l.Node("node1"), l.Node("node2"), l.Node("node3"))
	t.Log("gossip between node1 and node2, node3 cut")
	waitMetric(t, ctx, l, "node1", "ironlb_speaker_members", 1)
	waitMetric(t, ctx, l, "node2", "ironlb_speaker_members", 2)
	// Split brain: node1 announces everything, and node2 and node3
	// together announce everything.
	waitMetric(t, ctx, l, "node1", "ironlb_speaker_layer2_announced_ips", float64(total))
	waitAnnounced(t, ctx, l, []string{"node2", "node3"}, total)
	// node1 took the other nodes' addresses last, with gratuitous
	// packets the client followed.
	for name, ips := range services {
		if owners[name] == "node1" {
			continue
		}
		for _, ip := range ips {
			bgpEventually(t, ctx, 10*time.Second, fmt.Sprintf("the client's entry for %s on node1's MAC", ip), func(ctx context.Context) (bool, string, error) {
				n, _, err := l.L2Client.Neighbor(ctx, ip)
				return n.MAC == macs["node1"], "neighbour " + n.MAC + " " + n.State, err
			})
		}
	}

	healed := time.Now()
	heal(t, ctx, l.Node("node1"))
	t.Log("partition ended")
	for _, n := range all {
		waitMetric(t, ctx, l, n, "ironlb_speaker_members", 3)
	}
	// The client's entries return to the owners without its sending a
	// packet: only a gratuitous packet can have moved them.
	for name, ips := range services {
		for _, ip := range ips {
			bgpEventually(t, ctx, 5*time.Second, fmt.Sprintf("the client's entry for %s on %s's MAC", ip, owners[name]), func(ctx context.Context) (bool, string, error) {
				n, _, err := l.L2Client.Neighbor(ctx, ip)
				return n.MAC == macs[owners[name]], "neighbour " + n.MAC + " " + n.State, err
			})
		}
	}
	t.Logf("the client's neighbour entries back on the owners %v after the partition ended", time.Since(healed).Round(time.Millisecond))
	for _, n := range all {
		waitMetric(t, ctx, l, n, "ironlb_speaker_layer2_announced_ips", float64(count[n]))
	}
	for name, ips := range services {
		waitAnnouncedBy(t, ctx, l, name, ips, owners[name])
	}
}

// partitionTable is the nftables table that cuts the gossip of a node.
const partitionTable = "ironlb_partition"

// partition drops, in n's namespace, the gossip between n and others,
// both ways; the test's end removes the rule if heal did not.
func partition(t testing.TB, ctx context.Context, n *lab.Node, others ...*lab.Node) {
	t.Helper()
	var addrs []string
	for _, o := range others {
		addrs = append(addrs, o.IPv4.String())
	}
	set := strings.Join(addrs, ", ")
	rules := fmt.Sprintf(`table inet %[1]s {
	chain input {
		type filter hook input priority filter - 10;
		ip saddr { %[2]s } meta l4proto { tcp, udp } th dport %[3]d drop
	}
	chain output {
		type filter hook output priority filter - 10;
		ip daddr { %[2]s } meta l4proto { tcp, udp } th dport %[3]d drop
	}
}
`, partitionTable, set, members.DefaultPort)
	file := filepath.Join(t.TempDir(), "partition.nft")
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := n.Exec(ctx, "nft", "-f", file); err != nil {
		t.Fatalf("partition %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(func() { _, _ = n.Exec(context.Background(), "nft", "delete", "table", "inet", partitionTable) })
}

// heal removes the partition of n.
func heal(t testing.TB, ctx context.Context, n *lab.Node) {
	t.Helper()
	if out, err := n.Exec(ctx, "nft", "delete", "table", "inet", partitionTable); err != nil {
		t.Fatalf("heal %s: %v: %s", n.Name, err, out)
	}
}

// waitMetric waits up to 30 s until node's speaker reports metric (summed
// over its labels) as want.
func waitMetric(t testing.TB, ctx context.Context, l *lab.Lab, node, metric string, want float64) {
	t.Helper()
	bgpEventually(t, ctx, 30*time.Second, fmt.Sprintf("%s's %s = %v", node, metric, want), func(ctx context.Context) (bool, string, error) {
		m, err := scrape(ctx, l.Node(node).SpeakerMetricsURL())
		return m[metric] == want, fmt.Sprintf("%s = %v", metric, m[metric]), err
	})
}

// waitAnnounced waits up to 30 s until nodes together announce want
// addresses.
func waitAnnounced(t testing.TB, ctx context.Context, l *lab.Lab, nodes []string, want int) {
	t.Helper()
	bgpEventually(t, ctx, 30*time.Second, fmt.Sprintf("%v announce %d addresses", nodes, want), func(ctx context.Context) (bool, string, error) {
		sum := 0.0
		for _, n := range nodes {
			m, err := scrape(ctx, l.Node(n).SpeakerMetricsURL())
			if err != nil {
				return false, "", err
			}
			sum += m["ironlb_speaker_layer2_announced_ips"]
		}
		return sum == float64(want), fmt.Sprintf("%v addresses", sum), nil
	})
}
