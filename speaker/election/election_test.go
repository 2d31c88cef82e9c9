package election

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// nodeNames returns n node names, node-0 to node-(n-1).
func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%d", i)
	}
	return out
}

// serviceKeys returns n election keys of the shape ServiceKey returns.
func serviceKeys(n int) []string {
	out := make([]string, n)
	base := netip.MustParseAddr("203.0.113.0")
	for i := range out {
		if i%2 == 0 {
			a := base.As4()
			a[2] += byte(i >> 8)
			a[3] = byte(i)
			out[i] = netip.AddrFrom4(a).Next().String()
		} else {
			out[i] = fmt.Sprintf("2001:db8:100::%x", i)
		}
	}
	return out
}

func TestOwnerNoNodes(t *testing.T) {
	for _, nodes := range [][]string{nil, {}} {
		if got, ok := Owner(nodes, "203.0.113.1"); ok || got != "" {
			t.Errorf("Owner(%q) = %q, %v; want \"\", false", nodes, got, ok)
		}
	}
}

func TestOwnerOneNode(t *testing.T) {
	if got, ok := Owner([]string{"a"}, "203.0.113.1"); !ok || got != "a" {
		t.Errorf("Owner([a]) = %q, %v; want a, true", got, ok)
	}
}

// TestScoreStable pins the hash: every speaker, whatever it was built
// with, must compute these same scores, or two versions of the speaker
// would disagree on owners during an upgrade. The values were computed
// independently: python3 -c 'import hashlib;
// print(hashlib.sha256(b"node-a\0198.51.100.200").hexdigest()[:16])'.
func TestScoreStable(t *testing.T) {
	tests := []struct {
		node, key string
		want      uint64
	}{
		{"node-a", "198.51.100.200", 0xd1530441bf511df9},
		{"node-b", "198.51.100.200", 0xb1f968c7cb9547d0},
		{"node-a", "2001:db8:1::1:c8", 0x98d925ca1b6c747c},
		{"", "", 0x6e340b9cffb37a98},
	}
	for _, tt := range tests {
		if got := Score(tt.node, tt.key); got != tt.want {
			t.Errorf("Score(%q, %q) = %#016x, want %#016x", tt.node, tt.key, got, tt.want)
		}
	}
}

func TestOwnerIgnoresOrderAndDuplicates(t *testing.T) {
	nodes := nodeNames(7)
	keys := serviceKeys(500)
	want := make(map[string]string, len(keys))
	for _, k := range keys {
		want[k], _ = Owner(nodes, k)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		perm := slices.Clone(nodes)
		r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		if i%5 == 0 {
			perm = append(perm, perm[:3]...) // duplicates
		}
		for _, k := range keys {
			if got, _ := Owner(perm, k); got != want[k] {
				t.Fatalf("Owner(%q, %q) = %q, want %q as for %q", perm, k, got, want[k], nodes)
			}
		}
	}
}

func TestOwnerJoinAndLeave(t *testing.T) {
	keys := serviceKeys(10000)
	tests := []struct {
		name          string
		before, after []string
	}{
		{"join", nodeNames(4), nodeNames(5)},
		{"leave", nodeNames(5), nodeNames(4)},
		{"leave-middle", nodeNames(5), []string{"node-0", "node-1", "node-3", "node-4"}},
		{"first-node", nil, nodeNames(1)},
		{"last-node", nodeNames(1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			moved := 0
			for _, k := range keys {
				was, wasOK := Owner(tt.before, k)
				now, nowOK := Owner(tt.after, k)
				if was == now && wasOK == nowOK {
					continue
				}
				moved++
				// A key moves only from a node that left, or to a node
				// that joined.
				left := wasOK && !slices.Contains(tt.after, was)
				joined := nowOK && !slices.Contains(tt.before, now)
				if !left && !joined {
					t.Fatalf("key %q moved from %q to %q, but neither left nor joined", k, was, now)
				}
				if left && nowOK && slices.Contains(tt.before, now) {
					// It went to a node that was already there: that node
					// must have been the runner-up.
					if runnerUp, _ := Owner(tt.after, k); runnerUp != now {
						t.Fatalf("key %q went to %q, not the runner-up %q", k, now, runnerUp)
					}
				}
			}
			t.Logf("%d of %d keys moved", moved, len(keys))
		})
	}
}

func TestOwnerJoinTakesOnlyWhatItWins(t *testing.T) {
	before := nodeNames(3)
	after := append(slices.Clone(before), "node-new")
	for _, k := range serviceKeys(5000) {
		was, _ := Owner(before, k)
		now, _ := Owner(after, k)
		if now == "node-new" {
			// The newcomer wins exactly the keys it scores highest on.
			if Score("node-new", k) < Score(was, k) {
				t.Fatalf("node-new took %q from %q with a lower score", k, was)
			}
		} else if now != was {
			t.Fatalf("key %q moved from %q to %q when only node-new joined", k, was, now)
		}
	}
}

func TestOwnerDistribution(t *testing.T) {
	keys := serviceKeys(10000)
	for _, n := range []int{3, 10} {
		t.Run(fmt.Sprintf("%d-nodes", n), func(t *testing.T) {
			nodes := nodeNames(n)
			count := make(map[string]int)
			for _, k := range keys {
				o, _ := Owner(nodes, k)
				count[o]++
			}
			mean := float64(len(keys)) / float64(n)
			for _, node := range nodes {
				if c := float64(count[node]); c < 0.5*mean || c > 1.5*mean {
					t.Errorf("%s owns %v keys, want between %v and %v", node, c, 0.5*mean, 1.5*mean)
				}
			}
			t.Logf("owners: %v", count)
		})
	}
}

