// Package ratetest finds how many requests per second a responder answers
// without losing one, for the layer-2 packages' benchmarks: a requester
// sends requests at a paced rate and counts the answers; Search doubles
// the rate until answers go missing, then narrows down on the highest
// rate with none lost.
package ratetest

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// Requester sends requests and counts the answers to them.
type Requester struct {
	// Send sends the i-th request of a trial.
	Send func(i int) error
	// Answered returns how many answers have come in so far, in all.
	Answered func() int64
}

// Trial is one run of requests at a fixed rate.
type Trial struct {
	// Target is the rate asked for, in requests per second.
	Target float64
	// Rate is the rate achieved: requests sent over the time taken to
	// send them.
	Rate float64
	// Sent and Answered count the requests and their answers.
	Sent, Answered int
	// Behind is how late the last request went out, against the pace.
	Behind time.Duration
}

// Lost returns the number of requests left unanswered.
func (t Trial) Lost() int { return max(t.Sent-t.Answered, 0) }

// String describes the trial.
func (t Trial) String() string {
	return fmt.Sprintf("%.0f/s asked, %.0f/s sent, %d of %d answered", t.Target, t.Rate, t.Answered, t.Sent)
}

// now and sleep are the clock Run paces by; the package's tests replace
// them with a virtual one.
var (
	now   = time.Now
	sleep = time.Sleep
)

// quiet is how long Run waits for a straggling answer before it counts
// the missing ones lost. Answers on a veth take microseconds.
const quiet = 50 * time.Millisecond

// Run sends requests at rate per second for d, waits until every one is
// answered or no answer has come for a while, and returns the trial.
// Requests go out in small bursts as the sleep between them allows,
// never more than a millisecond's worth ahead of the pace.
func Run(r Requester, rate float64, d time.Duration) (Trial, error) {
	if rate <= 0 || d <= 0 {
		return Trial{}, fmt.Errorf("ratetest: run at %v/s for %v: want a positive rate and duration", rate, d)
	}
	n := max(int(rate*d.Seconds()), 1)
	before := r.Answered()
	start := now()
	// at is when request i is due, counted from start.
	at := func(i int) time.Duration { return time.Duration(float64(i) / rate * float64(time.Second)) }
	for i := 0; i < n; {
		for elapsed := now().Sub(start); i < n && at(i) <= elapsed; i++ {
			if err := r.Send(i); err != nil {
				return Trial{}, fmt.Errorf("ratetest: send request %d: %w", i, err)
			}
		}
		if i < n {
			sleep(at(i) - now().Sub(start))
		}
	}
	elapsed := now().Sub(start)
	last, lastAt := r.Answered(), now()
	for last-before < int64(n) && now().Sub(lastAt) < quiet {
		sleep(time.Millisecond)
		if a := r.Answered(); a != last {
			last, lastAt = a, now()
		}
	}
	t := Trial{Target: rate, Rate: rate, Sent: n, Answered: int(last - before)}
	t.Behind = max(elapsed-time.Duration(float64(n-1)/rate*float64(time.Second)), 0)
	if n > 1 && elapsed > 0 {
		// The first request goes out at 0, the last at elapsed.
		t.Rate = float64(n-1) / elapsed.Seconds()
	}
	return t, nil
}

// Config says how Search looks for the highest lossless rate.
type Config struct {
	// From is the first rate tried, Max the highest, in requests per
	// second.
	From, Max float64
	// Trial is how long each trial sends for.
	Trial time.Duration
	// Steps is the number of halvings of the interval between the last
	// lossless rate and the first lossy one.
	Steps int
}

// Result is what Search found.
type Result struct {
	// Best is the fastest trial that lost nothing; its Sent is 0 when
	// every trial lost answers.
	Best Trial
	// FirstLoss is the slowest trial that lost answers; its Sent is 0
	// when none did.
	FirstLoss Trial
	// SenderBound says that the requester could not send as fast as
	// asked, and the responder answered all it could send: Best is a
	// lower bound.
	SenderBound bool
	// Trials are all the trials, in the order run.
	Trials []Trial
}

// Search runs trials from cfg.From up, doubling the rate until a trial
// loses an answer, the requester falls behind the pace by more than a
// tenth of a trial, or cfg.Max is reached; then it halves the interval between the fastest lossless rate
// and the slowest lossy one cfg.Steps times.
func Search(r Requester, cfg Config) (Result, error) {
	if cfg.From <= 0 || cfg.Max < cfg.From || cfg.Trial <= 0 {
		return Result{}, errors.New("ratetest: search: want 0 < From <= Max and a positive Trial")
	}
	var res Result
	try := func(rate float64) (Trial, error) {
		t, err := Run(r, rate, cfg.Trial)
		if err != nil {
			return t, err
		}
		res.Trials = append(res.Trials, t)
		if t.Lost() == 0 {
			if t.Rate > res.Best.Rate {
				res.Best = t
			}
		} else if res.FirstLoss.Sent == 0 || t.Target < res.FirstLoss.Target {
			res.FirstLoss = t
		}
		return t, nil
	}
	rate := cfg.From
	for {
		t, err := try(rate)
		if err != nil {
			return res, err
		}
		if t.Lost() > 0 {
			break
		}
		if t.Behind > max(cfg.Trial/10, 2*time.Millisecond) {
			res.SenderBound = true
			return res, nil
		}
		if rate >= cfg.Max {
			return res, nil
		}
		rate = min(2*rate, cfg.Max)
	}
	// lo is 0 when even cfg.From lost answers: the halving looks below.
	lo, hi := res.Best.Target, res.FirstLoss.Target
	for range cfg.Steps {
		mid := (lo + hi) / 2
		t, err := try(mid)
		if err != nil {
			return res, err
		}
		if t.Lost() == 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return res, nil
}

// Sustain runs trials of d at rate, then at rates 15% lower each time,
// until one loses nothing or steps trials have run, and returns the last
// trial: Search's short trials find a rate, Sustain checks that it holds
// for longer.
func Sustain(r Requester, rate float64, d time.Duration, steps int) (Trial, error) {
	var t Trial
	for range max(steps, 1) {
		var err error
		if t, err = Run(r, rate, d); err != nil || t.Lost() == 0 {
			return t, err
		}
		rate *= 0.85
	}
	return t, nil
}

// Measure finds the highest rate at which r's requests are all answered
// (Search from 1,000 per second, in trials of 150 ms), checks that it
// holds for a second (Sustain, stepping down 15% at most four times),
// and reports to b:
//
//   - answers/s: the rate of the second-long trial;
//   - lost: the requests of that trial left unanswered, 0 unless even the
//     last step down lost some.
func Measure(b *testing.B, r Requester) {
	b.Helper()
	res, err := Search(r, Config{From: 1000, Max: 1 << 20, Trial: 150 * time.Millisecond, Steps: 3})
	if err != nil {
		b.Fatal(err)
	}
	if res.Best.Sent == 0 {
		b.Fatalf("every trial lost answers: %v", res.Trials)
	}
	if res.SenderBound {
		b.Logf("the requester sent no faster than %.0f/s: the responder may answer more", res.Best.Rate)
	}
	sustained, err := Sustain(r, res.Best.Target, time.Second, 4)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("fastest lossless trial %v; first lossy trial %v; for a second: %v", res.Best, res.FirstLoss, sustained)
	b.ReportMetric(sustained.Rate, "answers/s")
	b.ReportMetric(float64(sustained.Lost()), "lost")
}
