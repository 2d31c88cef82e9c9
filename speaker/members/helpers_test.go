package members

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// loopback is where the test members gossip.
var loopback = netip.MustParseAddr("127.0.0.1")

// The environment of a child process: a member run by a re-executed test
// binary, so that a crash is a real SIGKILL.
const (
	childEnv      = "IRONLB_MEMBERS_CHILD"
	childNameEnv  = "IRONLB_MEMBERS_CHILD_NAME"
	childPortEnv  = "IRONLB_MEMBERS_CHILD_PORT"
	childPeersEnv = "IRONLB_MEMBERS_CHILD_PEERS"
	childKeyEnv   = "IRONLB_MEMBERS_CHILD_KEY"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// runChild runs one member as told by the environment until SIGTERM (a
// graceful stop: it leaves) or until its standard input closes (the test
// that started it is gone), logging to standard error.
func runChild() int {
	port, err := strconv.ParseUint(os.Getenv(childPortEnv), 10, 16)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: bad port:", err)
		return 2
	}
	var key []byte
	if k := os.Getenv(childKeyEnv); k != "" {
		if key, err = hex.DecodeString(k); err != nil {
			fmt.Fprintln(os.Stderr, "child: bad key:", err)
			return 2
		}
	}
	var peers []netip.AddrPort
	for p := range strings.SplitSeq(os.Getenv(childPeersEnv), ",") {
		if p != "" {
			peers = append(peers, netip.MustParseAddrPort(p))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	name := os.Getenv(childNameEnv)
	log := funcr.New(func(prefix, args string) {
		fmt.Fprintf(os.Stderr, "%s %s %s\n", time.Now().Format("15:04:05.000"), prefix, args)
	}, funcr.Options{Verbosity: 1}).WithName(name)
	m := New(Options{NodeName: name, BindAddr: loopback, Port: uint16(port), SecretKey: key, Log: log})
	m.SetPeers(peers)
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// logs collects the logs of a test's members and children, and shows them
// if the test fails.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// newLogs returns logs that t shows when it fails, or always when the
// environment has IRONLB_MEMBERS_LOGS=1.
func newLogs(t testing.TB) *logs {
	l := &logs{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("IRONLB_MEMBERS_LOGS") == "1" {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Logf("member logs:\n%s", l.buf.String())
		}
	})
	return l
}

// Write appends p.
func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// logger returns a logger that writes to l.
func (l *logs) logger(name string) logr.Logger {
	return funcr.New(func(prefix, args string) {
		fmt.Fprintf(l, "%s %s %s\n", time.Now().Format("15:04:05.000"), prefix, args)
	}, funcr.Options{Verbosity: 1}).WithName(name)
}

// recorder keeps what Notify said last and when.
type recorder struct {
	mu      sync.Mutex
	live    map[string]bool
	at      time.Time
	changed chan struct{} // closed and replaced on every Notify
	calls   int

	inside     atomic.Bool
	concurrent atomic.Bool
}

func newRecorder() *recorder {
	return &recorder{changed: make(chan struct{})}
}

// notify is the Options.Notify under test.
func (r *recorder) notify(live map[string]bool) {
	now := time.Now()
	if !r.inside.CompareAndSwap(false, true) {
		r.concurrent.Store(true)
	}
	defer r.inside.Store(false)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live, r.at = live, now
	r.calls++
	close(r.changed)
	r.changed = make(chan struct{})
}

// wait waits up to timeout for Notify to have said a live set for which
// cond holds, and returns when Notify said it.
func (r *recorder) wait(timeout time.Duration, cond func(live map[string]bool) bool) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		live, at, changed := r.live, r.at, r.changed
		r.mu.Unlock()
		if cond(live) {
			return at, nil
		}
		select {
		case <-changed:
		case <-deadline:
			return time.Time{}, fmt.Errorf("still live after %v: %v", timeout, names(live))
		}
	}
}

// notified returns how often Notify was called.
func (r *recorder) notified() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// last returns the live set Notify said last.
func (r *recorder) last() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live
}

// member is a Members run in this process.
type member struct {
	*Members
	name string
	addr netip.AddrPort
	rec  *recorder
	stop func() error // ends Run and returns what it returned
}

