package layer2

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ironlb/ironlb/config"
)

// newTestAnnouncer returns an Announcer over a fake factory that sends one
// gratuitous packet at once and none later, unless schedule says
// otherwise.
func newTestAnnouncer(schedule ...time.Duration) (*Announcer, *fakeFactory) {
	f := newFakeFactory()
	a := NewAnnouncer(f)
	a.Schedule = []time.Duration{0}
	if len(schedule) > 0 {
		a.Schedule = schedule
	}
	a.RetryInterval = 20 * time.Millisecond
	return a, f
}

// run runs a in the background until the test ends.
func run(t *testing.T, a *Announcer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return")
		}
	})
}

// eventually waits up to 5 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAnnouncerSteps applies a sequence of desired states and checks what
// each Apply did to the Responders, before it returned.
func TestAnnouncerSteps(t *testing.T) {
	a, f := newTestAnnouncer()
	steps := []struct {
		name    string
		desired Desired
		want    []string // events, in order
		wantErr bool
	}{
		{
			name:    "first-address",
			desired: Desired{v4a: {"eth0"}},
			want:    []string{"open eth0 IPv4", "add eth0/IPv4 198.51.100.200", "gratuitous eth0/IPv4 198.51.100.200"},
		},
		{
			name:    "same-again-changes-nothing",
			desired: Desired{v4a: {"eth0"}},
		},
		{
			name:    "dual-stack-on-two-interfaces",
			desired: Desired{v4a: {"eth0", "eth1"}, v6a: {"eth0"}},
			want: []string{
				"open eth0 IPv6", "open eth1 IPv4",
				"add eth0/IPv6 2001:db8:1::1:c8", "gratuitous eth0/IPv6 2001:db8:1::1:c8",
				"add eth1/IPv4 198.51.100.200", "gratuitous eth1/IPv4 198.51.100.200",
			},
		},
		{
			name:    "same-again-in-another-order-changes-nothing",
			desired: Desired{v6a: {"eth0"}, v4a: {"eth1", "eth0", "eth1"}},
		},
		{
			name:    "lose-one-address",
			desired: Desired{v4a: {"eth0", "eth1"}},
			want:    []string{"remove eth0/IPv6 2001:db8:1::1:c8", "close eth0/IPv6"},
		},
		{
			name:    "take-a-second-address",
			desired: Desired{v4a: {"eth0", "eth1"}, v4b: {"eth0"}},
			want:    []string{"add eth0/IPv4 198.51.100.201", "gratuitous eth0/IPv4 198.51.100.201"},
		},
		{
			name:    "lose-everything",
			desired: Desired{},
			want: []string{
				"remove eth0/IPv4 198.51.100.200", "remove eth0/IPv4 198.51.100.201", "remove eth1/IPv4 198.51.100.200",
				"close eth0/IPv4", "close eth1/IPv4",
			},
		},
		{
			name:    "nil-is-empty",
			desired: nil,
		},
		{
			name:    "take-back-at-once",
			desired: Desired{v4a: {"eth0"}},
			want:    []string{"open eth0 IPv4", "add eth0/IPv4 198.51.100.200", "gratuitous eth0/IPv4 198.51.100.200"},
		},
	}
	for _, s := range steps {
		err := a.Apply(s.desired)
		if (err != nil) != s.wantErr {
			t.Fatalf("%s: Apply = %v", s.name, err)
		}
		if diff := cmp.Diff(s.want, f.ev.take(), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("%s: events (-want +got):\n%s", s.name, diff)
		}
		if diff := cmp.Diff(SortedBindings(s.desired.Bindings()), a.Bindings(), netipOpts, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("%s: Bindings (-want +got):\n%s", s.name, diff)
		}
	}
}

