// Package netnstest builds throw-away network namespaces for the layer-2
// packages' privileged tests: it creates them with a unique name, runs
// commands and Go code inside them, and deletes them, with every link in
// them, when the test ends, failed or not.
//
// Tests use only 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32 inside
// the namespaces they create, and never add a default route.
package netnstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// Prefix begins the name of every namespace made here, so that they never
// clash with the lab's and a leftover one is easy to spot.
const Prefix = "ilbl2-"

// RequireEnv is the environment variable that turns a skip for lack of
// privilege or tools into a failure.
const RequireEnv = "IRONLB_REQUIRE_E2E"

// Require skips t, saying why, unless the test runs as root and finds
// every one of tools (and ip) on the PATH. When IRONLB_REQUIRE_E2E=1 it
// fails t instead of skipping.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv(RequireEnv) == "1" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("needs root to create network namespaces and raw sockets (%s=1 makes this a failure)", RequireEnv)
		return
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			skip("needs %s on the PATH: %v (%s=1 makes this a failure)", tool, err, RequireEnv)
			return
		}
	}
}

// NS is a network namespace made for one test.
type NS struct {
	// Name is the namespace's name, as `ip netns` knows it.
	Name   string
	handle netns.NsHandle
}

// New creates a namespace named Prefix, a random part and role, with
// loopback up and duplicate address detection off (so that addresses,
// link-local ones included, are usable at once), and deletes it when the
// test ends.
func New(t testing.TB, role string) *NS {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := Prefix + hex.EncodeToString(b[:]) + "-" + role
	if out, err := run(nil, "ip", "netns", "add", name); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name, handle: netns.None()}
	t.Cleanup(func() {
		if ns.handle.IsOpen() {
			_ = ns.handle.Close()
		}
		if out, err := run(nil, "ip", "netns", "del", name); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	ns.handle = h
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Handle returns the namespace's handle, which stays open until the test
// ends.
func (ns *NS) Handle() netns.NsHandle { return ns.handle }

// run runs cmd with args, inside ns when ns is not nil, kills it after 30
// seconds, and returns its combined output.
func run(ns *NS, cmd string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ns != nil {
		args = append([]string{"netns", "exec", ns.Name, cmd}, args...)
		cmd = "ip"
	}
	return exec.CommandContext(ctx, cmd, args...).CombinedOutput()
}

// Run runs cmd with args inside the namespace and returns its combined
// output.
func (ns *NS) Run(cmd string, args ...string) (string, error) {
	out, err := run(ns, cmd, args...)
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", cmd, strings.Join(args, " "), ns.Name, err, out)
	}
	return string(out), nil
}

// MustRun is Run that fails t on error.
func (ns *NS) MustRun(t testing.TB, cmd string, args ...string) string {
	t.Helper()
	out, err := ns.Run(cmd, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Do calls f on a goroutine locked to an OS thread that has entered the
// namespace, so that the sockets f opens and the interfaces it looks up
// are the namespace's. Sockets stay in the namespace after Do returns.
func (ns *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get the current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns.handle); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", ns.Name, err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime ends a goroutine's
			// locked thread when it exits, so no other goroutine runs
			// in the wrong namespace.
			errc <- fmt.Errorf("leave namespace %s: %w", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// LinkName returns a link name made of prefix (at most 7 bytes) and 8
// random hex digits. Tests name their links so: the zone of an IPv6
// link-local address is resolved by name in the namespace of the thread
// that writes, which is not the test namespace, so a name that also exists
// outside (eth0) would resolve to the wrong interface.
func LinkName(t testing.TB, prefix string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// Veth connects a and b with a veth pair, named aName in a and bName in
// b, both up.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	a.MustRun(t, "ip", "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
	a.MustRun(t, "ip", "link", "set", aName, "up")
	b.MustRun(t, "ip", "link", "set", bName, "up")
}

// MAC returns the hardware address of the link named ifname in ns.
func (ns *NS) MAC(t testing.TB, ifname string) string {
	t.Helper()
	out := ns.MustRun(t, "cat", "/sys/class/net/"+ifname+"/address")
	return strings.TrimSpace(out)
}

// NeighborMAC returns the hardware address ns's neighbour table holds for
// ip on ifname, and the entry's line; "" when there is none.
func (ns *NS) NeighborMAC(t testing.TB, ip, ifname string) (string, string) {
	t.Helper()
	line := strings.TrimSpace(ns.MustRun(t, "ip", "neigh", "show", ip, "dev", ifname))
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			return f[i+1], line
		}
	}
	return "", line
}

// WaitNeighbor waits up to timeout for ns's neighbour entry for ip on
// ifname to hold mac, and fails t otherwise.
func (ns *NS) WaitNeighbor(t testing.TB, ip, ifname, mac string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, line := ns.NeighborMAC(t, ip, ifname)
		if got == mac {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, %s's neighbour entry for %s is %q, want lladdr %s", timeout, ns.Name, ip, line, mac)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LinkLocal waits up to two seconds for the link named ifname in ns to
// have an IPv6 link-local address, which the kernel adds a moment after
// the link comes up, and returns it.
func (ns *NS) LinkLocal(t testing.TB, ifname string) netip.Addr {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		out := ns.MustRun(t, "ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link")
		f := strings.Fields(out)
		for i := 0; i+1 < len(f); i++ {
			if p, err := netip.ParsePrefix(f[i+1]); f[i] == "inet6" && err == nil {
				return p.Addr()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s has no link-local address after 2 s: %q", ifname, ns.Name, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Responder is what the ARP and NDP Responders have in common.
type Responder interface {
	Run(ctx context.Context) error
	Close() error
}

// Serve opens a Responder on the link named ifname in ns with open, runs
// it on a thread in ns, as a speaker does, and stops and closes it when
// the test ends.
func Serve[R Responder](t testing.TB, ns *NS, ifname string, open func(*net.Interface) (R, error)) R {
	t.Helper()
	var r R
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		r, err = open(ifi)
		return err
	}); err != nil {
		t.Fatalf("listen on %s in %s: %v", ifname, ns.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ns.Do(func() error { return r.Run(ctx) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}