func TestOwnerTieBreak(t *testing.T) {
	// A real tie needs a SHA-256 collision; the same name twice is the
	// closest we can get, and it must not change the result.
	if got, _ := Owner([]string{"b", "b", "a"}, "k"); got != mustOwner(t, []string{"a", "b"}, "k") {
		t.Errorf("duplicates changed the owner")
	}
}

func mustOwner(t *testing.T, nodes []string, key string) string {
	t.Helper()
	o, ok := Owner(nodes, key)
	if !ok {
		t.Fatalf("Owner(%q, %q): no owner", nodes, key)
	}
	return o
}

func TestServiceKey(t *testing.T) {
	tests := []struct {
		name   string
		ips    []string
		want   string
		wantOK bool
	}{
		{"none", nil, "", false},
		{"ipv4", []string{"198.51.100.200"}, "198.51.100.200", true},
		{"ipv6", []string{"2001:db8:1::1:c8"}, "2001:db8:1::1:c8", true},
		{"dual-stack", []string{"2001:db8:1::1:c8", "198.51.100.200"}, "198.51.100.200", true},
		{"dual-stack-other-order", []string{"198.51.100.200", "2001:db8:1::1:c8"}, "198.51.100.200", true},
		{"two-ipv4", []string{"203.0.113.9", "203.0.113.10"}, "203.0.113.9", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ips []netip.Addr
			for _, s := range tt.ips {
				ips = append(ips, netip.MustParseAddr(s))
			}
			ips = append(ips, netip.Addr{}) // ignored
			got, ok := ServiceKey(ips)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ServiceKey(%v) = %q, %v; want %q, %v", tt.ips, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestDualStackStaysTogether(t *testing.T) {
	nodes := nodeNames(10)
	for i := range 1000 {
		v4 := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		keys := Keys([][]netip.Addr{{v6, v4}})
		k, _ := ServiceKey([]netip.Addr{v6, v4})
		if keys[v4] != k || keys[v6] != k {
			t.Fatalf("Keys gives %q and %q, ServiceKey %q", keys[v4], keys[v6], k)
		}
		o4, _ := Owner(nodes, keys[v4])
		o6, _ := Owner(nodes, keys[v6])
		if o4 != o6 {
			t.Fatalf("%s goes to %s but %s to %s", v4, o4, v6, o6)
		}
	}
}

func TestKeys(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name     string
		services [][]netip.Addr
		want     map[netip.Addr]string
	}{
		{"none", nil, map[netip.Addr]string{}},
		{
			"separate",
			[][]netip.Addr{{a("203.0.113.2")}, {a("203.0.113.1"), a("2001:db8::1")}},
			map[netip.Addr]string{a("203.0.113.2"): "203.0.113.2", a("203.0.113.1"): "203.0.113.1", a("2001:db8::1"): "203.0.113.1"},
		},
		{
			"shared-ipv6-only",
			// A dual-stack Service shares its IPv6 address with an
			// IPv6-only one, and a third shares an IPv4 address with the
			// first: all of them are one group.
			[][]netip.Addr{{a("2001:db8::5")}, {a("2001:db8::5"), a("203.0.113.9")}, {a("203.0.113.9"), a("203.0.113.3"), {}}},
			map[netip.Addr]string{a("2001:db8::5"): "203.0.113.3", a("203.0.113.9"): "203.0.113.3", a("203.0.113.3"): "203.0.113.3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Keys(tt.services)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Keys (-want +got):\n%s", diff)
			}
			// Any order of the Services gives the same keys.
			rev := slices.Clone(tt.services)
			slices.Reverse(rev)
			if diff := cmp.Diff(tt.want, Keys(rev)); diff != "" {
				t.Errorf("Keys of the reversed Services (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeysLongChain(t *testing.T) {
	// 10,000 Services, each sharing an address with the next: one group.
	var services [][]netip.Addr
	for i := range 10000 {
		x := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		services = append(services, []netip.Addr{x, x.Next()})
	}
	slices.Reverse(services)
	for ip, k := range Keys(services) {
		if k != "2001:db8::" {
			t.Fatalf("key of %s = %q, want 2001:db8::", ip, k)
		}
	}
}

func FuzzOwner(f *testing.F) {
	f.Add("node-a,node-b,node-c", "198.51.100.200")
	f.Add("", "")
	f.Add(",,", "2001:db8::1")
	f.Fuzz(func(t *testing.T, list, key string) {
		nodes := splitComma(list)
		got, ok := Owner(nodes, key)
		if ok != (len(nodes) > 0) {
			t.Fatalf("Owner(%q, %q) ok = %v", nodes, key, ok)
		}
		if ok && !slices.Contains(nodes, got) {
			t.Fatalf("Owner(%q, %q) = %q, not one of the nodes", nodes, key, got)
		}
		rev := slices.Clone(nodes)
		slices.Reverse(rev)
		if again, _ := Owner(rev, key); again != got {
			t.Fatalf("Owner of reversed nodes = %q, want %q", again, got)
		}
	})
}

// splitComma splits s at commas; the empty string gives no element.
func splitComma(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
