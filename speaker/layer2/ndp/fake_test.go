package ndp

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// incoming is one message a fakeConn hands to ReadRaw.
type incoming struct {
	b   []byte
	cm  *ipv6.ControlMessage
	src netip.Addr
}

// written is one message written to a fakeConn.
type written struct {
	m   ndp.Message
	b   []byte // m marshalled
	cm  *ipv6.ControlMessage
	dst netip.Addr
}

// fakeConn is a Conn that a test feeds messages to and whose writes and
// group memberships it reads back.
type fakeConn struct {
	in chan incoming

	mu       sync.Mutex
	out      []written
	groups   map[netip.Addr]bool
	joinErr  error
	writeErr error
	readErr  error
	closed   chan struct{}
	isClosed bool
	deadline chan struct{}
}

func newFakeConn() *fakeConn {
	return &fakeConn{
		in:       make(chan incoming),
		groups:   map[netip.Addr]bool{},
		closed:   make(chan struct{}),
		deadline: make(chan struct{}),
	}
}

func (c *fakeConn) ReadRaw(b []byte) (int, *ipv6.ControlMessage, netip.Addr, error) {
	c.mu.Lock()
	deadline, err := c.deadline, c.readErr
	c.readErr = nil
	c.mu.Unlock()
	if err != nil {
		return 0, nil, netip.Addr{}, err
	}
	select {
	case m := <-c.in:
		return copy(b, m.b), m.cm, m.src, nil
	case <-c.closed:
		return 0, nil, netip.Addr{}, net.ErrClosed
	case <-deadline:
		return 0, nil, netip.Addr{}, os.ErrDeadlineExceeded
	}
}

func (c *fakeConn) WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error {
	b, err := ndp.MarshalMessage(m)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	c.out = append(c.out, written{m: m, b: b, cm: cm, dst: dst})
	return nil
}

func (c *fakeConn) JoinGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.joinErr != nil {
		return c.joinErr
	}
	if c.groups[g] {
		return errors.New("joined twice") // as setsockopt says EADDRINUSE
	}
	c.groups[g] = true
	return nil
}

func (c *fakeConn) LeaveGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.groups[g] {
		return errors.New("not a member")
	}
	delete(c.groups, g)
	return nil
}

func (c *fakeConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.IsZero() || t.After(time.Now()) {
		c.deadline = make(chan struct{})
		return nil
	}
	select {
	case <-c.deadline:
	default:
		close(c.deadline)
	}
	return nil
}

func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed {
		return errors.New("closed twice")
	}
	c.isClosed = true
	close(c.closed)
	return nil
}

// take returns the messages written so far and forgets them.
func (c *fakeConn) take() []written {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.out
	c.out = nil
	return out
}

// joined returns the groups joined, sorted.
func (c *fakeConn) joined() []netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []netip.Addr
	for g := range c.groups {
		out = append(out, g)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// feed hands messages to a running Responder and returns when it has
// handled them: the empty message sent last is read only after the
// previous one was handled.
func (c *fakeConn) feed(t testing.TB, ms ...incoming) {
	t.Helper()
	for _, m := range append(ms, incoming{src: peerLL}) {
		select {
		case c.in <- m:
		case <-time.After(10 * time.Second):
			t.Fatalf("the Responder does not read")
		}
	}
}

// counts is a Recorder that counts.
type counts struct {
	mu         sync.Mutex
	received   int
	answered   map[netip.Addr]int
	gratuitous map[netip.Addr]int
	failed     []error
}

func newCounts() *counts {
	return &counts{answered: map[netip.Addr]int{}, gratuitous: map[netip.Addr]int{}}
}

func (c *counts) RequestReceived(string) { c.mu.Lock(); c.received++; c.mu.Unlock() }

func (c *counts) RequestAnswered(_ string, ip netip.Addr) {
	c.mu.Lock()
	c.answered[ip]++
	c.mu.Unlock()
}

func (c *counts) GratuitousSent(_ string, ip netip.Addr) {
	c.mu.Lock()
	c.gratuitous[ip]++
	c.mu.Unlock()
}

func (c *counts) AnswerFailed(_ string, _ netip.Addr, err error) {
	c.mu.Lock()
	c.failed = append(c.failed, err)
	c.mu.Unlock()
}
