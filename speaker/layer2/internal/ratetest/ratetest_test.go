package ratetest

import (
	"math"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// fake answers a request at once when answer says so.
type fake struct {
	answered atomic.Int64
	answer   func(i int) bool
	delay    time.Duration
}

func (f *fake) requester() Requester {
	return Requester{
		Send: func(i int) error {
			sleep(f.delay)
			if f.answer(i) {
				f.answered.Add(1)
			}
			return nil
		},
		Answered: f.answered.Load,
	}
}

// TestMain runs the tests on a virtual clock that moves only when Run or
// a fake requester sleeps, so that no trial depends on the machine's
// load.
func TestMain(m *testing.M) {
	virtual := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now = func() time.Time { return virtual }
	sleep = func(d time.Duration) { virtual = virtual.Add(max(d, 0)) }
	os.Exit(m.Run())
}

func TestSearch(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *fake
		cfg  Config
		// best and firstLoss are the Targets of the trials Search
		// returns, 0 for none.
		best, firstLoss float64
		senderBound     bool
	}{{
		name: "answers everything",
		f:    &fake{answer: func(int) bool { return true }},
		cfg:  Config{From: 1000, Max: 8000, Trial: 50 * time.Millisecond, Steps: 3},
		best: 8000,
	}, {
		// A trial of 50 ms holds more than 500 requests above 10,000/s.
		name:      "loses a trial's requests after the 500th",
		f:         &fake{answer: func(i int) bool { return i < 500 }},
		cfg:       Config{From: 1000, Max: 1e6, Trial: 50 * time.Millisecond, Steps: 3},
		best:      10000,
		firstLoss: 11000,
	}, {
		name:      "answers nothing",
		f:         &fake{answer: func(int) bool { return false }},
		cfg:       Config{From: 1000, Max: 1e6, Trial: 50 * time.Millisecond, Steps: 2},
		firstLoss: 250,
	}, {
		name:        "sends too slowly",
		f:           &fake{answer: func(int) bool { return true }, delay: time.Millisecond},
		cfg:         Config{From: 2000, Max: 1e6, Trial: 50 * time.Millisecond, Steps: 3},
		best:        2000,
		senderBound: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Search(tc.f.requester(), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Best.Target != tc.best || res.FirstLoss.Target != tc.firstLoss || res.SenderBound != tc.senderBound {
				t.Errorf("Search: best %v, first loss %v, sender bound %v; want %v, %v, %v; trials %v",
					res.Best, res.FirstLoss, res.SenderBound, tc.best, tc.firstLoss, tc.senderBound, res.Trials)
			}
			if res.Best.Lost() != 0 {
				t.Errorf("best trial %v lost answers", res.Best)
			}
		})
	}
}

func TestRunCountsOnlyItsOwnAnswers(t *testing.T) {
	f := &fake{answer: func(int) bool { return true }}
	f.answered.Store(1000) // answers to earlier trials
	tr, err := Run(f.requester(), 2000, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Sent != 100 || tr.Answered != 100 || tr.Lost() != 0 {
		t.Errorf("Run = %v, want 100 of 100 answered", tr)
	}
}

func TestSustain(t *testing.T) {
	// Loses requests after the 100th of a trial: above 2,000/s for 50 ms.
	f := &fake{answer: func(i int) bool { return i < 100 }}
	tr, err := Sustain(f.requester(), 2400, 50*time.Millisecond, 5)
	if err != nil {
		t.Fatal(err)
	}
	if math.Round(tr.Target) != 1734 || tr.Lost() != 0 {
		t.Errorf("Sustain = %v, want 1734/s (2,400 less 15%% twice) with nothing lost", tr)
	}
}
