package ndp

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"

	"github.com/ironlb/ironlb/speaker/layer2/internal/netnstest"
	"github.com/ironlb/ironlb/speaker/layer2/internal/ratetest"
	"github.com/ironlb/ironlb/speaker/layer2/internal/sockopt"
)

// BenchmarkNDPAnswers measures the Neighbor Solicitations per second a
// real Responder answers without losing one. The Responder holds 1,000
// addresses of 2001:db8:1::1:0/112 on one end of a veth pair; a requester
// on the other end solicits them in turn, each through its solicited-node
// group, at rates doubled from 1,000 per second until an advertisement is
// missing, then narrowed down. It reports answers/s and lost, as
// ratetest.Measure says.
//
// It needs root; it skips otherwise, and fails with IRONLB_REQUIRE_E2E=1.
func BenchmarkNDPAnswers(b *testing.B) {
	netnstest.Require(b)
	node := netnstest.New(b, "node")
	client := netnstest.New(b, "client")
	nodeIf, clientIf := netnstest.LinkName(b, "n"), netnstest.LinkName(b, "c")
	netnstest.Veth(b, node, nodeIf, client, clientIf)
	node.LinkLocal(b, nodeIf)
	ll := client.LinkLocal(b, clientIf)

	ips := consecutive(netip.MustParseAddr("2001:db8:1::1:0"), 1000)
	r := netnstest.Serve(b, node, nodeIf, func(ifi *net.Interface) (*Responder, error) { return Listen(ifi, nil) })
	if err := r.Set(ips); err != nil {
		b.Fatal(err)
	}

	req := newNDPRequester(b, client, clientIf, ll, ips)
	for b.Loop() {
		ratetest.Measure(b, req.Requester())
	}
}

// ndpRequester solicits, through an ICMPv6 socket, the addresses of a
// Responder and counts the advertisements that answer.
type ndpRequester struct {
	pc       *ipv6.PacketConn
	ifindex  int
	messages [][]byte
	groups   []netip.Addr
	answered atomic.Int64
}

// newNDPRequester opens an ICMPv6 socket on ll, the link-local address
// of ifname in ns, builds one solicitation for each of ips, and counts the
// advertisements it receives until the benchmark ends.
func newNDPRequester(b *testing.B, ns *netnstest.NS, ifname string, ll netip.Addr, ips []netip.Addr) *ndpRequester {
	b.Helper()
	req := &ndpRequester{}
	var ifi *net.Interface
	var conn *net.IPConn
	if err := ns.Do(func() error {
		var err error
		if ifi, err = net.InterfaceByName(ifname); err != nil {
			return err
		}
		c, err := net.ListenPacket("ip6:ipv6-icmp", ll.WithZone(ifname).String())
		if err != nil {
			return err
		}
		conn = c.(*net.IPConn)
		return nil
	}); err != nil {
		b.Fatalf("listen in %s: %v", ns.Name, err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	if err := sockopt.ReadBuffer(conn, 16<<20); err != nil {
		b.Fatal(err)
	}
	req.pc, req.ifindex = ipv6.NewPacketConn(conn), ifi.Index
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	for _, err := range []error{
		req.pc.SetChecksum(true, 2), // the kernel fills in ICMPv6's checksum
		req.pc.SetMulticastHopLimit(ndp.HopLimit),
		req.pc.SetICMPFilter(&f),
	} {
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, ip := range ips {
		m, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{
			TargetAddress: ip,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr}},
		})
		if err != nil {
			b.Fatal(err)
		}
		req.messages = append(req.messages, m)
		req.groups = append(req.groups, solicitedNode(ip))
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, maxMessage)
		for {
			n, err := conn.Read(buf) // no source address, so no zone to resolve
			if err != nil {
				return // closed
			}
			if n > 0 && ipv6.ICMPType(buf[0]) == ipv6.ICMPTypeNeighborAdvertisement {
				req.answered.Add(1)
			}
		}
	}()
	b.Cleanup(func() {
		_ = conn.Close()
		<-stopped
	})
	return req
}

// Requester returns the requester for ratetest: request i solicits the
// i-th address, in turn.
func (req *ndpRequester) Requester() ratetest.Requester {
	// No zone: the control message names the interface. Go resolves a
	// zone through its process-wide table of interfaces, which a thread
	// outside the requester's namespace would reload on every write.
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, IfIndex: req.ifindex}
	return ratetest.Requester{
		Send: func(i int) error {
			k := i % len(req.messages)
			_, err := req.pc.WriteTo(req.messages[k], cm, &net.IPAddr{IP: req.groups[k].AsSlice()})
			return err
		},
		Answered: req.answered.Load,
	}
}
