package ndp

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// FuzzResponderMessages feeds arbitrary bytes to a Responder through its
// connection: it must not panic, and whatever it writes must be a correct
// advertisement for an address it holds, answering the solicitation in
// those bytes.
func FuzzResponderMessages(f *testing.F) {
	f.Add(solicit(f, vip), byte(255), false)
	f.Add(solicit(f, vip, sourceLL(peerMAC)), byte(255), true)
	f.Add(solicit(f, vip)[:12], byte(255), false)
	f.Add([]byte{135, 0, 0, 0}, byte(255), false)
	// A solicitation with an option whose length is zero.
	f.Add(append(solicit(f, vip), 1, 0, 0, 0, 0, 0, 0, 0), byte(255), false)
	f.Add([]byte{}, byte(1), true)
	f.Fuzz(func(t *testing.T, b []byte, hopLimit byte, dad bool) {
		src := peerIP
		if dad {
			src = netip.IPv6Unspecified()
		}
		_, conn := start(t, nil, vip, vip2)
		conn.feed(t, incoming{b, &ipv6.ControlMessage{HopLimit: int(hopLimit)}, src})
		out := conn.take()
		if len(out) == 0 {
			return
		}
		if len(out) > 1 {
			t.Fatalf("wrote %d messages for one input", len(out))
		}
		m, err := ndp.ParseMessage(b)
		if err != nil {
			t.Fatalf("answered a message that does not parse: %v", err)
		}
		ns, ok := m.(*ndp.NeighborSolicitation)
		if !ok || hopLimit != 255 {
			t.Fatalf("answered %T with hop limit %d", m, hopLimit)
		}
		na, ok := out[0].m.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress != ns.TargetAddress || (na.TargetAddress != vip && na.TargetAddress != vip2) ||
			!na.Override || na.Solicited == dad || len(na.Options) != 1 {
			t.Fatalf("wrong answer %+v to %+v", out[0].m, ns)
		}
		lla, ok := na.Options[0].(*ndp.LinkLayerAddress)
		if !ok || lla.Direction != ndp.Target || !bytes.Equal(lla.Addr, ourMAC) {
			t.Fatalf("answer carries option %+v, want our target link-layer address", na.Options[0])
		}
		wantDst := src
		if dad {
			wantDst = netip.IPv6LinkLocalAllNodes()
		}
		if out[0].dst != wantDst {
			t.Fatalf("answer sent to %s, want %s", out[0].dst, wantDst)
		}
	})
}

// FuzzResponderSolicitations builds valid solicitations for fuzzed targets:
// each must get exactly one correct answer when it asks for a held
// address, and none otherwise.
func FuzzResponderSolicitations(f *testing.F) {
	f.Add(vip.AsSlice(), true)
	f.Add(vip2.AsSlice(), false)
	f.Add(vipTwin.AsSlice(), true)
	f.Add(peerIP.AsSlice(), true)
	f.Fuzz(func(t *testing.T, target []byte, withSLL bool) {
		addr, ok := netip.AddrFromSlice(target)
		if !ok || !addr.Is6() || addr.Is4In6() || addr.IsMulticast() {
			return
		}
		var opts []ndp.Option
		if withSLL {
			opts = append(opts, sourceLL(peerMAC))
		}
		_, conn := start(t, nil, vip, vip2)
		conn.feed(t, incoming{solicit(t, addr, opts...), onLink, peerIP})
		out := conn.take()
		if addr != vip && addr != vip2 {
			if len(out) != 0 {
				t.Fatalf("answered a solicitation for %s", addr)
			}
			return
		}
		if len(out) != 1 {
			t.Fatalf("wrote %d messages, want 1", len(out))
		}
		na := out[0].m.(*ndp.NeighborAdvertisement)
		if na.TargetAddress != addr || !na.Solicited || !na.Override || out[0].dst != peerIP {
			t.Fatalf("wrong answer %+v to %s", na, out[0].dst)
		}
	})
}
