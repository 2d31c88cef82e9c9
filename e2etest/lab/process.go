package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a program the lab started: a daemon of the control plane, a
// router, an ironlb program or a monitor. It dies with the process that
// started it (PR_SET_PDEATHSIG), so that a crashed test leaves none
// behind. Its output goes to a log file in the lab's directory.
type Process struct {
	// Name says what the process is, for example "speaker-node1".
	Name string
	// Namespace is the network namespace it runs in; empty for the root
	// namespace.
	Namespace string
	// LogPath is the file its standard output and error go to.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// ErrStillRunning is returned by Wait when the process outlives the
// timeout.
var ErrStillRunning = errors.New("lab: process still running")

// startProcess starts args[0] with args[1:] in namespace ns (or the root
// namespace when ns is empty), logging to logPath.
func startProcess(name, ns, logPath string, env []string, args ...string) (*Process, error) {
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	fmt.Fprintf(logf, "=== %s start: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Dies with us, and out of the terminal's process group so that
		// Ctrl-C reaches only the lab, which stops things in order.
		Pdeathsig: syscall.SIGKILL,
		Setpgid:   true,
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Namespace: ns, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return fmt.Errorf("signal %s: %s has exited", sig, p.Name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s to %s: %w", sig, p.Name, err)
	}
	return nil
}

// Wait waits up to timeout for the process to exit and returns its exit
// error (nil for status 0), or ErrStillRunning.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return ErrStillRunning
	}
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM (and SIGCONT, in case the process is frozen), waits
// up to grace, then kills it. It returns nil once the process is gone.
func (p *Process) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	if p.Wait(grace) != ErrStillRunning {
		return nil
	}
	return p.Kill()
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	if p.Wait(10*time.Second) == ErrStillRunning {
		return fmt.Errorf("kill %s (pid %d): still running", p.Name, p.PID())
	}
	return nil
}

// stopped reports whether every thread of the process is stopped (state
// T in /proc), as after SIGSTOP.
func (p *Process) stopped() bool {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", p.PID()))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			return false
		}
		s := string(b)
		i := strings.LastIndex(s, ")")
		if i < 0 || i+2 >= len(s) || (s[i+2] != 'T' && s[i+2] != 't') {
			return false
		}
	}
	return true
}

// Log returns what the process has written so far (of every run logged
// to the same file).
func (p *Process) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.LogPath, err)
	}
	return string(b)
}

// processes is the set of processes a lab owns, stopped in reverse order
// of start.
type processes struct {
	mu   sync.Mutex
	list []*Process
	// pidFile records every PID, for Clean after a crash.
	pidFile string
}

func (ps *processes) add(p *Process) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.list = append(ps.list, p)
	if ps.pidFile == "" {
		return
	}
	f, err := os.OpenFile(ps.pidFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err == nil {
		fmt.Fprintf(f, "%d %s\n", p.PID(), p.Name)
		f.Close()
	}
}

// stopAll stops every process still running, the newest first.
func (ps *processes) stopAll(grace time.Duration) error {
	ps.mu.Lock()
	list := append([]*Process(nil), ps.list...)
	ps.mu.Unlock()
	var errs []error
	for i := len(list) - 1; i >= 0; i-- {
		if err := list[i].Stop(grace); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// logTails returns the last lines of every process's log, for a failed
// test.
func (ps *processes) logTails(lines int) string {
	ps.mu.Lock()
	list := append([]*Process(nil), ps.list...)
	ps.mu.Unlock()
	seen := map[string]bool{}
	var b strings.Builder
	for _, p := range list {
		if p.LogPath == "" || seen[p.LogPath] {
			continue
		}
		seen[p.LogPath] = true
		all := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
		if len(all) > lines {
			all = all[len(all)-lines:]
		}
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", p.Name, filepath.Base(p.LogPath), strings.Join(all, "\n"))
	}
	return b.String()
}
