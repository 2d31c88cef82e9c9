package arp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"

	"github.com/ironlb/ironlb/speaker/layer2/internal/count"
	"github.com/ironlb/ironlb/speaker/layer2/internal/sockopt"
)

// ErrNotAnswering is returned by Gratuitous for an address the Responder
// does not hold.
var ErrNotAnswering = errors.New("not answering for the address")

// Recorder counts what a Responder does. Its methods are called from the
// Responder's goroutines and must be safe for concurrent use.
type Recorder = count.Recorder

// ethernetMTU is the largest Ethernet frame read: ARP frames are far
// smaller, and a longer one is cut without harm.
const ethernetMTU = 1514

// readBuffer is the receive buffer of a Listen Responder's socket: about
// 20,000 queued requests. Beyond net.core.rmem_max it needs CAP_NET_ADMIN,
// which the speaker has for BGP; without it the buffer is that limit.
const readBuffer = 4 << 20

// A Responder answers ARP requests for a set of IPv4 addresses on one
// interface. It is safe for concurrent use.
type Responder struct {
	ifname string
	mac    net.HardwareAddr
	conn   net.PacketConn
	rec    Recorder

	// mu guards ips. Replies and gratuitous packets are written under its
	// read lock, so that once Remove returns no packet for the removed
	// address goes out.
	mu  sync.RWMutex
	ips map[netip.Addr]struct{}
}

// Listen returns a Responder on the interface ifi, reading and writing
// Ethernet frames through a raw packet socket bound to ARP, with a 4 MiB
// receive buffer. It needs CAP_NET_RAW. rec may be nil.
func Listen(ifi *net.Interface, rec Recorder) (*Responder, error) {
	if err := checkInterface(ifi); err != nil {
		return nil, err
	}
	conn, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
	if err != nil {
		return nil, fmt.Errorf("arp: listen on %s: %w", ifi.Name, err)
	}
	// The default buffer (about 200 KiB) overflows in a burst of a few
	// thousand requests, which then go unanswered.
	if err := sockopt.ReadBuffer(conn, readBuffer); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("arp: listen on %s: %w", ifi.Name, err)
	}
	return New(ifi, conn, rec)
}

// New returns a Responder on the interface ifi that reads and writes whole
// Ethernet frames through conn, addressing them with *packet.Addr as a
// packet socket does. The Responder owns conn and closes it on Close.
// rec may be nil.
func New(ifi *net.Interface, conn net.PacketConn, rec Recorder) (*Responder, error) {
	if err := checkInterface(ifi); err != nil {
		return nil, err
	}
	if rec == nil {
		rec = count.Nop{}
	}
	return &Responder{
		ifname: ifi.Name,
		mac:    slices.Clone(ifi.HardwareAddr),
		conn:   conn,
		rec:    rec,
		ips:    make(map[netip.Addr]struct{}),
	}, nil
}

// checkInterface reports an interface a Responder cannot answer on.
func checkInterface(ifi *net.Interface) error {
	if ifi == nil {
		return errors.New("arp: no interface")
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("arp: interface %q has no Ethernet hardware address", ifi.Name)
	}
	return nil
}

// Interface returns the name of the interface the Responder answers on.
func (r *Responder) Interface() string { return r.ifname }

// HardwareAddr returns the hardware address the Responder answers with.
func (r *Responder) HardwareAddr() net.HardwareAddr { return slices.Clone(r.mac) }

// Add makes the Responder answer for ip, an IPv4 address.
func (r *Responder) Add(ip netip.Addr) error {
	if err := checkAddr(ip); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ips[ip] = struct{}{}
	return nil
}

// Remove makes the Responder stop answering for ip. When Remove returns,
// no reply or gratuitous ARP for ip is being sent, and none will be.
func (r *Responder) Remove(ip netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.ips, ip)
	return nil
}

// Set makes the Responder answer for exactly ips, IPv4 addresses. On error
// the set is unchanged.
func (r *Responder) Set(ips []netip.Addr) error {
	next := make(map[netip.Addr]struct{}, len(ips))
	for _, ip := range ips {
		if err := checkAddr(ip); err != nil {
			return err
		}
		next[ip] = struct{}{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ips = next
	return nil
}

// IPs returns the addresses the Responder answers for, sorted.
func (r *Responder) IPs() []netip.Addr {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]netip.Addr, 0, len(r.ips))
	for ip := range r.ips {
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// checkAddr reports an address ARP cannot answer for.
func checkAddr(ip netip.Addr) error {
	if !ip.Is4() {
		return fmt.Errorf("arp: %s is not an IPv4 address", ip)
	}
	return nil
}

// Run reads and answers requests until ctx is done, when it returns nil,
// or reading fails, when it returns the error (Linux fails a read once when
// the interface goes down). After Close, Run returns nil. A reply that
// cannot be sent is reported to the Recorder, and Run goes on.
func (r *Responder) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		_ = r.conn.SetReadDeadline(time.Now()) // unblock ReadFrom
	})
	defer stop()
	buf := make([]byte, ethernetMTU)
	for {
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || isClosed(err) {
				return nil
			}
			return fmt.Errorf("arp: read from %s: %w", r.ifname, err)
		}
		r.handle(buf[:n])
	}
}