// startMember runs a member named name on a free loopback port until the
// test ends, with the options that mod changes, and waits until it runs.
func startMember(t testing.TB, l *logs, name string, mod func(*Options)) *member {
	t.Helper()
	rec := newRecorder()
	o := Options{NodeName: name, BindAddr: loopback, Port: freePort(t), Log: l.logger(name), Notify: rec.notify}
	if mod != nil {
		mod(&o)
	}
	addr := netip.AddrPortFrom(o.BindAddr, o.Port)
	m := New(o)
	// No peers known yet: the member settles at once, alone; tests give
	// peers later.
	m.SetPeers(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("%s: Run: %v", name, err)
		}
		if rec.concurrent.Load() {
			t.Errorf("%s: Notify was called concurrently", name)
		}
	})
	started := make(chan error, 1)
	go func() {
		_, err := rec.wait(10*time.Second, func(live map[string]bool) bool { return live[name] })
		started <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("%s: Run returned at once: %v", name, err)
	case err := <-started:
		if err != nil {
			t.Fatalf("%s: never saw itself live: %v", name, err)
		}
	}
	return &member{Members: m, name: name, addr: addr, rec: rec, stop: stop}
}

// child is a member run in a child process.
type child struct {
	name string
	addr netip.AddrPort
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	exit time.Time     // when the process was seen to exit
}

// startChild runs a member named name on addr in a child process, joining
// peers, until the test ends.
func startChild(t testing.TB, l *logs, name string, addr netip.AddrPort, key []byte, peers ...netip.AddrPort) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	var ps []string
	for _, p := range peers {
		ps = append(ps, p.String())
	}
	cmd.Env = append(os.Environ(),
		childEnv+"=1",
		childNameEnv+"="+name,
		childPortEnv+"="+strconv.Itoa(int(addr.Port())),
		childPeersEnv+"="+strings.Join(ps, ","),
		childKeyEnv+"="+hex.EncodeToString(key),
		// The race detector sleeps a second before a process exits; that
		// would hide how soon a graceful stop ends.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"),
	)
	cmd.Stderr = l
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %s: %v", name, err)
	}
	c := &child{name: name, addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		c.exit = time.Now()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// kill crashes the child: SIGKILL, no leave. It returns when the signal was
// sent and waits for the process to be gone.
func (c *child) kill(t testing.TB) time.Time {
	t.Helper()
	at := time.Now()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill %s: %v", c.name, err)
	}
	<-c.done
	return at
}

// term stops the child gracefully, as the kubelet stops a speaker.
func (c *child) term(t testing.TB) time.Time {
	t.Helper()
	at := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("terminate %s: %v", c.name, err)
	}
	return at
}

// freePort returns a port free on loopback for both TCP and UDP.
func freePort(t testing.TB) uint16 {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = l.Close()
		if err != nil {
			continue
		}
		_ = u.Close()
		return uint16(port)
	}
	t.Fatal("no free port")
	return 0
}

// exactly returns a condition: the live set is names.
func exactly(want ...string) func(map[string]bool) bool {
	return func(live map[string]bool) bool {
		return slices.Equal(names(live), slices.Sorted(slices.Values(want)))
	}
}

// without returns a condition: name is not live.
func without(name string) func(map[string]bool) bool {
	return func(live map[string]bool) bool { return live != nil && !live[name] }
}

// with returns a condition: name is live.
func with(name string) func(map[string]bool) bool {
	return func(live map[string]bool) bool { return live[name] }
}

// names returns the sorted names in a live set.
func names(live map[string]bool) []string {
	return slices.Sorted(maps.Keys(live))
}

// addrs returns the members' addresses.
func addrs(ms ...*member) []netip.AddrPort {
	var a []netip.AddrPort
	for _, m := range ms {
		a = append(a, m.addr)
	}
	return a
}

// waitAll waits until every member's Notify said a set for which cond
// holds, and returns when the last one did.
func waitAll(timeout time.Duration, cond func(map[string]bool) bool, ms ...*member) (time.Time, error) {
	var last time.Time
	var errs []error
	for _, m := range ms {
		at, err := m.rec.wait(timeout, cond)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.name, err))
			continue
		}
		if at.After(last) {
			last = at
		}
	}
	return last, errors.Join(errs...)
}