// TestAnnouncerEveryOrder applies the same states in every order: the
// Responders end up answering for the last state, whatever came before.
func TestAnnouncerEveryOrder(t *testing.T) {
	states := []Desired{
		{v4a: {"eth0"}},
		{v4a: {"eth1"}, v6a: {"eth0"}},
		{v4b: {"eth0", "eth1"}},
	}
	final := Desired{v4a: {"eth0"}, v4b: {"eth1"}}
	var perm func(k int)
	perm = func(k int) {
		if k == len(states) {
			a, f := newTestAnnouncer()
			for _, s := range states {
				if err := a.Apply(s); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Apply(final); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(SortedBindings(final.Bindings()), a.Bindings(), netipOpts); diff != "" {
				t.Fatalf("after %v: Bindings (-want +got):\n%s", states, diff)
			}
			// What the fakes hold agrees.
			for l, want := range map[Link][]string{{"eth0", config.IPv4}: {"198.51.100.200"}, {"eth1", config.IPv4}: {"198.51.100.201"}} {
				r := f.responder(l)
				var got []string
				for ip := range r.ips {
					got = append(got, ip.String())
				}
				if r.closed || !slices.Equal(want, got) {
					t.Fatalf("after %v: %v holds %v (closed %v), want %v", states, l, got, r.closed, want)
				}
			}
			return
		}
		for i := k; i < len(states); i++ {
			states[k], states[i] = states[i], states[k]
			perm(k + 1)
			states[k], states[i] = states[i], states[k]
		}
	}
	perm(0)
}

func TestAnnouncerRepeatsGratuitous(t *testing.T) {
	a, f := newTestAnnouncer(0, 30*time.Millisecond, 60*time.Millisecond)
	run(t, a)
	start := time.Now()
	if err := a.Apply(Desired{v4a: {"eth0"}}); err != nil {
		t.Fatal(err)
	}
	if n := f.ev.count("gratuitous eth0/IPv4"); n != 1 {
		t.Fatalf("%d gratuitous packets when Apply returned, want 1", n)
	}
	eventually(t, "3 gratuitous packets", func() bool { return f.ev.count("gratuitous eth0/IPv4") == 3 })
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("3 packets after %v, before the schedule's 60ms", d)
	}
	time.Sleep(100 * time.Millisecond)
	if n := f.ev.count("gratuitous "); n != 3 {
		t.Errorf("%d gratuitous packets, want 3", n)
	}
}

