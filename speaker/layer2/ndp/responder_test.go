package ndp

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
	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

var (
	ourMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	peerMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x64}
	vip     = netip.MustParseAddr("2001:db8:1::1:c8")
	vip2    = netip.MustParseAddr("2001:db8:1::1:c9")
	// vipTwin shares vip's solicited-node group (the same low 24 bits).
	vipTwin = netip.MustParseAddr("2001:db8:2::1:c8")
	peerIP  = netip.MustParseAddr("2001:db8:1::100")
	peerLL  = netip.MustParseAddr("fe80::64").WithZone("eth0")
	ifi     = &net.Interface{Index: 7, Name: "eth0", HardwareAddr: ourMAC, MTU: 1500}
	onLink  = &ipv6.ControlMessage{HopLimit: 255}
)

// solicit returns a Neighbor Solicitation for target with the given
// options, marshalled.
func solicit(t testing.TB, target netip.Addr, opts ...ndp.Option) []byte {
	t.Helper()
	b, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: target, Options: opts})
	if err != nil {
		t.Fatalf("marshal solicitation: %v", err)
	}
	return b
}

func sourceLL(mac net.HardwareAddr) ndp.Option {
	return &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}
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

// advert is what the Responder's advertisement for target looks like.
func advert(target netip.Addr, solicited bool) *ndp.NeighborAdvertisement {
	return &ndp.NeighborAdvertisement{
		Solicited:     solicited,
		Override:      true,
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ourMAC}},
	}
}

