package lab

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// live holds the labs tests run, so that an interrupted test binary
// (SIGINT, SIGTERM) tears them down before it exits.
var live struct {
	sync.Mutex
	labs map[*Lab]bool
	once sync.Once
	// interrupted ends when a signal came: labs being started give up
	// (and remove what they built), then the handler exits.
	interrupted context.Context
	interrupt   context.CancelFunc
	starting    sync.WaitGroup
}

// watchSignals installs, once, the handler that tears down every lab of
// the test binary on SIGINT or SIGTERM and exits.
func watchSignals() {
	live.once.Do(func() {
		// The lab's controller-runtime client logs nowhere.
		ctrllog.SetLogger(logr.Discard())
		live.interrupted, live.interrupt = context.WithCancel(context.Background())
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			sig := <-ch
			live.interrupt()
			live.Lock()
			for l := range live.labs {
				fmt.Fprintf(os.Stderr, "lab: %v: tearing down lab %s\n", sig, l.ID)
				_ = l.Close()
			}
			live.starting.Wait()
			os.Exit(1)
		}()
	})
}

func register(l *Lab) {
	live.Lock()
	defer live.Unlock()
	if live.labs == nil {
		live.labs = map[*Lab]bool{}
	}
	live.labs[l] = true
}

func unregister(l *Lab) {
	live.Lock()
	defer live.Unlock()
	delete(live.labs, l)
}

// RequireEnv is the environment variable that turns a missing
// prerequisite of an end-to-end test (root, a tool, the control plane)
// from a skip into a failure. `make test` (as root) and CI set it.
const RequireEnv = "IRONLB_REQUIRE_E2E"

// Missing skips the test for a missing prerequisite, saying what is
// missing, or fails it when RequireEnv is 1.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf("SKIP: "+format, args...)
}

// New starts a lab for a test and tears it down when the test ends, also
// when it fails or the test binary gets SIGINT or SIGTERM; a failed test
// logs the tail of every process's log first. Tests run with -short skip; a machine without a prerequisite
// skips (see Missing).
func New(t testing.TB, cfg Config) *Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIP: end-to-end test; -short runs unit tests only")
	}
	full, err := cfg.defaults()
	if err != nil {
		t.Fatal(err)
	}
	if missing := Prerequisites(full); len(missing) > 0 {
		Missing(t, "the lab needs %s", strings.Join(missing, ", "))
	}
	watchSignals()
	ctx, cancel := context.WithTimeout(live.interrupted, 2*time.Minute)
	defer cancel()
	start := time.Now()
	live.starting.Add(1)
	l, err := Start(ctx, cfg)
	if err == nil {
		register(l)
	}
	live.starting.Done()
	if err != nil {
		t.Fatalf("start lab: %v", err)
	}
	t.Logf("lab %s up in %v", l.ID, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		defer unregister(l)
		if t.Failed() {
			t.Logf("logs of lab %s:\n%s", l.ID, l.Logs(20))
		}
		if err := l.Close(); err != nil {
			t.Errorf("tear down lab %s: %v", l.ID, err)
		}
	})
	return l
}
