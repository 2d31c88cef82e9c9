package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Prerequisites returns what the machine lacks to run a lab with cfg:
// root, tools, the control-plane binaries, ironlb's programs are not
// checked here (a lab runs without them until StartSpeaker or
// StartController).
func Prerequisites(cfg Config) []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces need it)")
	}
	tools := []string{"ip", "nft", "sysctl", "curl", "ping"}
	if !cfg.NoRouters {
		tools = append(tools, "/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "vtysh", "bird", "birdc")
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if !cfg.NoRouters {
		if _, err := user.Lookup("frr"); err != nil {
			missing = append(missing, "user frr (the frr package)")
		}
	}
	if cfg.Assets != "" {
		for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
			if _, err := os.Stat(filepath.Join(cfg.Assets, b)); err != nil {
				missing = append(missing, filepath.Join(cfg.Assets, b)+" (run `make controlplane`)")
			}
		}
	}
	return missing
}

// owner is who runs a lab: the PID and start time of the process that
// built it, so that a reused PID is not taken for it.
type owner struct {
	PID   int    `json:"pid"`
	Start string `json:"start"`
}

// processStart returns the start time of a process (field 22 of
// /proc/PID/stat), or "" if it does not exist.
func processStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis.
	i := strings.LastIndex(s, ")")
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

func writeOwner(dir string) error {
	pid := os.Getpid()
	b, _ := json.Marshal(owner{PID: pid, Start: processStart(pid)})
	if err := os.WriteFile(filepath.Join(dir, "owner"), b, 0o600); err != nil {
		return fmt.Errorf("write lab owner: %w", err)
	}
	return nil
}

// readOwner returns the owner of the lab in dir.
func readOwner(dir string) (owner, error) {
	var o owner
	b, err := os.ReadFile(filepath.Join(dir, "owner"))
	if err != nil {
		return o, err
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return o, fmt.Errorf("parse %s: %w", filepath.Join(dir, "owner"), err)
	}
	return o, nil
}

// alive reports whether the owner still runs.
func (o owner) alive() bool {
	return o.PID > 0 && o.Start != "" && processStart(o.PID) == o.Start
}

// Running returns the IDs of the labs whose owner still runs, with
// their directories.
func Running() map[string]string {
	out := map[string]string{}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		if o, err := readOwner(d); err == nil && o.alive() {
			out[strings.TrimPrefix(filepath.Base(d), dirPrefix)] = d
		}
	}
	return out
}

// Clean removes what labs whose owner died left behind: processes (from
// their PID files, only if the process's command line still names the
// lab), namespaces named ilb-<ID>-*, the root link ilb-<ID>, FRR's run
// directories and the labs' directories. Labs whose owner runs are left
// alone. It returns what it removed.
func Clean(ctx context.Context) ([]string, error) {
	var removed []string
	var errs []error
	// Asked anew for each thing: a lab that starts meanwhile writes its
	// owner before it makes anything.
	stale := func(id string) bool {
		o, err := readOwner(Dir(id))
		if err != nil {
			// A lab creates its directory, then writes its owner: a
			// young directory without one is a lab starting.
			if fi, serr := os.Stat(Dir(id)); serr == nil && time.Since(fi.ModTime()) < time.Minute {
				return false
			}
			return true
		}
		return !o.alive()
	}

	// Processes first, so that nothing holds a namespace.
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		id := strings.TrimPrefix(filepath.Base(d), dirPrefix)
		if !stale(id) {
			continue
		}
		for _, pid := range stalePIDs(d, id) {
			killPID(strconv.Itoa(pid))
			removed = append(removed, fmt.Sprintf("process %d", pid))
		}
	}
	if out, err := run(ctx, "ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || !strings.HasPrefix(f[0], NamePrefix) {
				continue
			}
			id, _, _ := strings.Cut(strings.TrimPrefix(f[0], NamePrefix), "-")
			if !stale(id) {
				continue
			}
			if err := deleteNamespace(ctx, f[0]); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, "namespace "+f[0])
		}
	}
	if out, err := run(ctx, "ip", "-j", "link", "show"); err == nil {
		var links []struct {
			Name string `json:"ifname"`
		}
		if json.Unmarshal(out, &links) == nil {
			for _, ln := range links {
				if !strings.HasPrefix(ln.Name, NamePrefix) || !stale(strings.TrimPrefix(ln.Name, NamePrefix)) {
					continue
				}
				if _, err := run(ctx, "ip", "link", "del", ln.Name); err != nil {
					errs = append(errs, err)
					continue
				}
				removed = append(removed, "link "+ln.Name)
			}
		}
	}
	frrDirs, _ := filepath.Glob(filepath.Join("/var/run/frr", NamePrefix+"*"))
	for _, d := range frrDirs {
		id, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), NamePrefix), "-")
		if !stale(id) {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "directory "+d)
	}
	for _, d := range dirs {
		if !stale(strings.TrimPrefix(filepath.Base(d), dirPrefix)) {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "directory "+d)
	}
	return removed, errors.Join(errs...)
}

// stalePIDs returns the PIDs recorded in a dead lab's PID file that still
// run a command line naming the lab (its directory or its namespaces), so
// that a PID reused by an unrelated process is never killed.
func stalePIDs(dir, id string) []int {
	f, err := os.Open(filepath.Join(dir, "pids"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		pid, err := strconv.Atoi(fields[0])
		if err != nil || pid <= 1 {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		c := string(cmdline)
		if strings.Contains(c, dir) || strings.Contains(c, NamePrefix+id+"-") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killPID sends SIGKILL to a process started by a lab, and SIGCONT in
// case it is stopped.
func killPID(s string) {
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 1 || pid == os.Getpid() {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGCONT)
}

// Leftovers returns what exists on the machine with a lab's name: its
// namespaces, root link, FRR run directory, directory and processes
// running in its namespaces. A torn-down lab has none.
func Leftovers(ctx context.Context, id string) ([]string, error) {
	var found []string
	prefix := NamePrefix + id
	out, err := run(ctx, "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			found = append(found, "namespace "+f[0])
		}
	}
	if _, err := run(ctx, "ip", "link", "show", prefix); err == nil {
		found = append(found, "link "+prefix)
	}
	for _, p := range []string{filepath.Join(os.TempDir(), dirPrefix+id)} {
		if _, err := os.Stat(p); err == nil {
			found = append(found, "directory "+p)
		}
	}
	if m, _ := filepath.Glob(filepath.Join("/var/run/frr", prefix+"-*")); len(m) > 0 {
		found = append(found, "directories "+strings.Join(m, " "))
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		c := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(c, dirPrefix+id) || strings.Contains(c, prefix+"-") {
			found = append(found, "process "+filepath.Base(filepath.Dir(p))+": "+c)
		}
	}
	return found, nil
}

// Stop asks the owner of a running lab (another process, see Running) to
// tear it down with SIGTERM, and waits up to timeout for it to exit.
func Stop(ctx context.Context, id string, timeout time.Duration) error {
	o, err := readOwner(Dir(id))
	if err != nil {
		return fmt.Errorf("stop lab %s: %w", id, err)
	}
	if !o.alive() {
		return nil
	}
	if err := syscall.Kill(o.PID, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop lab %s: signal its owner %d: %w", id, o.PID, err)
	}
	deadline := time.Now().Add(timeout)
	for o.alive() {
		if time.Now().After(deadline) {
			return fmt.Errorf("stop lab %s: its owner %d still runs after %v", id, o.PID, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
