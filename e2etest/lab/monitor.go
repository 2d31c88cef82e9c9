package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Event is one line of `ip -ts monitor`: a change the kernel reported in
// a namespace, with the time `ip` received it (microseconds).
type Event struct {
	// Time is when the change was reported.
	Time time.Time
	// Object is what changed: "neigh", "route", "addr" or "link".
	Object string
	// Deleted says the object went away ("Deleted ..." lines).
	Deleted bool
	// Line is the rest of the line, for example
	// "198.51.100.200 dev eth0 lladdr 02:... REACHABLE".
	Line string
}

// Fields returns the words of the event's line.
func (e Event) Fields() []string { return strings.Fields(e.Line) }

// Monitor follows kernel events in one namespace with `ip -ts monitor`.
// Events are kept in order; Wait finds the first that matches since a
// position, so that a test can start a monitor, cause a change, and read
// exactly when it happened.
type Monitor struct {
	proc *Process

	mu     sync.Mutex
	events []Event
	notify chan struct{}
	done   bool
}

// startMonitor starts `ip -ts monitor objects...` in namespace ns.
func (l *Lab) startMonitor(ctx context.Context, name, ns string, objects ...string) (*Monitor, error) {
	args := append([]string{"ip", "-n", ns, "-ts", "monitor"}, objects...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start monitor in %s: %w", ns, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start monitor in %s: %w", ns, err)
	}
	p := &Process{Name: "monitor-" + name, Namespace: ns, cmd: cmd, done: make(chan struct{})}
	m := &Monitor{proc: p, notify: make(chan struct{})}
	l.procs.add(p)
	go func() {
		m.read(stdout, objects)
		p.err = cmd.Wait()
		close(p.done)
	}()
	// `ip monitor` has subscribed once it runs; give it a moment to bind
	// its netlink socket so that no change right after this call is lost.
	time.Sleep(20 * time.Millisecond)
	return m, nil
}

func (m *Monitor) read(r io.Reader, objects []string) {
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		// A multipath route continues on lines that start with a tab;
		// `ip` writes a whole message at once, so they are buffered
		// already.
		for br.Buffered() > 0 {
			next, perr := br.Peek(1)
			if perr != nil || (next[0] != '\t' && next[0] != ' ') {
				break
			}
			more, err := br.ReadString('\n')
			if err != nil {
				break
			}
			line = strings.TrimRight(line, "\n") + " " + strings.TrimSpace(more) + "\n"
		}
		ev, ok := parseMonitorLine(strings.TrimRight(line, "\n"))
		if !ok {
			continue
		}
		if ev.Object == "" {
			ev.Object = inferObject(ev.Line, objects)
		}
		m.mu.Lock()
		m.events = append(m.events, ev)
		close(m.notify)
		m.notify = make(chan struct{})
		m.mu.Unlock()
	}
	m.mu.Lock()
	m.done = true
	close(m.notify)
	m.notify = make(chan struct{})
	m.mu.Unlock()
}

// neighborStates are the states `ip monitor neigh` ends a line with.
var neighborStates = map[string]bool{
	"REACHABLE": true, "STALE": true, "DELAY": true, "PROBE": true, "FAILED": true,
	"INCOMPLETE": true, "PERMANENT": true, "NOARP": true, "NONE": true,
}

// inferObject says what an untagged line is about: `ip monitor` tags lines
// only when it follows everything.
func inferObject(line string, objects []string) string {
	if len(objects) == 1 {
		return objects[0]
	}
	f := strings.Fields(line)
	if strings.Contains(line, " lladdr ") || (len(f) > 0 && neighborStates[f[len(f)-1]]) {
		return "neigh"
	}
	return "route"
}

// parseMonitorLine reads a line of `ip -ts monitor`, for example
// "[2026-11-23T17:41:49.123456] 198.51.100.200 dev eth0 lladdr ... REACHABLE".
// `ip` prints local time; an object tag ("[NEIGH]") appears only with
// `monitor all`.
func parseMonitorLine(line string) (Event, bool) {
	if !strings.HasPrefix(line, "[") {
		return Event{}, false
	}
	end := strings.Index(line, "]")
	if end < 0 {
		return Event{}, false
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05.000000", line[1:end], time.Local)
	if err != nil {
		return Event{}, false
	}
	ev := Event{Time: t}
	rest := strings.TrimSpace(line[end+1:])
	if strings.HasPrefix(rest, "[") {
		if e := strings.Index(rest, "]"); e > 0 {
			ev.Object = strings.ToLower(rest[1:e])
			rest = rest[e+1:]
		}
	}
	rest = strings.TrimSpace(rest)
	if r, ok := strings.CutPrefix(rest, "Deleted "); ok {
		ev.Deleted, rest = true, r
	}
	ev.Line = rest
	return ev, true
}

// Len returns how many events the monitor has seen; pass it to Wait to
// consider only later ones.
func (m *Monitor) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.events)
}

// Events returns every event seen so far.
func (m *Monitor) Events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.events...)
}

// Wait returns the first event at index from or later that match accepts,
// waiting for it until ctx ends.
func (m *Monitor) Wait(ctx context.Context, from int, match func(Event) bool) (Event, error) {
	for {
		m.mu.Lock()
		for i := from; i < len(m.events); i++ {
			if match(m.events[i]) {
				ev := m.events[i]
				m.mu.Unlock()
				return ev, nil
			}
		}
		from = len(m.events)
		done, notify := m.done, m.notify
		m.mu.Unlock()
		if done {
			return Event{}, fmt.Errorf("wait for event: monitor %s stopped", m.proc.Name)
		}
		select {
		case <-ctx.Done():
			return Event{}, fmt.Errorf("wait for event from %s: %w", m.proc.Name, ctx.Err())
		case <-notify:
		}
	}
}

// Stop ends the monitor.
func (m *Monitor) Stop() error { return m.proc.Kill() }

// Mentions returns a match function for Wait accepting events whose line
// contains every word given, and that were (deleted) or were not
// (!deleted) deletions.
func Mentions(deleted bool, words ...string) func(Event) bool {
	return func(e Event) bool {
		if e.Deleted != deleted {
			return false
		}
		fields := e.Fields()
		for _, w := range words {
			found := false
			for _, f := range fields {
				if f == w {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
}
