package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/testenv"
)

// TestLifecycle starts the speaker program against a real API server: it
// serves /healthz and /metrics and exits with status 0 on SIGTERM.
func TestLifecycle(t *testing.T) {
	env := testenv.Start(t, testenv.Options{CRDs: true})
	d := testenv.StartDaemon(t, env, "github.com/ironlb/ironlb/speaker", "--node-name=node-1")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d.WaitHealthy(t, ctx)
	metrics, err := testenv.WaitHTTP(ctx, d.MetricsURL)
	if err != nil {
		t.Fatalf("speaker metrics: %v", err)
	}
	if !strings.Contains(metrics, "go_goroutines") {
		t.Errorf("speaker /metrics lacks the Go runtime metrics:\n%s", metrics)
	}
	if err := d.Stop(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatalf("speaker after SIGTERM: %v", err)
	}
}

// TestNeedsNodeName shows that a speaker without a node name refuses to
// start and says how to give it one.
func TestNeedsNodeName(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	t.Setenv("NODE_NAME", "")
	d := testenv.StartDaemon(t, env, "github.com/ironlb/ironlb/speaker")
	if err := d.Wait(30 * time.Second); err == nil || !d.Exited() {
		t.Fatalf("the speaker without a node name: %v; want it to exit with an error", err)
	}
	if out := d.Output(); !strings.Contains(out, "pass --node-name or set NODE_NAME") {
		t.Errorf("the speaker's output does not say how to give it a node name:\n%s", out)
	}
}