var addrOpt = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestResponderAnswers(t *testing.T) {
	tests := []struct {
		name    string
		in      func(t testing.TB) incoming
		want    *ndp.NeighborAdvertisement // nil: no answer
		wantDst netip.Addr
	}{
		{
			name:    "multicast-solicitation",
			in:      func(t testing.TB) incoming { return incoming{solicit(t, vip, sourceLL(peerMAC)), onLink, peerIP} },
			want:    advert(vip, true),
			wantDst: peerIP,
		},
		{
			name:    "from-link-local",
			in:      func(t testing.TB) incoming { return incoming{solicit(t, vip, sourceLL(peerMAC)), onLink, peerLL} },
			want:    advert(vip, true),
			wantDst: peerLL,
		},
		{
			name:    "no-control-message",
			in:      func(t testing.TB) incoming { return incoming{solicit(t, vip), nil, peerIP} },
			want:    advert(vip, true),
			wantDst: peerIP,
		},
		{
			name: "duplicate-address-detection",
			in: func(t testing.TB) incoming {
				return incoming{solicit(t, vip), onLink, netip.IPv6Unspecified().WithZone("eth0")}
			},
			want:    advert(vip, false),
			wantDst: netip.IPv6LinkLocalAllNodes(),
		},
		{
			name: "dad-with-source-link-layer-address",
			in: func(t testing.TB) incoming {
				return incoming{solicit(t, vip, sourceLL(peerMAC)), onLink, netip.IPv6Unspecified()}
			},
		},
		{
			name: "other-address",
			in: func(t testing.TB) incoming {
				return incoming{solicit(t, netip.MustParseAddr("2001:db8:1::7")), onLink, peerIP}
			},
		},
		{
			name: "hop-limit-not-255",
			in: func(t testing.TB) incoming {
				return incoming{solicit(t, vip), &ipv6.ControlMessage{HopLimit: 64}, peerIP}
			},
		},
		{
			name: "code-not-0",
			in: func(t testing.TB) incoming {
				b := solicit(t, vip)
				b[1] = 1
				return incoming{b, onLink, peerIP}
			},
		},
		{
			name: "multicast-target",
			in: func(t testing.TB) incoming {
				b := solicit(t, vip)
				copy(b[8:], netip.MustParseAddr("ff02::1").AsSlice())
				return incoming{b, onLink, peerIP}
			},
		},
		{
			name: "our-own-solicitation",
			in:   func(t testing.TB) incoming { return incoming{solicit(t, vip, sourceLL(ourMAC)), onLink, peerIP} },
		},
		{
			name: "advertisement",
			in: func(t testing.TB) incoming {
				b, _ := ndp.MarshalMessage(advert(vip, false))
				return incoming{b, onLink, peerIP}
			},
		},
		{
			name: "truncated",
			in:   func(t testing.TB) incoming { return incoming{solicit(t, vip)[:10], onLink, peerIP} },
		},
		{
			name: "ipv4-source",
			in: func(t testing.TB) incoming {
				return incoming{solicit(t, vip), onLink, netip.MustParseAddr("198.51.100.1")}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newCounts()
			_, conn := start(t, rec, vip)
			conn.feed(t, tt.in(t))
			out := conn.take()
			if tt.want == nil {
				if len(out) != 0 {
					t.Fatalf("answered %d messages, want none", len(out))
				}
				return
			}
			if len(out) != 1 {
				t.Fatalf("answered %d messages, want 1", len(out))
			}
			got, err := ndp.ParseMessage(out[0].b)
			if err != nil {
				t.Fatalf("the answer does not parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, addrOpt); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if out[0].dst != tt.wantDst {
				t.Errorf("answer sent to %s, want %s", out[0].dst, tt.wantDst)
			}
			if out[0].cm != nil {
				t.Errorf("answer sent with control message %v, want the connection's default", out[0].cm)
			}
			if rec.received != 1 || rec.answered[vip] != 1 {
				t.Errorf("recorded %d received, %d answered; want 1, 1", rec.received, rec.answered[vip])
			}
		})
	}
}

func TestResponderGroups(t *testing.T) {
	g := func(ip netip.Addr) netip.Addr { return solicitedNode(ip) }
	r, conn := start(t, nil)
	steps := []struct {
		name string
		do   func() error
		want []netip.Addr
	}{
		{"add", func() error { return r.Add(vip) }, []netip.Addr{g(vip)}},
		{"add-again", func() error { return r.Add(vip) }, []netip.Addr{g(vip)}},
		{"add-twin", func() error { return r.Add(vipTwin) }, []netip.Addr{g(vip)}},
		{"add-other", func() error { return r.Add(vip2) }, []netip.Addr{g(vip), g(vip2)}},
		{"remove-one-twin", func() error { return r.Remove(vip) }, []netip.Addr{g(vip), g(vip2)}},
		{"remove-other-twin", func() error { return r.Remove(vipTwin) }, []netip.Addr{g(vip2)}},
		{"remove-absent", func() error { return r.Remove(vip) }, []netip.Addr{g(vip2)}},
		{"set", func() error { return r.Set([]netip.Addr{vip, vipTwin}) }, []netip.Addr{g(vip)}},
		{"set-none", func() error { return r.Set(nil) }, nil},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if diff := cmp.Diff(s.want, conn.joined(), addrOpt); diff != "" {
			t.Fatalf("%s: groups (-want +got):\n%s", s.name, diff)
		}
	}
	if g(vip) != netip.MustParseAddr("ff02::1:ff01:c8") {
		t.Errorf("solicited-node group of %s = %s", vip, g(vip))
	}
}

func TestResponderJoinFailure(t *testing.T) {
	r, conn := start(t, nil)
	conn.joinErr = syscall.ENODEV
	err := r.Add(vip)
	if !errors.Is(err, syscall.ENODEV) || !strings.HasPrefix(err.Error(), "ndp: join ff02::1:ff01:c8 for 2001:db8:1::1:c8 on eth0: ") {
		t.Errorf("Add = %v, want an ndp: error wrapping ENODEV", err)
	}
	if len(r.IPs()) != 0 {
		t.Errorf("an address whose group could not be joined is held: %v", r.IPs())
	}
}

func TestResponderRemoveStopsAnswering(t *testing.T) {
	r, conn := start(t, nil, vip, vip2)
	if err := r.Remove(vip); err != nil {
		t.Fatal(err)
	}
	conn.feed(t, incoming{solicit(t, vip), onLink, peerIP}, incoming{solicit(t, vip2), onLink, peerIP})
	out := conn.take()
	if len(out) != 1 || out[0].m.(*ndp.NeighborAdvertisement).TargetAddress != vip2 {
		t.Fatalf("after Remove(%s): answered %d messages, want one for %s", vip, len(out), vip2)
	}
	if err := r.Gratuitous(vip); !errors.Is(err, ErrNotAnswering) || !strings.HasPrefix(err.Error(), "ndp: ") {
		t.Errorf("Gratuitous(%s) after Remove = %v, want an ndp: error wrapping ErrNotAnswering", vip, err)
	}
}

// TestResponderRemoveIsImmediate removes an address while solicitations
// for it pour in: no answer may be written after Remove returns.
func TestResponderRemoveIsImmediate(t *testing.T) {
	r, conn := start(t, nil, vip)
	m := incoming{solicit(t, vip), onLink, peerIP}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case conn.in <- m:
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
		t.Fatalf("wrote %d messages, want 1", len(out))
	}
	got, err := ndp.ParseMessage(out[0].b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(advert(vip, false), got, addrOpt); diff != "" {
		t.Errorf("unsolicited advertisement (-want +got):\n%s", diff)
	}
	if out[0].dst != netip.MustParseAddr("ff02::1") {
		t.Errorf("sent to %s, want ff02::1", out[0].dst)
	}
	if rec.gratuitous[vip] != 1 {
		t.Errorf("recorded %d sent, want 1", rec.gratuitous[vip])
	}
	conn.writeErr = syscall.ENETDOWN
	if err := r.Gratuitous(vip); !errors.Is(err, syscall.ENETDOWN) || !strings.HasPrefix(err.Error(), "ndp: ") {
		t.Errorf("Gratuitous on a failing connection = %v", err)
	}
}

func TestResponderWriteFailureIsReported(t *testing.T) {
	rec := newCounts()
	_, conn := start(t, rec, vip)
	conn.mu.Lock()
	conn.writeErr = syscall.ENOBUFS
	conn.mu.Unlock()
	conn.feed(t, incoming{solicit(t, vip), onLink, peerIP})
	conn.mu.Lock()
	conn.writeErr = nil
	conn.mu.Unlock()
	conn.feed(t, incoming{solicit(t, vip), onLink, peerIP})
	if len(conn.take()) != 1 {
		t.Errorf("Run stopped answering after a failed write")
	}
	if len(rec.failed) != 1 || !errors.Is(rec.failed[0], syscall.ENOBUFS) {
		t.Errorf("recorded failures %v, want one ENOBUFS", rec.failed)
	}
}

func TestResponderRejectsAddresses(t *testing.T) {
	r, err := New(ifi, newFakeConn(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []netip.Addr{{}, netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("::ffff:198.51.100.1"),
		netip.MustParseAddr("ff02::1"), netip.MustParseAddr("::"), netip.MustParseAddr("fe80::1%eth0")} {
		if err := r.Add(bad); err == nil || !strings.HasPrefix(err.Error(), "ndp: ") {
			t.Errorf("Add(%v) = %v, want an ndp: error", bad, err)
		}
	}
	if err := r.Set([]netip.Addr{vip, netip.MustParseAddr("198.51.100.1")}); err == nil {
		t.Errorf("Set with an IPv4 address succeeded")
	}
	if len(r.IPs()) != 0 {
		t.Errorf("a failed Set changed the set: %v", r.IPs())
	}
	for _, ifi := range []*net.Interface{nil, {Name: "lo"}} {
		if _, err := New(ifi, newFakeConn(), nil); err == nil || !strings.HasPrefix(err.Error(), "ndp: ") {
			t.Errorf("New(%v) = %v, want an ndp: error", ifi, err)
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
		if err := r.Run(context.Background()); !errors.Is(err, syscall.ENETDOWN) || !strings.HasPrefix(err.Error(), "ndp: read from eth0: ") {
			t.Errorf("Run = %v, want an ndp: error wrapping ENETDOWN", err)
		}
	})
}