// handle answers the frame b if it is a request for an address the
// Responder holds.
func (r *Responder) handle(b []byte) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		return
	}
	if f.EtherType != ethernet.EtherTypeARP || f.VLAN != nil || f.ServiceVLAN != nil {
		return
	}
	if bytes.Equal(f.Source, r.mac) {
		return // our own frame, looped back by the packet socket
	}
	var req arp.Packet
	if err := req.UnmarshalBinary(f.Payload); err != nil {
		return
	}
	if !isEthernetIPv4(&req) || req.Operation != arp.OperationRequest {
		return
	}
	r.rec.RequestReceived(r.ifname)
	if !bytes.Equal(f.Destination, ethernet.Broadcast) && !bytes.Equal(f.Destination, r.mac) {
		return // a unicast refresh meant for another host
	}
	if !isUnicast(req.SenderHardwareAddr) {
		return // nowhere to send the reply
	}
	if req.SenderIP == req.TargetIP {
		return // gratuitous: an announcement, not a question
	}
	r.reply(&req)
}

// reply answers req, if the Responder holds its target address.
func (r *Responder) reply(req *arp.Packet) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.ips[req.TargetIP]; !ok {
		return
	}
	p, err := arp.NewPacket(arp.OperationReply, r.mac, req.TargetIP, req.SenderHardwareAddr, req.SenderIP)
	if err == nil {
		err = r.write(p, req.SenderHardwareAddr)
	}
	if err != nil {
		r.rec.AnswerFailed(r.ifname, req.TargetIP, fmt.Errorf("arp: answer %s for %s on %s: %w", req.SenderIP, req.TargetIP, r.ifname, err))
		return
	}
	r.rec.RequestAnswered(r.ifname, req.TargetIP)
}

// Gratuitous broadcasts one gratuitous ARP request for ip, which the
// Responder must hold (ErrNotAnswering otherwise).
func (r *Responder) Gratuitous(ip netip.Addr) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.ips[ip]; !ok {
		return fmt.Errorf("arp: send gratuitous ARP for %s on %s: %w", ip, r.ifname, ErrNotAnswering)
	}
	zero := make(net.HardwareAddr, len(r.mac))
	p, err := arp.NewPacket(arp.OperationRequest, r.mac, ip, zero, ip)
	if err != nil {
		return fmt.Errorf("arp: build gratuitous ARP for %s: %w", ip, err)
	}
	if err := r.write(p, ethernet.Broadcast); err != nil {
		return fmt.Errorf("arp: send gratuitous ARP for %s on %s: %w", ip, r.ifname, err)
	}
	r.rec.GratuitousSent(r.ifname, ip)
	return nil
}

// write sends p in an Ethernet frame to dst.
func (r *Responder) write(p *arp.Packet, dst net.HardwareAddr) error {
	payload, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	f := ethernet.Frame{Destination: dst, Source: r.mac, EtherType: ethernet.EtherTypeARP, Payload: payload}
	b, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = r.conn.WriteTo(b, &packet.Addr{HardwareAddr: dst})
	return err
}

// Close stops the Responder: it closes the connection, which ends Run.
func (r *Responder) Close() error {
	r.mu.Lock()
	clear(r.ips)
	r.mu.Unlock()
	if err := r.conn.Close(); err != nil {
		return fmt.Errorf("arp: close %s: %w", r.ifname, err)
	}
	return nil
}

// isClosed reports whether err says the connection was closed.
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed)
}

// isEthernetIPv4 reports whether p maps IPv4 addresses to Ethernet
// addresses, the only kind of ARP a Responder speaks.
func isEthernetIPv4(p *arp.Packet) bool {
	return p.HardwareType == 1 && p.ProtocolType == uint16(ethernet.EtherTypeIPv4) &&
		p.HardwareAddrLength == 6 && p.IPLength == 4 &&
		p.SenderIP.Is4() && p.TargetIP.Is4()
}

// isUnicast reports whether a is an Ethernet address a reply can go to:
// neither zero nor multicast (which includes broadcast).
func isUnicast(a net.HardwareAddr) bool {
	return len(a) == 6 && a[0]&1 == 0 && !bytes.Equal(a, make(net.HardwareAddr, 6))
}