func TestAnnouncerReannounce(t *testing.T) {
	a, f := newTestAnnouncer(0, 30*time.Millisecond)
	run(t, a)
	if err := a.Apply(Desired{v4a: {"eth0"}, v4b: {"eth0", "eth1"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first schedule", func() bool { return f.ev.count("gratuitous ") == 6 })
	a.Reannounce()
	if n := f.ev.count("gratuitous "); n != 9 {
		t.Fatalf("%d gratuitous packets when Reannounce returned, want 9 (one more per binding)", n)
	}
	eventually(t, "the second schedule", func() bool { return f.ev.count("gratuitous ") == 12 })
	for _, want := range []string{"gratuitous eth0/IPv4 198.51.100.200", "gratuitous eth0/IPv4 198.51.100.201", "gratuitous eth1/IPv4 198.51.100.201"} {
		if n := f.ev.count(want); n != 4 {
			t.Errorf("%d of %q, want 4", n, want)
		}
	}
	time.Sleep(60 * time.Millisecond)
	if n := f.ev.count("gratuitous "); n != 12 {
		t.Errorf("%d gratuitous packets in all, want 12", n)
	}
}

func TestAnnouncerRemovalCancelsRepeats(t *testing.T) {
	a, f := newTestAnnouncer(0, 50*time.Millisecond)
	run(t, a)
	if err := a.Apply(Desired{v4a: {"eth0"}, v4b: {"eth0"}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(Desired{v4b: {"eth0"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the repeat for the kept address", func() bool { return f.ev.count("gratuitous eth0/IPv4 198.51.100.201") == 2 })
	time.Sleep(30 * time.Millisecond)
	if n := f.ev.count("gratuitous eth0/IPv4 198.51.100.200"); n != 1 {
		t.Errorf("%d gratuitous packets for the removed address, want only the first", n)
	}
	if n := f.ev.count("gratuitous-refused"); n != 0 {
		t.Errorf("%d gratuitous packets asked for addresses not answered", n)
	}
}

func TestAnnouncerRetriesOpen(t *testing.T) {
	a, f := newTestAnnouncer()
	f.setOpenErr("eth1", syscall.ENODEV)
	run(t, a)
	err := a.Apply(Desired{v4a: {"eth0", "eth1"}})
	if !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("Apply = %v, want ENODEV", err)
	}
	if diff := cmp.Diff([]Binding{bind("eth0", v4a)}, a.Bindings(), netipOpts); diff != "" {
		t.Errorf("the interface that opened does not answer (-want +got):\n%s", diff)
	}
	// The interface appears: the Announcer opens it by itself.
	eventually(t, "a retry", func() bool { return f.ev.count("open-failed eth1") >= 2 })
	f.setOpenErr("eth1", nil)
	eventually(t, "eth1 answering", func() bool { return len(a.Bindings()) == 2 })
	eventually(t, "the gratuitous packet on eth1", func() bool { return f.ev.count("gratuitous eth1/IPv4 198.51.100.200") == 1 })
}

func TestAnnouncerReopensFailedResponder(t *testing.T) {
	a, f := newTestAnnouncer()
	run(t, a)
	if err := a.Apply(Desired{v4a: {"eth0"}}); err != nil {
		t.Fatal(err)
	}
	r := f.responder(Link{"eth0", config.IPv4})
	<-r.running
	r.fail <- syscall.ENETDOWN // the interface went down
	eventually(t, "a second Responder", func() bool { return f.ev.count("open eth0 IPv4") == 2 })
	eventually(t, "answering again", func() bool { return f.ev.count("gratuitous eth0/IPv4") == 2 })
	if !r.closed {
		t.Errorf("the failed Responder was not closed")
	}
	if diff := cmp.Diff([]Binding{bind("eth0", v4a)}, a.Bindings(), netipOpts); diff != "" {
		t.Errorf("Bindings (-want +got):\n%s", diff)
	}
}

func TestAnnouncerRunStartsAndStopsResponders(t *testing.T) {
	a, f := newTestAnnouncer()
	// Apply before Run: the Responder is open and answers at once; Run
	// serves it.
	if err := a.Apply(Desired{v4a: {"eth0"}}); err != nil {
		t.Fatal(err)
	}
	if n := f.ev.count("run "); n != 0 {
		t.Fatalf("a Responder runs before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	eventually(t, "the Responder running", func() bool { return f.ev.count("run eth0/IPv4") == 1 })
	if err := a.Apply(Desired{v4a: {"eth0"}, v6a: {"eth0"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new Responder running", func() bool { return f.ev.count("run eth0/IPv6") == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	for _, l := range []Link{{"eth0", config.IPv4}, {"eth0", config.IPv6}} {
		if !f.responder(l).closed {
			t.Errorf("%v not closed when Run returned", l)
		}
	}
	if len(a.Bindings()) != 0 {
		t.Errorf("Bindings after Run = %v", a.Bindings())
	}
	if err := a.Apply(Desired{v4a: {"eth0"}}); !errors.Is(err, ErrStopped) {
		t.Errorf("Apply after Run = %v, want ErrStopped", err)
	}
	if err := a.Run(context.Background()); err == nil {
		t.Errorf("a second Run succeeded")
	}
}

func TestAnnouncerAddFailure(t *testing.T) {
	a, f := newTestAnnouncer()
	if err := a.Apply(Desired{v4a: {"eth0"}}); err != nil {
		t.Fatal(err)
	}
	r := f.responder(Link{"eth0", config.IPv4})
	r.setAddErr(syscall.EADDRNOTAVAIL)
	if err := a.Apply(Desired{v4a: {"eth0"}, v4b: {"eth0"}}); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("Apply = %v, want EADDRNOTAVAIL", err)
	}
	if diff := cmp.Diff([]Binding{bind("eth0", v4a)}, a.Bindings(), netipOpts); diff != "" {
		t.Errorf("Bindings (-want +got):\n%s", diff)
	}
	r.setAddErr(nil)
	run(t, a)
	eventually(t, "the retry to add", func() bool { return len(a.Bindings()) == 2 })
}

// TestAnnouncerAddFailuresSummed makes every address of a link fail to be
// added, and checks that the failure is reported as one error counting
// them, logged once across retries that fail for the same cause.
func TestAnnouncerAddFailuresSummed(t *testing.T) {
	a, f := newTestAnnouncer()
	var logged []string
	a.Log = funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{})
	if err := a.Apply(Desired{v4a: {"eth0"}}); err != nil {
		t.Fatal(err)
	}
	r := f.responder(Link{"eth0", config.IPv4})
	r.setAddErr(syscall.ENOMEM)
	want := Desired{}
	ip := netip.MustParseAddr("203.0.113.10")
	for range 50 {
		want[ip] = []string{"eth0"}
		ip = ip.Next()
	}
	for i := range 3 {
		err := a.Apply(want)
		if !errors.Is(err, syscall.ENOMEM) || !strings.Contains(err.Error(), "and 49 more addresses on eth0") {
			t.Fatalf("Apply %d = %v, want ENOMEM for 50 addresses", i, err)
		}
		if n := strings.Count(err.Error(), "\n"); n != 0 {
			t.Errorf("Apply %d returned %d lines, want one:\n%v", i, n+1, err)
		}
	}
	if len(logged) != 1 {
		t.Errorf("logged %d times, want once: %q", len(logged), logged)
	}
}
