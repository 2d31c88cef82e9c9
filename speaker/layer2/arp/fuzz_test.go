package arp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// FuzzResponderFrames feeds arbitrary bytes to a Responder through its
// connection: it must not panic, and whatever it writes must be a correct
// reply to a request in those bytes.
func FuzzResponderFrames(f *testing.F) {
	f.Add(request(f, vip))
	f.Add(request(f, vip)[:20])
	f.Add(frame(f, ourMAC, peerMAC, arp.OperationRequest, peerMAC, netip.IPv4Unspecified(), zeroMAC, vip))
	f.Add(frame(f, ethernet.Broadcast, otherMAC, arp.OperationRequest, otherMAC, vip, zeroMAC, vip))
	// An ARP packet whose lengths lie: 16-byte "IPv4" addresses.
	f.Add(append(request(f, vip)[:14], []byte{0, 1, 8, 0, 6, 16, 0, 1}...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, conn := start(t, nil, vip, vip2)
		conn.feed(t, b)
		out := conn.take()
		if len(out) == 0 {
			return
		}
		if len(out) > 1 {
			t.Fatalf("wrote %d frames for one input", len(out))
		}
		var in ethernet.Frame
		var req arp.Packet
		if in.UnmarshalBinary(b) != nil || req.UnmarshalBinary(in.Payload) != nil {
			t.Fatalf("answered a frame that does not parse")
		}
		got := parse(t, out[0])
		p := got.Packet
		if p.Operation != arp.OperationReply || p.SenderIP != req.TargetIP || (p.SenderIP != vip && p.SenderIP != vip2) ||
			!bytes.Equal(p.SenderHardwareAddr, ourMAC) || !bytes.Equal(p.TargetHardwareAddr, req.SenderHardwareAddr) ||
			p.TargetIP != req.SenderIP || !bytes.Equal(got.To, req.SenderHardwareAddr) {
			t.Fatalf("wrong answer %+v to %+v", p, req)
		}
	})
}

// FuzzResponderRequests builds valid requests from fuzzed fields: each must
// get exactly one correct answer when it asks for a held address, and none
// otherwise.
func FuzzResponderRequests(f *testing.F) {
	f.Add([]byte(peerMAC), []byte{198, 51, 100, 100}, byte(200), true)
	f.Add([]byte(peerMAC), []byte{0, 0, 0, 0}, byte(201), false)
	f.Add([]byte(ourMAC), []byte{198, 51, 100, 100}, byte(200), true)
	f.Add([]byte(ethernet.Broadcast), []byte{198, 51, 100, 100}, byte(200), true)
	f.Add([]byte(peerMAC), []byte{198, 51, 100, 200}, byte(200), true)
	f.Fuzz(func(t *testing.T, mac, spa []byte, target byte, broadcast bool) {
		if len(mac) != 6 || len(spa) != 4 {
			return
		}
		sha := net.HardwareAddr(mac)
		sender := netip.AddrFrom4([4]byte(spa))
		tpa := netip.AddrFrom4([4]byte{198, 51, 100, target})
		dst := ethernet.Broadcast
		if !broadcast {
			dst = ourMAC
		}
		_, conn := start(t, nil, vip, vip2)
		conn.feed(t, frame(t, dst, sha, arp.OperationRequest, sha, sender, zeroMAC, tpa))
		out := conn.take()

		held := tpa == vip || tpa == vip2
		answerable := isUnicast(sha) && !bytes.Equal(sha, ourMAC) && sender != tpa
		if !held || !answerable {
			if len(out) != 0 {
				t.Fatalf("answered a request for %s from %s %s (held %v, answerable %v)", tpa, sha, sender, held, answerable)
			}
			return
		}
		if len(out) != 1 {
			t.Fatalf("wrote %d frames, want 1", len(out))
		}
		got := parse(t, out[0])
		want := wantReply(sha, sender, tpa)
		p := got.Packet
		if p.Operation != want.Operation || p.SenderIP != want.SenderIP || p.TargetIP != want.TargetIP ||
			!bytes.Equal(p.SenderHardwareAddr, want.SenderHardwareAddr) || !bytes.Equal(p.TargetHardwareAddr, want.TargetHardwareAddr) ||
			!bytes.Equal(got.To, sha) || !bytes.Equal(got.Frame.Destination, sha) {
			t.Fatalf("answer %+v to %s, want %+v to %s", p, got.To, want, sha)
		}
	})
}
