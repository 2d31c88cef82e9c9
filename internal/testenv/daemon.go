package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles the main package pkg (for example
// "github.com/ironlb/ironlb/controller") with the race detector when the
// test binary has it, and returns the path of the program.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = RepoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// Process is a program started by a test.
type Process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// StartProcess starts the program at path with args and kills it, if it
// still runs, when the test ends.
func StartProcess(t testing.TB, path string, args ...string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(path, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(path), p.out.String())
		}
	})
	return p
}

// Pid returns the program's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output returns what the program has written so far.
func (p *Process) Output() string { return p.out.String() }

// Stop sends sig and waits up to timeout for the program to exit; it
// returns the program's exit error (nil for exit status 0).
func (p *Process) Stop(sig syscall.Signal, timeout time.Duration) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	if err := p.Wait(timeout); err != errStillRunning {
		return err
	}
	return fmt.Errorf("still running %v after %v", timeout, sig)
}

var errStillRunning = errors.New("still running")

// Wait waits up to timeout for the program to exit and returns its exit
// error (nil for exit status 0).
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return errStillRunning
	}
}

// Exited reports whether the program has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// FreePort returns a loopback TCP address nothing listens on at the moment.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitHTTP polls url until it answers 200 or ctx ends, and returns the
// body.
func WaitHTTP(ctx context.Context, url string) (string, error) {
	var last error
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body), nil
			}
			err = fmt.Errorf("status %s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		last = err
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("GET %s: %w (last: %v)", url, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Daemon is one of ironlb's programs running against a test control plane,
// with its health and metrics endpoints on free loopback ports.
type Daemon struct {
	*Process
	// HealthURL and MetricsURL are the program's endpoints.
	HealthURL, MetricsURL string
}

// WaitHealthy waits until the program answers on /healthz, and fails the
// test if it exits first or ctx ends.
func (d *Daemon) WaitHealthy(t testing.TB, ctx context.Context) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-d.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if _, err := WaitHTTP(ctx, d.HealthURL); err != nil {
		if d.Exited() {
			t.Fatalf("%s exited (%v) before it was healthy:\n%s", d.cmd.Path, d.err, d.Output())
		}
		t.Fatalf("%s is not healthy: %v", d.cmd.Path, err)
	}
}

// StartDaemon builds and starts the ironlb program pkg against env, with
// the common flags set and args added.
func StartDaemon(t testing.TB, env *Env, pkg string, args ...string) *Daemon {
	t.Helper()
	health, metrics := FreePort(t), FreePort(t)
	args = append([]string{
		"--kubeconfig=" + env.Kubeconfig,
		"--health-probe-bind-address=" + health,
		"--metrics-bind-address=" + metrics,
		"--log-level=debug",
	}, args...)
	return &Daemon{
		Process:    StartProcess(t, Build(t, pkg), args...),
		HealthURL:  "http://" + health + "/healthz",
		MetricsURL: "http://" + metrics + "/metrics",
	}
}
