package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"golang.org/x/sys/unix"
)

// ARP is one ARP packet a capture received.
type ARP struct {
	// Time is when the kernel received the frame.
	Time time.Time
	// Operation is request or reply.
	Operation arp.Operation
	// SenderMAC is the sender hardware address, as a neighbour table
	// shows it ("02:..." in lower case).
	SenderMAC string
	// SenderIP and TargetIP are the protocol addresses.
	SenderIP, TargetIP netip.Addr
}

// Gratuitous reports whether p announces its sender's own address: a
// request or reply whose sender and target addresses are the same.
func (p ARP) Gratuitous() bool { return p.SenderIP == p.TargetIP }

// Announces returns a match function for ARPCapture.First accepting the
// gratuitous ARPs for ip.
func Announces(ip netip.Addr) func(ARP) bool {
	return func(p ARP) bool { return p.Gratuitous() && p.TargetIP == ip }
}

// ARPCapture records the ARP packets a host receives, with the kernel's
// receive time, through a packet socket in the host's namespace. Unlike
// `ip monitor`, which sees the neighbour table change, it sees every
// packet, also those that change nothing.
type ARPCapture struct {
	file *os.File
	done chan struct{}

	mu      sync.Mutex
	packets []ARP
	arrived chan struct{} // closed and replaced on each packet
	err     error         // why reading stopped
}

// CaptureARP starts recording the ARP packets the client receives on its
// segment link. Close ends it.
func (c *Client) CaptureARP() (*ARPCapture, error) {
	var f *os.File
	err := inNamespace(c.Namespace, func() error {
		var err error
		f, err = openARPSocket(segmentLink)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("capture ARP on %s: %w", c.Name, err)
	}
	cp := &ARPCapture{file: f, done: make(chan struct{}), arrived: make(chan struct{})}
	go cp.read()
	return cp, nil
}

// openARPSocket opens a non-blocking packet socket receiving the ARP
// frames of interface ifname, time-stamped by the kernel, in the current
// thread's network namespace.
func openARPSocket(ifname string) (*os.File, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	proto := htons(unix.ETH_P_ARP)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return nil, fmt.Errorf("open packet socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ask for receive times: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind to %s: %w", ifname, err)
	}
	// A non-blocking descriptor joins the runtime's poller: Close wakes a
	// pending read.
	return os.NewFile(uintptr(fd), "arp-capture-"+ifname), nil
}

// htons converts a 16-bit number to network byte order.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// read records packets until the socket is closed or fails.
func (c *ARPCapture) read() {
	defer close(c.done)
	rc, err := c.file.SyscallConn()
	if err != nil {
		c.stop(err)
		return
	}
	buf := make([]byte, 1514)
	oob := make([]byte, unix.CmsgSpace(16))
	for {
		var n, oobn int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			c.stop(err)
			return
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // the host's own
		}
		p, ok := parseARP(buf[:n], oob[:oobn])
		if !ok {
			continue
		}
		c.mu.Lock()
		c.packets = append(c.packets, p)
		close(c.arrived)
		c.arrived = make(chan struct{})
		c.mu.Unlock()
	}
}

// stop records why reading ended and wakes the waiters.
func (c *ARPCapture) stop(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(err, os.ErrClosed) {
		err = errors.New("capture closed")
	}
	c.err = err
	close(c.arrived)
}

// parseARP reads an Ethernet frame holding an ARP packet, and its receive
// time from the control message oob (SCM_TIMESTAMPNS).
func parseARP(frame, oob []byte) (ARP, bool) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return ARP{}, false
	}
	var a arp.Packet
	if err := a.UnmarshalBinary(f.Payload); err != nil {
		return ARP{}, false
	}
	p := ARP{
		Time: time.Now(), Operation: a.Operation, SenderMAC: a.SenderHardwareAddr.String(),
		SenderIP: a.SenderIP, TargetIP: a.TargetIP,
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return p, true
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			p.Time = time.Unix(sec, nsec)
		}
	}
	return p, true
}

// Packets returns every packet received so far, in order.
func (c *ARPCapture) Packets() []ARP {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ARP(nil), c.packets...)
}

// First returns the first packet received at or after since that match
// accepts, waiting for it until ctx ends.
func (c *ARPCapture) First(ctx context.Context, since time.Time, match func(ARP) bool) (ARP, error) {
	next := 0
	for {
		c.mu.Lock()
		for ; next < len(c.packets); next++ {
			if p := c.packets[next]; !p.Time.Before(since) && match(p) {
				c.mu.Unlock()
				return p, nil
			}
		}
		arrived, err := c.arrived, c.err
		c.mu.Unlock()
		if err != nil {
			return ARP{}, fmt.Errorf("wait for an ARP packet: %w", err)
		}
		select {
		case <-ctx.Done():
			return ARP{}, fmt.Errorf("wait for an ARP packet: %w", ctx.Err())
		case <-arrived:
		}
	}
}

// Close ends the capture.
func (c *ARPCapture) Close() error {
	err := c.file.Close()
	<-c.done
	return err
}
