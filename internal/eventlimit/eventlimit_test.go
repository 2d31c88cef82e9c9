package eventlimit

import (
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
)

func TestRecorderDropsBeyondBurst(t *testing.T) {
	fake := events.NewFakeRecorder(100)
	reg := prometheus.NewRegistry()
	// No sustained rate: the burst is all there is.
	r, err := New(fake, 0, 3, reg, "speaker", logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}}
	for i := range 10 {
		r.Eventf(svc, nil, corev1.EventTypeNormal, "nodeAssigned", "Announce", "event %d", i)
	}
	r.Eventf(svc, nil, corev1.EventTypeWarning, "noEligibleNode", "Announce", "late")

	var got []string
	for len(fake.Events) > 0 {
		got = append(got, <-fake.Events)
	}
	want := []string{"Normal nodeAssigned event 0", "Normal nodeAssigned event 1", "Normal nodeAssigned event 2"}
	if len(got) != len(want) {
		t.Fatalf("recorded %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %q, want %q", i, got[i], want[i])
		}
	}
	if n := testutil.ToFloat64(r.dropped.WithLabelValues("nodeAssigned")); n != 7 {
		t.Errorf("dropped nodeAssigned = %v, want 7", n)
	}
	if n := testutil.ToFloat64(r.dropped.WithLabelValues("noEligibleNode")); n != 1 {
		t.Errorf("dropped noEligibleNode = %v, want 1", n)
	}
	if _, err := New(fake, 0, 3, reg, "speaker", logr.Discard()); err == nil {
		t.Error("a second Recorder registered the same metric without error")
	}
}

func TestRecorderPassesWithinRate(t *testing.T) {
	fake := events.NewFakeRecorder(100)
	r, err := New(fake, 1000, 50, prometheus.NewRegistry(), "controller", logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}}
	for range 50 {
		r.Eventf(svc, nil, corev1.EventTypeNormal, "IPAllocated", "AllocateIP", "assigned")
	}
	if len(fake.Events) != 50 {
		t.Errorf("recorded %d of 50 events within the burst", len(fake.Events))
	}
	if n := testutil.ToFloat64(r.dropped.WithLabelValues("IPAllocated")); n != 0 {
		t.Errorf("dropped %v within the burst", n)
	}
}
