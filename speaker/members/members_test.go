package members

import (
	"bytes"
	"context"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// bound is how long anything may take here: the machine is shared and slow,
// so the tests assert what happens, not how fast; the benchmark measures.
const bound = 10 * time.Second

func TestJoin(t *testing.T) {
	l := newLogs(t)
	a := startMember(t, l, "a", nil)
	b := startMember(t, l, "b", nil)
	c := startMember(t, l, "c", nil)
	if got := a.Live(); !exactly("a")(got) {
		t.Errorf("a.Live() before any join = %v, want [a]", names(got))
	}

	// c alone knows the others, as a speaker learns them from the API
	// server after it started; gossip tells a and b about each other.
	c.SetPeers(append(addrs(a, b), c.addr))
	if _, err := waitAll(bound, exactly("a", "b", "c"), a, b, c); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{a, b, c} {
		if got := m.Live(); !exactly("a", "b", "c")(got) {
			t.Errorf("%s.Live() = %v, want [a b c]", m.name, names(got))
		}
	}
}

func TestJoinLater(t *testing.T) {
	l := newLogs(t)
	a := startMember(t, l, "a", nil)
	cAddr := netip.AddrPortFrom(loopback, freePort(t))
	// a knows c's address before c's speaker runs: it must keep trying.
	a.SetPeers([]netip.AddrPort{cAddr})
	time.Sleep(DefaultRejoinInterval + DefaultRejoinInterval/2)
	c := startMember(t, l, "c", func(o *Options) { o.Port = cAddr.Port() })
	if _, err := waitAll(bound, exactly("a", "c"), a, c); err != nil {
		t.Fatalf("a did not join c once it ran: %v", err)
	}
}

// TestNotAloneBeforeJoining starts a member that the API server has not
// named any peer to yet: it reports nothing, neither alone nor otherwise,
// until it has tried to join the peers it is given (one of them down),
// and then reports them all at once.
func TestNotAloneBeforeJoining(t *testing.T) {
	l := newLogs(t)
	a := startMember(t, l, "a", nil)
	b := startMember(t, l, "b", nil)
	b.SetPeers(addrs(a))
	if _, err := waitAll(bound, exactly("a", "b"), a, b); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	var first map[string]bool // Notify's first live set
	notify := func(live map[string]bool) {
		if first == nil {
			first = maps.Clone(live)
		}
		rec.notify(live)
	}
	c := New(Options{NodeName: "c", BindAddr: loopback, Port: freePort(t), Log: l.logger("c"), Notify: notify})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	time.Sleep(time.Second)
	if got, n := c.Live(), rec.notified(); got != nil || n != 0 {
		t.Fatalf("before any peer was named: Live() = %v and %d Notify calls, want nil and none", names(got), n)
	}
	down := netip.AddrPortFrom(loopback, freePort(t))
	c.SetPeers(append(addrs(a), down))
	if _, err := rec.wait(bound, exactly("a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	// Notify is never concurrent, and rec.wait saw a call: first is set.
	// Gossip may flap later on a loaded machine; the first set must
	// already hold the peer that was joined.
	if !first["a"] || !first["c"] {
		t.Errorf("Notify said %v first, want a set holding a and c", names(first))
	}
}

func TestLiveOutsideRun(t *testing.T) {
	l := newLogs(t)
	rec := newRecorder()
	m := New(Options{NodeName: "a", BindAddr: loopback, Port: freePort(t), Log: l.logger("a"), Notify: rec.notify})
	if got := m.Live(); got != nil {
		t.Errorf("Live() before Run = %v, want nil", got)
	}
	m.SetPeers(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	if _, err := rec.wait(bound, with("a")); err != nil {
		t.Fatal(err)
	}
	if got := m.Live(); !exactly("a")(got) {
		t.Errorf("Live() while running = %v, want [a]", names(got))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := m.Live(); got != nil {
		t.Errorf("Live() after Run = %v, want nil", got)
	}
}

func TestCrash(t *testing.T) {
	l := newLogs(t)
	a := startMember(t, l, "a", nil)
	b := startMember(t, l, "b", nil)
	c := startChild(t, l, "c", netip.AddrPortFrom(loopback, freePort(t)), nil, a.addr, b.addr)
	if _, err := waitAll(bound, exactly("a", "b", "c"), a, b); err != nil {
		t.Fatal(err)
	}

	killed := c.kill(t)
	for _, m := range []*member{a, b} {
		at, err := m.rec.wait(bound, without("c"))
		if err != nil {
			t.Fatalf("%s never dropped the crashed c: %v", m.name, err)
		}
		t.Logf("%s dropped the crashed c %v after SIGKILL", m.name, at.Sub(killed).Round(time.Millisecond))
	}
	// The survivors still see each other: no false alarm on the way.
	for _, m := range []*member{a, b} {
		if got := m.Live(); !exactly("a", "b")(got) {
			t.Errorf("%s.Live() = %v, want [a b]", m.name, names(got))
		}
	}
}

func TestGracefulLeave(t *testing.T) {
	// Survivors that probe too slowly to detect a death within the bound:
	// only c's leave can make them drop it in time.
	slow := func(o *Options) {
		o.ProbeInterval = 5 * time.Second
		o.ProbeTimeout = 2 * time.Second
		o.SuspicionMult = 4
	}
	for _, tc := range []struct {
		name string
		mod  func(*Options)
	}{
		{name: "default timing"},
		{name: "no failure detection in time", mod: slow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLogs(t)
			a := startMember(t, l, "a", tc.mod)
			b := startMember(t, l, "b", tc.mod)
			c := startChild(t, l, "c", netip.AddrPortFrom(loopback, freePort(t)), nil, a.addr, b.addr)
			if _, err := waitAll(bound, exactly("a", "b", "c"), a, b); err != nil {
				t.Fatal(err)
			}

			termed := c.term(t)
			for _, m := range []*member{a, b} {
				at, err := m.rec.wait(bound, without("c"))
				if err != nil {
					t.Fatalf("%s never dropped c, which left: %v", m.name, err)
				}
				t.Logf("%s dropped c %v after SIGTERM", m.name, at.Sub(termed).Round(time.Millisecond))
			}
			select {
			case <-c.done:
				t.Logf("c exited %v after SIGTERM", c.exit.Sub(termed).Round(time.Millisecond))
			case <-time.After(bound):
				t.Fatal("c did not exit after SIGTERM")
			}
			if !c.cmd.ProcessState.Success() {
				t.Errorf("c exited with %v, want success", c.cmd.ProcessState)
			}
		})
	}
}

func TestEncryption(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	other := []byte("fedcba9876543210fedcba9876543210")
	l := newLogs(t)
	a := startMember(t, l, "a", func(o *Options) { o.SecretKey = key })
	b := startMember(t, l, "b", func(o *Options) { o.SecretKey = key })
	wrong := startMember(t, l, "wrong-key", func(o *Options) { o.SecretKey = other })
	plain := startMember(t, l, "no-key", nil)
	all := addrs(a, b, wrong, plain)
	for _, m := range []*member{a, b, wrong, plain} {
		m.SetPeers(all)
	}

	if _, err := waitAll(bound, exactly("a", "b"), a, b); err != nil {
		t.Fatalf("members with the same key did not join: %v", err)
	}
	// Let the joins be retried a few times: the outsiders must stay out.
	time.Sleep(3 * DefaultRejoinInterval)
	for _, tc := range []struct {
		m    *member
		want []string
	}{
		{a, []string{"a", "b"}},
		{b, []string{"a", "b"}},
		{wrong, []string{"wrong-key"}},
		{plain, []string{"no-key"}},
	} {
		if got := tc.m.Live(); !exactly(tc.want...)(got) {
			t.Errorf("%s.Live() = %v, want %v", tc.m.name, names(got), tc.want)
		}
		if got := tc.m.rec.last(); !exactly(tc.want...)(got) {
			t.Errorf("%s was last notified of %v, want %v", tc.m.name, names(got), tc.want)
		}
	}
	if s := l.String(); !strings.Contains(s, "cannot join peer") {
		t.Errorf("no member logged that it cannot join a peer with another key")
	}
}

func TestRestart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		newPort bool
	}{
		{name: "same address"},
		{name: "new port", newPort: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLogs(t)
			a := startMember(t, l, "a", nil)
			b := startMember(t, l, "b", nil)
			addr := netip.AddrPortFrom(loopback, freePort(t))
			// The survivors know c's address from the API, as speakers do.
			a.SetPeers([]netip.AddrPort{b.addr, addr})
			b.SetPeers([]netip.AddrPort{a.addr, addr})
			c := startChild(t, l, "c", addr, nil, a.addr, b.addr)
			if _, err := waitAll(bound, exactly("a", "b", "c"), a, b); err != nil {
				t.Fatal(err)
			}
			c.kill(t)
			if _, err := waitAll(bound, without("c"), a, b); err != nil {
				t.Fatalf("the crashed c was not dropped: %v", err)
			}

			if tc.newPort {
				addr = netip.AddrPortFrom(loopback, freePort(t))
				a.SetPeers([]netip.AddrPort{b.addr, addr})
				b.SetPeers([]netip.AddrPort{a.addr, addr})
			}
			restarted := time.Now()
			startChild(t, l, "c", addr, nil, a.addr, b.addr)
			at, err := waitAll(bound, exactly("a", "b", "c"), a, b)
			if err != nil {
				t.Fatalf("the restarted c is not live again: %v", err)
			}
			t.Logf("the restarted c was live again %v after it started", at.Sub(restarted).Round(time.Millisecond))
		})
	}
}

func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{name: "empty key", mod: func(o *Options) { o.SecretKey = []byte{} }, want: "members: secret key is 0 bytes long; it must be 16, 24 or 32 bytes"},
		{name: "short key", mod: func(o *Options) { o.SecretKey = make([]byte, 15) }, want: "secret key is 15 bytes long; it must be 16, 24 or 32 bytes"},
		{name: "long key", mod: func(o *Options) { o.SecretKey = make([]byte, 33) }, want: "secret key is 33 bytes long"},
		{name: "MetalLB-sized key", mod: func(o *Options) { o.SecretKey = make([]byte, 172) }, want: "secret key is 172 bytes long"},
		{name: "no node name", mod: func(o *Options) { o.NodeName = "" }, want: "members: no node name"},
		{name: "no address", mod: func(o *Options) { o.BindAddr = netip.Addr{} }, want: "members: bind address"},
		{name: "unspecified address", mod: func(o *Options) { o.BindAddr = netip.IPv4Unspecified() }, want: "is not a node address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{NodeName: "a", BindAddr: loopback, Port: freePort(t)}
			tc.mod(&o)
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			err := New(o).Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run() = %v, want an error containing %q", err, tc.want)
			}
			if ctx.Err() != nil {
				t.Errorf("Run ran until its context ended instead of failing at once")
			}
		})
	}

	t.Run("good keys", func(t *testing.T) {
		for _, n := range []int{16, 24, 32} {
			if err := checkKey(bytes.Repeat([]byte{1}, n)); err != nil {
				t.Errorf("checkKey(%d bytes) = %v, want nil", n, err)
			}
		}
		if err := checkKey(nil); err != nil {
			t.Errorf("checkKey(nil) = %v, want nil", err)
		}
	})

	t.Run("port taken", func(t *testing.T) {
		l := newLogs(t)
		a := startMember(t, l, "a", nil)
		err := New(Options{NodeName: "b", BindAddr: loopback, Port: a.addr.Port()}).Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "members: start memberlist on 127.0.0.1:") {
			t.Fatalf("Run() on a taken port = %v, want a start error", err)
		}
	})
}

func TestLogWriter(t *testing.T) {
	l := newLogs(t)
	w := logWriter{l.logger("m")}
	for _, line := range []string{
		"[WARN] memberlist: Refuting a suspect message (from: b)\n",
		"[ERR] memberlist: Failed fallback TCP ping: dial tcp: connection refused\n",
		"[INFO] memberlist: Marking c as failed, suspect timeout reached (0 peer confirmations)\n",
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n",
		"no level at all\n",
	} {
		if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
			t.Errorf("Write(%q) = %d, %v", line, n, err)
		}
	}
	got := l.String()
	for _, want := range []string{
		`"msg"="Refuting a suspect message (from: b)" "severity"="WARN"`,
		`"msg"="Failed fallback TCP ping: dial tcp: connection refused" "severity"="ERR"`,
		`"msg"="Marking c as failed, suspect timeout reached (0 peer confirmations)"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("logs lack %s:\n%s", want, got)
		}
	}
	for _, hidden := range []string{"Stream connection", "no level at all"} {
		if strings.Contains(got, hidden) {
			t.Errorf("a debug line reached level 1: %s", got)
		}
	}
}
