package arp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

var (
	ourMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	peerMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x64}
	otherMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x12}
	zeroMAC  = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	vip      = netip.MustParseAddr("198.51.100.200")
	vip2     = netip.MustParseAddr("198.51.100.201")
	peerIP   = netip.MustParseAddr("198.51.100.100")
	ifi      = &net.Interface{Index: 7, Name: "eth0", HardwareAddr: ourMAC, MTU: 1500}
)

// frame returns an Ethernet frame from src to dst holding the ARP packet
// built from the rest of the arguments.
func frame(t testing.TB, dst, src net.HardwareAddr, op arp.Operation, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, sha, spa, tha, tpa)
	if err != nil {
		t.Fatalf("arp.NewPacket: %v", err)
	}
	return marshal(t, dst, src, p)
}

// marshal returns p in an Ethernet frame from src to dst.
func marshal(t testing.TB, dst, src net.HardwareAddr, p *arp.Packet) []byte {
	t.Helper()
	payload, err := p.MarshalBinary()
	if err != nil {
		t.Fatalf("marshal ARP: %v", err)
	}
	f := ethernet.Frame{Destination: dst, Source: src, EtherType: ethernet.EtherTypeARP, Payload: payload}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatalf("marshal Ethernet: %v", err)
	}
	return b
}

// request returns a broadcast ARP request from the peer for tpa.
func request(t testing.TB, tpa netip.Addr) []byte {
	return frame(t, ethernet.Broadcast, peerMAC, arp.OperationRequest, peerMAC, peerIP, zeroMAC, tpa)
}

// parsed is a frame written by a Responder, decoded.
type parsed struct {
	To       net.HardwareAddr // the packet.Addr it was written to
	Frame    ethernet.Frame
	Packet   arp.Packet
	FrameLen int
}

func parse(t testing.TB, s sent) parsed {
	t.Helper()
	var p parsed
	a, ok := s.addr.(*packet.Addr)
	if !ok {
		t.Fatalf("written to %T, want *packet.Addr", s.addr)
	}
	p.To = a.HardwareAddr
	if err := p.Frame.UnmarshalBinary(s.b); err != nil {
		t.Fatalf("written frame: %v", err)
	}
	if err := p.Packet.UnmarshalBinary(p.Frame.Payload); err != nil {
		t.Fatalf("written ARP packet: %v", err)
	}
	p.FrameLen = len(s.b)
	return p
}

