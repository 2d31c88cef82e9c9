package arp

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"
)

// fakeConn is a net.PacketConn that a test feeds frames to and whose
// writes it reads back.
type fakeConn struct {
	in chan []byte

	mu       sync.Mutex
	out      []sent
	closed   chan struct{}
	isClosed bool
	deadline chan struct{} // closed when a past read deadline is set
	readErr  error         // returned by the next read, if set
	writeErr error         // returned by every write, if set
}

// sent is one frame written to a fakeConn.
type sent struct {
	b    []byte
	addr net.Addr
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan []byte), closed: make(chan struct{}), deadline: make(chan struct{})}
}

func (c *fakeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.mu.Lock()
	deadline, err := c.deadline, c.readErr
	c.readErr = nil
	c.mu.Unlock()
	if err != nil {
		return 0, nil, err
	}
	select {
	case f := <-c.in:
		return copy(b, f), nil, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	case <-deadline:
		return 0, nil, os.ErrDeadlineExceeded
	}
}

func (c *fakeConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writeErr != nil {
		return 0, c.writeErr
	}
	c.out = append(c.out, sent{b: append([]byte(nil), b...), addr: addr})
	return len(b), nil
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

func (c *fakeConn) LocalAddr() net.Addr { return nil }

func (c *fakeConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

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

func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// sent returns the frames written so far and forgets them.
func (c *fakeConn) take() []sent {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.out
	c.out = nil
	return out
}

// feed hands frames to a running Responder and returns when it has
// handled them: the empty frame sent last is read only after the previous
// one was handled.
func (c *fakeConn) feed(t testing.TB, frames ...[]byte) {
	t.Helper()
	for _, f := range append(frames, []byte{}) {
		select {
		case c.in <- f:
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
