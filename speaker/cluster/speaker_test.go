package cluster

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestJoined(t *testing.T) {
	for _, tc := range []struct {
		name         string
		before, live map[string]bool
		want         []string
	}{
		{"none came", map[string]bool{"a": true, "b": true}, map[string]bool{"a": true, "b": true}, nil},
		{"one left", map[string]bool{"a": true, "b": true}, map[string]bool{"a": true}, nil},
		{"two came back", map[string]bool{"a": true}, map[string]bool{"c": true, "a": true, "b": true}, []string{"b", "c"}},
		{"one came, one left", map[string]bool{"a": true, "b": true}, map[string]bool{"a": true, "c": true}, []string{"c"}},
		{"marked dead is not live", map[string]bool{"a": true}, map[string]bool{"a": true, "b": false}, nil},
		{"from a dead mark", map[string]bool{"a": true, "b": false}, map[string]bool{"a": true, "b": true}, []string{"b"}},
	} {
		if got := joined(tc.before, tc.live); !slices.Equal(got, tc.want) {
			t.Errorf("%s: joined = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRest(t *testing.T) {
	start := time.Now()
	rest(context.Background(), 30*time.Millisecond)
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("after a 30ms pass rested %v, want 30ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start = time.Now()
	rest(ctx, time.Hour)
	if d := time.Since(start); d >= maxRest {
		t.Errorf("with its context done rested %v", d)
	}
}