// start returns a running Responder holding ips, and its connection.
func start(t testing.TB, rec Recorder, ips ...netip.Addr) (*Responder, *fakeConn) {
	t.Helper()
	conn := newFakeConn()
	r, err := New(ifi, conn, rec)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := r.Set(ips); err != nil {
		t.Fatalf("Set: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	return r, conn
}

// reply is what a correct answer from the Responder to a request from
// (mac, ip) for target looks like.
func wantReply(mac net.HardwareAddr, ip, target netip.Addr) *arp.Packet {
	return &arp.Packet{
		HardwareType: 1, ProtocolType: uint16(ethernet.EtherTypeIPv4), HardwareAddrLength: 6, IPLength: 4,
		Operation:          arp.OperationReply,
		SenderHardwareAddr: ourMAC, SenderIP: target,
		TargetHardwareAddr: mac, TargetIP: ip,
	}
}

var packetOpts = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestResponderAnswers(t *testing.T) {
	tests := []struct {
		name  string
		frame func(t testing.TB) []byte
		want  *arp.Packet // nil: no answer
	}{
		{
			name:  "broadcast-request",
			frame: func(t testing.TB) []byte { return request(t, vip) },
			want:  wantReply(peerMAC, peerIP, vip),
		},
		{
			name: "unicast-request-to-us",
			frame: func(t testing.TB) []byte {
				return frame(t, ourMAC, peerMAC, arp.OperationRequest, peerMAC, peerIP, ourMAC, vip)
			},
			want: wantReply(peerMAC, peerIP, vip),
		},
		{
			name: "probe",
			frame: func(t testing.TB) []byte {
				return frame(t, ethernet.Broadcast, peerMAC, arp.OperationRequest, peerMAC, netip.IPv4Unspecified(), zeroMAC, vip)
			},
			want: wantReply(peerMAC, netip.IPv4Unspecified(), vip),
		},
		{
			name:  "other-address",
			frame: func(t testing.TB) []byte { return request(t, netip.MustParseAddr("198.51.100.7")) },
		},
		{
			name: "unicast-request-to-another-host",
			frame: func(t testing.TB) []byte {
				return frame(t, otherMAC, peerMAC, arp.OperationRequest, peerMAC, peerIP, otherMAC, vip)
			},
		},
		{
			name: "reply",
			frame: func(t testing.TB) []byte {
				return frame(t, ethernet.Broadcast, peerMAC, arp.OperationReply, peerMAC, peerIP, zeroMAC, vip)
			},
		},
		{
			name: "gratuitous-from-another-host",
			frame: func(t testing.TB) []byte {
				return frame(t, ethernet.Broadcast, otherMAC, arp.OperationRequest, otherMAC, vip, zeroMAC, vip)
			},
		},
		{
			name: "our-own-frame",
			frame: func(t testing.TB) []byte {
				return frame(t, ethernet.Broadcast, ourMAC, arp.OperationRequest, ourMAC, peerIP, zeroMAC, vip)
			},
		},
		{
			name: "sender-hardware-address-broadcast",
			frame: func(t testing.TB) []byte {
				return frame(t, ethernet.Broadcast, peerMAC, arp.OperationRequest, ethernet.Broadcast, peerIP, zeroMAC, vip)
			},
		},
		{
			name: "vlan-tagged",
			frame: func(t testing.TB) []byte {
				p, _ := arp.NewPacket(arp.OperationRequest, peerMAC, peerIP, zeroMAC, vip)
				payload, _ := p.MarshalBinary()
				f := ethernet.Frame{Destination: ethernet.Broadcast, Source: peerMAC, VLAN: &ethernet.VLAN{ID: 10}, EtherType: ethernet.EtherTypeARP, Payload: payload}
				b, _ := f.MarshalBinary()
				return b
			},
		},
		{
			name: "not-arp",
			frame: func(t testing.TB) []byte {
				f := ethernet.Frame{Destination: ethernet.Broadcast, Source: peerMAC, EtherType: ethernet.EtherTypeIPv4, Payload: make([]byte, 46)}
				b, _ := f.MarshalBinary()
				return b
			},
		},
		{
			name: "not-ethernet-hardware",
			frame: func(t testing.TB) []byte {
				p, _ := arp.NewPacket(arp.OperationRequest, peerMAC, peerIP, zeroMAC, vip)
				p.HardwareType = 6
				return marshal(t, ethernet.Broadcast, peerMAC, p)
			},
		},
		{
			name: "truncated",
			frame: func(t testing.TB) []byte {
				return request(t, vip)[:14+20]
			},
		},
		{
			name:  "empty",
			frame: func(testing.TB) []byte { return nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newCounts()
			_, conn := start(t, rec, vip)
			conn.feed(t, tt.frame(t))
			out := conn.take()
			if tt.want == nil {
				if len(out) != 0 {
					t.Fatalf("answered %d frames, want none", len(out))
				}
				return
			}
			if len(out) != 1 {
				t.Fatalf("answered %d frames, want 1", len(out))
			}
			got := parse(t, out[0])
			if diff := cmp.Diff(tt.want, &got.Packet, packetOpts); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
			if got.To.String() != tt.want.TargetHardwareAddr.String() || got.Frame.Destination.String() != tt.want.TargetHardwareAddr.String() {
				t.Errorf("reply sent to %s (frame to %s), want %s", got.To, got.Frame.Destination, tt.want.TargetHardwareAddr)
			}
			if got.Frame.Source.String() != ourMAC.String() || got.Frame.EtherType != ethernet.EtherTypeARP {
				t.Errorf("reply frame from %s type %v, want from %s type ARP", got.Frame.Source, got.Frame.EtherType, ourMAC)
			}
			if got.FrameLen < 60 {
				t.Errorf("reply frame is %d bytes, shorter than Ethernet's minimum of 60", got.FrameLen)
			}
			if rec.received != 1 || rec.answered[vip] != 1 {
				t.Errorf("recorded %d received, %d answered; want 1, 1", rec.received, rec.answered[vip])
			}
		})
	}
}

func TestResponderRemoveStopsAnswering(t *testing.T) {
	r, conn := start(t, nil, vip, vip2)
	conn.feed(t, request(t, vip), request(t, vip2))
	if got := len(conn.take()); got != 2 {
		t.Fatalf("answered %d requests, want 2", got)
	}
	if err := r.Remove(vip); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	conn.feed(t, request(t, vip), request(t, vip2))
	out := conn.take()
	if len(out) != 1 || parse(t, out[0]).Packet.SenderIP != vip2 {
		t.Fatalf("after Remove(%s): answered %d frames, want one for %s", vip, len(out), vip2)
	}
	if err := r.Gratuitous(vip); !errors.Is(err, ErrNotAnswering) {
		t.Errorf("Gratuitous(%s) after Remove = %v, want ErrNotAnswering", vip, err)
	}
	if diff := cmp.Diff([]netip.Addr{vip2}, r.IPs(), packetOpts); diff != "" {
		t.Errorf("IPs (-want +got):\n%s", diff)
	}
}

// TestResponderRemoveIsImmediate removes an address while requests for it
// pour in: no answer may be written after Remove returns.
func TestResponderRemoveIsImmediate(t *testing.T) {
	r, conn := start(t, nil, vip)
	req := request(t, vip)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case conn.in <- req:
			case <-stop:
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	if err := r.Remove(vip); err != nil {
		t.Fatal(err)
	}
	before := len(conn.take())
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	if after := len(conn.take()); after != 0 {
		t.Errorf("%d answers written after Remove returned (%d before)", after, before)
	}
	if before == 0 {
		t.Errorf("no answer before Remove: the test proves nothing")
	}
}

func TestResponderGratuitous(t *testing.T) {
	rec := newCounts()
	r, conn := start(t, rec, vip)
	if err := r.Gratuitous(vip); err != nil {
		t.Fatalf("Gratuitous: %v", err)
	}
	out := conn.take()
	if len(out) != 1 {
		t.Fatalf("wrote %d frames, want 1", len(out))
	}
	got := parse(t, out[0])
	want := &arp.Packet{
		HardwareType: 1, ProtocolType: uint16(ethernet.EtherTypeIPv4), HardwareAddrLength: 6, IPLength: 4,
		Operation:          arp.OperationRequest,
		SenderHardwareAddr: ourMAC, SenderIP: vip,
		TargetHardwareAddr: zeroMAC, TargetIP: vip,
	}
	if diff := cmp.Diff(want, &got.Packet, packetOpts); diff != "" {
		t.Errorf("gratuitous ARP (-want +got):\n%s", diff)
	}
	if got.To.String() != ethernet.Broadcast.String() || got.Frame.Destination.String() != ethernet.Broadcast.String() {
		t.Errorf("sent to %s, frame to %s; want broadcast", got.To, got.Frame.Destination)
	}
	if rec.gratuitous[vip] != 1 {
		t.Errorf("recorded %d gratuitous, want 1", rec.gratuitous[vip])
	}
	// Its own gratuitous ARP, looped back by the socket, is not answered.
	conn.feed(t, out[0].b)
	if out := conn.take(); len(out) != 0 {
		t.Errorf("answered its own gratuitous ARP")
	}
	if err := r.Gratuitous(vip2); !errors.Is(err, ErrNotAnswering) || !strings.HasPrefix(err.Error(), "arp: ") {
		t.Errorf("Gratuitous(%s) = %v, want ErrNotAnswering prefixed with arp:", vip2, err)
	}
}

func TestResponderWriteFailureIsReported(t *testing.T) {
	rec := newCounts()
	_, conn := start(t, rec, vip)
	conn.mu.Lock()
	conn.writeErr = syscall.ENOBUFS
	conn.mu.Unlock()
	conn.feed(t, request(t, vip))
	conn.mu.Lock()
	conn.writeErr = nil
	conn.mu.Unlock()
	conn.feed(t, request(t, vip)) // Run goes on
	if len(conn.take()) != 1 {
		t.Errorf("Run stopped answering after a failed write")
	}
	if len(rec.failed) != 1 || !errors.Is(rec.failed[0], syscall.ENOBUFS) || !strings.HasPrefix(rec.failed[0].Error(), "arp: ") {
		t.Errorf("recorded failures %v, want one ENOBUFS prefixed with arp:", rec.failed)
	}
}

func TestResponderSet(t *testing.T) {
	r, err := New(ifi, newFakeConn(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set([]netip.Addr{vip2, vip, vip}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]netip.Addr{vip, vip2}, r.IPs(), packetOpts); diff != "" {
		t.Errorf("IPs (-want +got):\n%s", diff)
	}
	err = r.Set([]netip.Addr{vip, netip.MustParseAddr("2001:db8::1")})
	if err == nil || !strings.HasPrefix(err.Error(), "arp: ") {
		t.Errorf("Set with an IPv6 address = %v, want an arp: error", err)
	}
	if diff := cmp.Diff([]netip.Addr{vip, vip2}, r.IPs(), packetOpts); diff != "" {
		t.Errorf("a failed Set changed the set (-want +got):\n%s", diff)
	}
	for _, bad := range []netip.Addr{{}, netip.MustParseAddr("::ffff:198.51.100.1"), netip.MustParseAddr("2001:db8::1")} {
		if err := r.Add(bad); err == nil {
			t.Errorf("Add(%v) succeeded", bad)
		}
	}
	if r.Interface() != "eth0" || r.HardwareAddr().String() != ourMAC.String() {
		t.Errorf("Interface, HardwareAddr = %s, %s", r.Interface(), r.HardwareAddr())
	}
}

func TestNewRejectsInterface(t *testing.T) {
	for _, ifi := range []*net.Interface{nil, {Name: "lo"}, {Name: "ib0", HardwareAddr: make(net.HardwareAddr, 20)}} {
		if _, err := New(ifi, newFakeConn(), nil); err == nil || !strings.HasPrefix(err.Error(), "arp: ") {
			t.Errorf("New(%v) = %v, want an arp: error", ifi, err)
		}
	}
}

func TestRunStops(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		conn := newFakeConn()
		r, _ := New(ifi, conn, nil)
		done := make(chan error, 1)
		go func() { done <- r.Run(context.Background()) }()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Errorf("Run after Close = %v, want nil", err)
		}
	})
	t.Run("read-error", func(t *testing.T) {
		conn := newFakeConn()
		conn.readErr = syscall.ENETDOWN
		r, _ := New(ifi, conn, nil)
		err := r.Run(context.Background())
		if !errors.Is(err, syscall.ENETDOWN) || !strings.HasPrefix(err.Error(), "arp: read from eth0: ") {
			t.Errorf("Run = %v, want an arp: error wrapping ENETDOWN", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		r, _ := New(ifi, newFakeConn(), nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		time.Sleep(10 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	})
}
