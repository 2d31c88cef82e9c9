package arp

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"

	"github.com/ironlb/ironlb/speaker/layer2/internal/netnstest"
	"github.com/ironlb/ironlb/speaker/layer2/internal/ratetest"
	"github.com/ironlb/ironlb/speaker/layer2/internal/sockopt"
)

// BenchmarkARPAnswers measures the ARP requests per second a real
// Responder answers without losing one. The Responder holds every address
// of 198.51.100.0/24 and 203.0.113.0/24 but the requester's own (511: the
// IPv4 documentation ranges hold no more, and the Responder looks an
// address up in a map, whatever their number) on one end of a veth pair;
// a requester on the other end asks for them in turn, at rates doubled
// from 1,000 per second until a reply is missing, then narrowed down.
// It reports answers/s and lost, as ratetest.Measure says.
//
// It needs root; it skips otherwise, and fails with IRONLB_REQUIRE_E2E=1.
func BenchmarkARPAnswers(b *testing.B) {
	netnstest.Require(b)
	node := netnstest.New(b, "node")
	client := netnstest.New(b, "client")
	nodeIf, clientIf := netnstest.LinkName(b, "n"), netnstest.LinkName(b, "c")
	netnstest.Veth(b, node, nodeIf, client, clientIf)
	// Neither end holds an IPv4 address: no kernel answers or asks.
	nodeMAC, err := net.ParseMAC(node.MAC(b, nodeIf))
	if err != nil {
		b.Fatal(err)
	}

	sender := netip.MustParseAddr("198.51.100.100")
	var ips []netip.Addr
	for _, s := range []string{"198.51.100.0/24", "203.0.113.0/24"} {
		p := netip.MustParsePrefix(s)
		for a := p.Addr(); p.Contains(a); a = a.Next() {
			if a != sender {
				ips = append(ips, a)
			}
		}
	}
	r := netnstest.Serve(b, node, nodeIf, func(ifi *net.Interface) (*Responder, error) { return Listen(ifi, nil) })
	if err := r.Set(ips); err != nil {
		b.Fatal(err)
	}

	req := newARPRequester(b, client, clientIf, nodeMAC, sender, ips)
	for b.Loop() {
		ratetest.Measure(b, req.Requester())
	}
	if st, err := r.conn.(*packet.Conn).Stats(); err == nil {
		b.Logf("the Responder's socket received %d requests and dropped %d", st.Packets, st.Drops)
	}
	if drops := req.drops(b); drops > 0 {
		b.Errorf("the requester's socket dropped %d replies: the losses it counted may not be the Responder's", drops)
	}
}

// arpRequester asks, through a packet socket, for the addresses of a
// Responder and counts its replies.
type arpRequester struct {
	conn     *packet.Conn
	frames   [][]byte
	answered atomic.Int64
}

// newARPRequester opens a packet socket on ifname in ns, builds one
// broadcast request from sender for each of ips, and counts the replies
// from responder until the benchmark ends.
func newARPRequester(b *testing.B, ns *netnstest.NS, ifname string, responder net.HardwareAddr, sender netip.Addr, ips []netip.Addr) *arpRequester {
	b.Helper()
	req := &arpRequester{}
	var ifi *net.Interface
	if err := ns.Do(func() error {
		var err error
		if ifi, err = net.InterfaceByName(ifname); err != nil {
			return err
		}
		req.conn, err = packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
		return err
	}); err != nil {
		b.Fatalf("listen in %s: %v", ns.Name, err)
	}
	if err := sockopt.ReadBuffer(req.conn, 16<<20); err != nil {
		b.Fatal(err)
	}
	for _, ip := range ips {
		p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, sender, ethernet.Broadcast, ip)
		if err != nil {
			b.Fatal(err)
		}
		payload, err := p.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		f := ethernet.Frame{Destination: ethernet.Broadcast, Source: ifi.HardwareAddr, EtherType: ethernet.EtherTypeARP, Payload: payload}
		frame, err := f.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		req.frames = append(req.frames, frame)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, ethernetMTU)
		for {
			n, _, err := req.conn.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			if isReplyFrom(buf[:n], responder) {
				req.answered.Add(1)
			}
		}
	}()
	b.Cleanup(func() {
		_ = req.conn.Close()
		<-stopped
	})
	return req
}

// isReplyFrom reports whether frame is an ARP reply sent by mac.
func isReplyFrom(frame []byte, mac net.HardwareAddr) bool {
	const opOffset = 14 + 6 // Ethernet header, then ARP's hardware and protocol fields
	return len(frame) >= opOffset+2 &&
		bytes.Equal(frame[6:12], mac) &&
		binary.BigEndian.Uint16(frame[12:14]) == uint16(ethernet.EtherTypeARP) &&
		binary.BigEndian.Uint16(frame[opOffset:]) == uint16(arp.OperationReply)
}

// Requester returns the requester for ratetest: request i asks for the
// i-th address, in turn.
func (req *arpRequester) Requester() ratetest.Requester {
	dst := &packet.Addr{HardwareAddr: ethernet.Broadcast}
	return ratetest.Requester{
		Send: func(i int) error {
			_, err := req.conn.WriteTo(req.frames[i%len(req.frames)], dst)
			return err
		},
		Answered: req.answered.Load,
	}
}

// drops returns the frames the requester's socket dropped since the last
// call.
func (req *arpRequester) drops(b *testing.B) uint32 {
	b.Helper()
	st, err := req.conn.Stats()
	if err != nil {
		b.Fatal(err)
	}
	return st.Drops
}
