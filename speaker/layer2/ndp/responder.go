package ndp

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

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"

	"github.com/ironlb/ironlb/speaker/layer2/internal/count"
)

// ErrNotAnswering is returned by Gratuitous for an address the Responder
// does not hold.
var ErrNotAnswering = errors.New("not answering for the address")

// Conn is the connection a Responder reads solicitations from and writes
// advertisements to. *ndp.Conn is one.
type Conn interface {
	// ReadRaw reads one ICMPv6 message into b, and returns its length,
	// its control message (nil when none was asked for) and its source.
	ReadRaw(b []byte) (int, *ipv6.ControlMessage, netip.Addr, error)
	// WriteTo sends m to dst; a nil cm means the connection's default
	// (hop limit 255, source its link-local address).
	WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error
	// JoinGroup joins the multicast group on the interface.
	JoinGroup(group netip.Addr) error
	// LeaveGroup leaves the multicast group on the interface.
	LeaveGroup(group netip.Addr) error
	// SetReadDeadline sets when ReadRaw gives up.
	SetReadDeadline(t time.Time) error
	// Close closes the connection.
	Close() error
}

// Recorder counts what a Responder does. Its methods are called from the
// Responder's goroutines and must be safe for concurrent use.
type Recorder = count.Recorder

// maxMessage is the longest ICMPv6 message read: solicitations are far
// smaller, and a longer message is cut.
const maxMessage = 1500

// A Responder answers Neighbor Solicitations for a set of IPv6 addresses on
// one interface. It is safe for concurrent use.
type Responder struct {
	ifname string
	mac    net.HardwareAddr
	conn   Conn
	rec    Recorder

	// mu guards ips and groups. Advertisements are written under its read
	// lock, so that once Remove returns no packet for the removed address
	// goes out.
	mu     sync.RWMutex
	ips    map[netip.Addr]struct{}
	groups map[netip.Addr]int // solicited-node group → addresses in it
}

// Listen returns a Responder on the interface ifi, reading and writing
// through an ICMPv6 socket bound to the interface's link-local address,
// which the interface must have (and not be tentative: set accept_dad=0 on
// links that must answer at once). The solicited-node groups of its
// addresses are joined on other sockets, which hold up to 1,000 each, so
// that the number of addresses is not limited by a socket's option memory.
// It needs CAP_NET_RAW. rec may be nil.
func Listen(ifi *net.Interface, rec Recorder) (*Responder, error) {
	if err := checkInterface(ifi); err != nil {
		return nil, err
	}
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, fmt.Errorf("ndp: listen on %s: %w", ifi.Name, err)
	}
	if err := c.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("ndp: ask for hop limits on %s: %w", ifi.Name, err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborSolicitation)
	if err := c.SetICMPFilter(&f); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("ndp: filter solicitations on %s: %w", ifi.Name, err)
	}
	g, err := newGroups(ifi.Index)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return New(ifi, groupConn{Conn: c, groups: g}, rec)
}

// New returns a Responder on the interface ifi that reads and writes
// through conn. The Responder owns conn and closes it on Close. rec may be
// nil.
func New(ifi *net.Interface, conn Conn, rec Recorder) (*Responder, error) {
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
		groups: make(map[netip.Addr]int),
	}, nil
}

// checkInterface reports an interface a Responder cannot answer on.
func checkInterface(ifi *net.Interface) error {
	if ifi == nil {
		return errors.New("ndp: no interface")
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("ndp: interface %q has no Ethernet hardware address", ifi.Name)
	}
	return nil
}

// Interface returns the name of the interface the Responder answers on.
func (r *Responder) Interface() string { return r.ifname }

// HardwareAddr returns the hardware address the Responder answers with.
func (r *Responder) HardwareAddr() net.HardwareAddr { return slices.Clone(r.mac) }

// Add makes the Responder answer for ip, an IPv6 address, joining its
// solicited-node multicast group.
func (r *Responder) Add(ip netip.Addr) error {
	if err := checkAddr(ip); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.add(ip)
}

// add is Add with r.mu held.
func (r *Responder) add(ip netip.Addr) error {
	if _, ok := r.ips[ip]; ok {
		return nil
	}
	group := solicitedNode(ip)
	if r.groups[group] == 0 {
		if err := r.conn.JoinGroup(group); err != nil {
			return fmt.Errorf("ndp: join %s for %s on %s: %w", group, ip, r.ifname, err)
		}
	}
	r.groups[group]++
	r.ips[ip] = struct{}{}
	return nil
}

// Remove makes the Responder stop answering for ip, and leaves its
// solicited-node group if no other address needs it. When Remove returns,
// no advertisement for ip is being sent, and none will be, even if leaving
// the group failed.
func (r *Responder) Remove(ip netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.remove(ip)
}

// remove is Remove with r.mu held.
func (r *Responder) remove(ip netip.Addr) error {
	if _, ok := r.ips[ip]; !ok {
		return nil
	}
	delete(r.ips, ip)
	group := solicitedNode(ip)
	r.groups[group]--
	if r.groups[group] > 0 {
		return nil
	}
	delete(r.groups, group)
	if err := r.conn.LeaveGroup(group); err != nil {
		return fmt.Errorf("ndp: leave %s for %s on %s: %w", group, ip, r.ifname, err)
	}
	return nil
}

