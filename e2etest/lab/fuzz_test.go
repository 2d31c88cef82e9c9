package lab

import (
	"net/netip"
	"os"
	"testing"
)

// The parsers read other programs' output; whatever that is, they must
// not panic.

func FuzzParseBIRD(f *testing.F) {
	for _, name := range []string{"testdata/bird-routes.txt", "testdata/bird-protocols.txt"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("x unicast [\n unicast [a]\n\tvia\nBGP.community: ((,)\n"))
	peers := map[string]netip.Addr{"node1_v4": netip.MustParseAddr("198.51.100.11"), "a": netip.MustParseAddr("198.51.100.12")}
	f.Fuzz(func(t *testing.T, out []byte) {
		_, _ = parseBIRDRoutes(out, peers)
		_ = parseBIRDProtocols(out, peers)
	})
}

func FuzzParseLines(f *testing.F) {
	f.Add("[2026-11-23T17:59:44.647332] [ROUTE]Deleted 203.0.113.9 nexthop via 198.51.100.11")
	f.Add("node=node2 pod=web-node2-0 client=[2001:db8:1::100]:41234")
	f.Add("3 packets transmitted, 2 received")
	f.Add("[]")
	f.Fuzz(func(t *testing.T, line string) {
		_, _ = parseMonitorLine(line)
		_ = inferObject(line, []string{"neigh", "route"})
		_, _ = parseAnswer(line)
		_ = parsePingReceived(line)
		_ = birdCommunities(line, "large:")
	})
}

func FuzzParseJSON(f *testing.F) {
	for _, name := range []string{"testdata/frr-summary.json", "testdata/frr-bgp-ipv4.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[{"dst":"203.0.113.9","protocol":"bird","nexthops":[{"gateway":"x"}]}]`))
	f.Fuzz(func(t *testing.T, out []byte) {
		_, _ = parseFRRSummary(out)
		_, _ = parseFRRRoutes(out)
		_, _ = parseKernelRoutes(out)
	})
}
