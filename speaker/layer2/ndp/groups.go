package ndp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"

	"github.com/mdlayher/ndp"
	"golang.org/x/sys/unix"
)

// groupsPerSocket is the most solicited-node groups one socket joins.
// Linux charges each membership to the socket's option memory
// (net.core.optmem_max, 128 KiB on recent kernels, 20 KiB on older ones:
// room for about 2,300 and 360 memberships), so a socket full of them can
// no longer allocate even what sending a packet needs. A socket is also
// taken as full when a join fails for want of that memory.
const groupsPerSocket = 1000

// groups holds the solicited-node multicast memberships of one interface
// on sockets of their own, which are never read: a membership makes the
// interface accept the group's traffic, and the Responder's ICMPv6 socket,
// which joins nothing, receives it as a socket receives every group its
// interface has joined (IPV6_MULTICAST_ALL, on by default). So the
// Responder's socket keeps its option memory for sending, and the number of
// addresses is limited by neither.
//
// The holder sockets are UDP sockets bound to no port: they receive
// nothing.
type groups struct {
	ifindex int
	// netns is the network namespace the interface is in, where every
	// holder socket is opened, whichever thread asks for one.
	netns *os.File

	mu      sync.Mutex
	sockets []*holder
	of      map[netip.Addr]*holder // group → the socket holding it
}

// holder is one socket holding memberships.
type holder struct {
	fd   int
	n    int  // groups joined
	full bool // a join failed for want of option memory
}

// newGroups returns the memberships of the interface with index ifindex,
// in the network namespace of the calling thread.
func newGroups(ifindex int) (*groups, error) {
	ns, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("ndp: open the network namespace: %w", err)
	}
	return &groups{ifindex: ifindex, netns: ns, of: make(map[netip.Addr]*holder)}, nil
}

// join joins group, on a socket with room for it.
func (g *groups) join(group netip.Addr) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.of[group]; ok {
		return fmt.Errorf("ndp: already a member of %s", group)
	}
	mreq := g.mreq(group)
	for _, h := range g.sockets {
		if h.full || h.n >= groupsPerSocket {
			continue
		}
		err := unix.SetsockoptIPv6Mreq(h.fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq)
		if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.ENOBUFS) {
			h.full = true
			continue
		}
		if err != nil {
			return err
		}
		g.add(group, h)
		return nil
	}
	fd, err := g.socket()
	if err != nil {
		return err
	}
	if err := unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq); err != nil {
		_ = unix.Close(fd)
		return err
	}
	h := &holder{fd: fd}
	g.sockets = append(g.sockets, h)
	g.add(group, h)
	return nil
}

// add records that h holds group.
func (g *groups) add(group netip.Addr, h *holder) {
	h.n++
	g.of[group] = h
}

// leave leaves group, and closes its socket if it holds no other.
func (g *groups) leave(group netip.Addr) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	h, ok := g.of[group]
	if !ok {
		return fmt.Errorf("ndp: not a member of %s", group)
	}
	delete(g.of, group)
	h.n--
	h.full = false
	if h.n == 0 {
		g.sockets = removeHolder(g.sockets, h)
		return unix.Close(h.fd) // closing leaves the group too
	}
	return unix.SetsockoptIPv6Mreq(h.fd, unix.IPPROTO_IPV6, unix.IPV6_LEAVE_GROUP, g.mreq(group))
}

// removeHolder returns hs without h.
func removeHolder(hs []*holder, h *holder) []*holder {
	for i := range hs {
		if hs[i] == h {
			return append(hs[:i], hs[i+1:]...)
		}
	}
	return hs
}

// mreq returns the membership request for group on the interface.
func (g *groups) mreq(group netip.Addr) *unix.IPv6Mreq {
	return &unix.IPv6Mreq{Multiaddr: group.As16(), Interface: uint32(g.ifindex)}
}

// close closes every holder socket, which leaves every group.
func (g *groups) close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	errs := []error{g.netns.Close()}
	for _, h := range g.sockets {
		errs = append(errs, unix.Close(h.fd))
	}
	g.sockets = nil
	clear(g.of)
	return errors.Join(errs...)
}

// socket opens a holder socket in the interface's network namespace. It
// does so on a thread of its own: when the caller's thread is in another
// namespace (as in tests that run a Responder in a namespace of their
// own), the thread enters the interface's and is then discarded.
func (g *groups) socket() (int, error) {
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		fd, entered, err := g.socketHere()
		if !entered {
			runtime.UnlockOSThread()
		} // else the thread ends with the goroutine
		done <- result{fd, err}
	}()
	r := <-done
	if r.err != nil {
		return -1, fmt.Errorf("ndp: open a socket for multicast memberships: %w", r.err)
	}
	return r.fd, nil
}

// socketHere opens a holder socket on the calling thread, which it moves
// into the interface's network namespace first if it is in another one,
// and reports whether it did.
func (g *groups) socketHere() (fd int, entered bool, err error) {
	same, err := sameNamespace(g.netns)
	if err != nil {
		return -1, false, err
	}
	if !same {
		if err := unix.Setns(int(g.netns.Fd()), unix.CLONE_NEWNET); err != nil {
			return -1, false, fmt.Errorf("enter the network namespace: %w", err)
		}
		entered = true
	}
	fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	return fd, entered, err
}

// sameNamespace reports whether the calling thread is in the network
// namespace ns.
func sameNamespace(ns *os.File) (bool, error) {
	var want, have unix.Stat_t
	if err := unix.Fstat(int(ns.Fd()), &want); err != nil {
		return false, err
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &have); err != nil {
		return false, err
	}
	return want.Dev == have.Dev && want.Ino == have.Ino, nil
}

// groupConn is an *ndp.Conn whose multicast memberships are held by
// groups.
type groupConn struct {
	*ndp.Conn
	groups *groups
}

// JoinGroup joins group on the interface.
func (c groupConn) JoinGroup(group netip.Addr) error { return c.groups.join(group) }

// LeaveGroup leaves group on the interface.
func (c groupConn) LeaveGroup(group netip.Addr) error { return c.groups.leave(group) }

// Close closes the connection and leaves every group.
func (c groupConn) Close() error {
	return errors.Join(c.Conn.Close(), c.groups.close())
}
