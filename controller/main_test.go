package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/internal/testenv"
)

// TestLifecycle starts the controller program against a real API server:
// it serves /healthz and /metrics, takes the leader Lease, and exits with
// status 0 on SIGTERM.
func TestLifecycle(t *testing.T) {
	env := testenv.Start(t, testenv.Options{CRDs: true})
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ironlb-system"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	d := testenv.StartDaemon(t, env, "github.com/ironlb/ironlb/controller", "--leader-elect=true")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d.WaitHealthy(t, ctx)
	for {
		metrics, err := testenv.WaitHTTP(ctx, d.MetricsURL)
		if err != nil {
			t.Fatalf("controller metrics: %v", err)
		}
		if strings.Contains(metrics, `leader_election_master_status{name="ironlb-controller"} 1`) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the controller did not become leader; metrics:\n%s", metrics)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := d.Stop(syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatalf("controller after SIGTERM: %v", err)
	}
}
