package lab

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

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
// when it fails; a failed test logs the tail of every process's log
// first. Tests run with -short skip; a machine without a prerequisite
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start lab: %v", err)
	}
	t.Logf("lab %s up in %v", l.ID, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of lab %s:\n%s", l.ID, l.Logs(40))
		}
		if err := l.Close(); err != nil {
			t.Errorf("tear down lab %s: %v", l.ID, err)
		}
	})
	return l
}