// Set makes the Responder answer for exactly ips, IPv6 addresses. It
// stops answering for the others first. On error, the set holds the
// addresses that could be added.
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
	var errs []error
	for ip := range r.ips {
		if _, ok := next[ip]; !ok {
			errs = append(errs, r.remove(ip))
		}
	}
	for ip := range next {
		errs = append(errs, r.add(ip))
	}
	return errors.Join(errs...)
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

// checkAddr reports an address NDP cannot answer for.
func checkAddr(ip netip.Addr) error {
	if !ip.Is6() || ip.Is4In6() || ip.Zone() != "" || ip.IsMulticast() || ip.IsUnspecified() {
		return fmt.Errorf("ndp: %s is not an IPv6 unicast address", ip)
	}
	return nil
}

// solicitedNode returns the solicited-node multicast group of ip, an IPv6
// address.
func solicitedNode(ip netip.Addr) netip.Addr {
	g, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		panic(err) // unreachable: checkAddr admitted ip
	}
	return g
}

// Run reads and answers solicitations until ctx is done, when it returns
// nil, or reading fails, when it returns the error. After Close, Run
// returns nil. An answer that cannot be sent is reported to the Recorder,
// and Run goes on.
func (r *Responder) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		_ = r.conn.SetReadDeadline(time.Now()) // unblock ReadRaw
	})
	defer stop()
	buf := make([]byte, maxMessage)
	for {
		n, cm, src, err := r.conn.ReadRaw(buf)
		if err != nil {
			if ctx.Err() != nil || isClosed(err) {
				return nil
			}
			return fmt.Errorf("ndp: read from %s: %w", r.ifname, err)
		}
		r.handle(buf[:n], cm, src)
	}
}

// handle answers the ICMPv6 message b, from src, if it is a valid
// solicitation for an address the Responder holds.
func (r *Responder) handle(b []byte, cm *ipv6.ControlMessage, src netip.Addr) {
	m, err := ndp.ParseMessage(b)
	if err != nil {
		return
	}
	ns, ok := m.(*ndp.NeighborSolicitation)
	if !ok {
		return
	}
	if b[1] != 0 {
		return // RFC 4861 7.1.1: the code must be 0
	}
	if cm != nil && cm.HopLimit != ndp.HopLimit {
		return // RFC 4861 7.1.1: sent from off the link
	}
	if !src.Is6() || src.Is4In6() || src.IsMulticast() {
		return
	}
	target := ns.TargetAddress
	if target.IsMulticast() {
		return
	}
	r.rec.RequestReceived(r.ifname)
	dad := src.WithZone("").IsUnspecified()
	if dad && hasSourceLinkLayer(ns.Options) {
		return // RFC 4861 7.1.1: no source link-layer address from ::
	}
	if !dad {
		if sll, ok := sourceLinkLayer(ns.Options); ok && bytes.Equal(sll, r.mac) {
			return // our own host asking: not a question for us
		}
	}
	r.answer(target, src, dad)
}

// answer sends the advertisement for target that answers a solicitation
// from src, if the Responder holds target.
func (r *Responder) answer(target, src netip.Addr, dad bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.ips[target]; !ok {
		return
	}
	na := r.advertisement(target)
	dst := src
	if dad {
		// RFC 4861 7.2.4: the soliciting host has no address yet; tell
		// every node, unsolicited.
		dst = netip.IPv6LinkLocalAllNodes()
	} else {
		na.Solicited = true
	}
	if err := r.conn.WriteTo(na, nil, dst); err != nil {
		r.rec.AnswerFailed(r.ifname, target, fmt.Errorf("ndp: answer %s for %s on %s: %w", src, target, r.ifname, err))
		return
	}
	r.rec.RequestAnswered(r.ifname, target)
}

// Gratuitous sends one unsolicited Neighbor Advertisement for ip, with the
// Override flag, to all nodes. The Responder must hold ip
// (ErrNotAnswering otherwise).
func (r *Responder) Gratuitous(ip netip.Addr) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.ips[ip]; !ok {
		return fmt.Errorf("ndp: send unsolicited advertisement for %s on %s: %w", ip, r.ifname, ErrNotAnswering)
	}
	if err := r.conn.WriteTo(r.advertisement(ip), nil, netip.IPv6LinkLocalAllNodes()); err != nil {
		return fmt.Errorf("ndp: send unsolicited advertisement for %s on %s: %w", ip, r.ifname, err)
	}
	r.rec.GratuitousSent(r.ifname, ip)
	return nil
}

// advertisement returns an unsolicited advertisement for target.
func (r *Responder) advertisement(target netip.Addr) *ndp.NeighborAdvertisement {
	return &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      r.mac,
		}},
	}
}

// Close stops the Responder: it stops answering and closes the
// connection, which ends Run. Closing the connection leaves its groups.
func (r *Responder) Close() error {
	r.mu.Lock()
	clear(r.ips)
	clear(r.groups)
	r.mu.Unlock()
	if err := r.conn.Close(); err != nil {
		return fmt.Errorf("ndp: close %s: %w", r.ifname, err)
	}
	return nil
}

// isClosed reports whether err says the connection was closed.
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed)
}

// hasSourceLinkLayer reports whether opts hold a Source Link-Layer Address
// option.
func hasSourceLinkLayer(opts []ndp.Option) bool {
	_, ok := sourceLinkLayer(opts)
	return ok
}

// sourceLinkLayer returns the address of the Source Link-Layer Address
// option in opts.
func sourceLinkLayer(opts []ndp.Option) (net.HardwareAddr, bool) {
	for _, o := range opts {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Source {
			return lla.Addr, true
		}
	}
	return nil, false
}
