package labctl

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/e2etest/lab"
)

const usage = `usage: lab <command> [flags]

Commands:
  up      start a lab and keep it until Ctrl-C (-detach: in the background)
  down    tear down running labs (-id ID: only that one)
  clean   remove what crashed labs left behind
  status  list running labs
  demo    run ironlb's samples on a lab and show what a user sees
          (-keep: leave the lab running afterwards)

Run "lab <command> -h" for a command's flags. The lab needs root, iproute2,
nftables, frr, bird2, curl and ping, and the control plane from
"make controlplane"; demo and speakers need "make build".
`

// Run runs the lab command with args (without the program name) and
// returns the process exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	var err error
	switch args[0] {
	case "up":
		err = up(ctx, args[1:], stdout, stderr)
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "down":
		err = down(ctx, args[1:], stdout, stderr)
	case "clean":
		err = clean(ctx, stdout)
	case "status":
		err = status(stdout)
	case "demo":
		err = demo(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "lab: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "lab %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// upFlags are the flags of up, serve and demo.
type upFlags struct {
	nodes     int
	noRouters bool
	demo      bool
	detach    bool
	keep      bool
}

func (f *upFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.nodes, "nodes", 3, fmt.Sprintf("number of nodes (1-%d)", lab.MaxNodes))
	fs.BoolVar(&f.noRouters, "no-routers", false, "leave FRR and BIRD out")
}

func (f upFlags) config() lab.Config {
	return lab.Config{Nodes: f.nodes, NoRouters: f.noRouters}
}

// newFlagSet returns a flag set that reports to w.
func newFlagSet(name string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	return fs
}

func up(ctx context.Context, args []string, w, errw io.Writer) error {
	var f upFlags
	fs := newFlagSet("up", errw)
	f.register(fs)
	fs.BoolVar(&f.demo, "demo", false, "also install ironlb and its samples, pods, the controller and speakers")
	fs.BoolVar(&f.detach, "detach", false, "run the lab in the background; 'lab down' tears it down")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.detach {
		l, err := startDetached(ctx, f, w)
		if err != nil {
			return err
		}
		fmt.Fprint(w, l.Summary())
		printUse(ctx, w, l)
		return nil
	}
	start := time.Now()
	l, err := lab.Start(ctx, f.config())
	if err != nil {
		return err
	}
	defer closeLab(l, w)
	fmt.Fprintf(w, "lab %s up in %v\n", l.ID, time.Since(start).Round(time.Millisecond))
	if f.demo {
		if err := deploy(ctx, l, w); err != nil {
			return err
		}
	}
	fmt.Fprint(w, l.Summary())
	fmt.Fprintf(w, "\nThe lab runs until Ctrl-C (or `lab down -id %s` from another shell).\n", l.ID)
	<-ctx.Done()
	return nil
}

func closeLab(l *lab.Lab, w io.Writer) {
	fmt.Fprintf(w, "tearing down lab %s\n", l.ID)
	if err := l.Close(); err != nil {
		fmt.Fprintf(w, "tear down lab %s: %v\n", l.ID, err)
	}
}

// printUse tells how to use a lab that keeps running.
func printUse(ctx context.Context, w io.Writer, l *lab.Lab) {
	l2, routed := "<EXTERNAL-IP>", "<EXTERNAL-IP>"
	if ips, err := l.ServiceIPs(ctx, demoNamespace, l2Service); err == nil && len(ips) > 0 {
		l2 = lab.URL(ips[0], servicePort)
	}
	if ips, err := l.ServiceIPs(ctx, demoNamespace, bgpService); err == nil && len(ips) > 0 {
		routed = lab.URL(ips[0], servicePort)
	}
	fmt.Fprintf(w, `
The lab keeps running. To use it:
  export KUBECONFIG=%s
  %s get svc -A
  ip netns exec %s curl %s    # from the layer-2 client
  ip netns exec %s curl %s    # from the routed client
  vtysh -N %s -c 'show ip route bgp'    # FRR
  birdc -s %s/bird/bird.ctl show route  # BIRD
  logs: %s/logs/
To tear it down:
  make demo-down    (or: go run ./e2etest/cmd/lab down -id %s)
`, l.Kubeconfig, l.KubectlPath, l.L2Client.Namespace, l2, l.RoutedClient.Namespace, routed, l.FRR.Namespace, l.Dir, l.Dir, l.ID)
}

// startDetached starts `lab serve` in a new session, so that it outlives
// this process, and attaches to the lab it brings up.
func startDetached(ctx context.Context, f upFlags, w io.Writer) (*lab.Lab, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program: %w", err)
	}
	args := []string{"serve", fmt.Sprintf("-nodes=%d", f.nodes), fmt.Sprintf("-no-routers=%v", f.noRouters), fmt.Sprintf("-demo=%v", f.demo)}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	cmd := exec.Command(self, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return nil, fmt.Errorf("start the lab in the background: %w", err)
	}
	pw.Close()
	go func() { _ = cmd.Wait() }() // reaped if it ends while we wait
	fmt.Fprintf(w, "starting a lab in the background (pid %d)...\n", cmd.Process.Pid)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return nil, ctx.Err()
		case line, ok := <-lines:
			if !ok {
				return nil, errors.New("the background lab exited before it was ready")
			}
			if id, found := strings.CutPrefix(line, "ready "); found {
				return lab.Attach(id)
			}
			if msg, found := strings.CutPrefix(line, "error "); found {
				return nil, errors.New(msg)
			}
			fmt.Fprintln(w, line)
		}
	}
}

// serve is the background owner of a detached lab: it reports progress
// and "ready <ID>" (or "error <message>") on file descriptor 3, then
// keeps the lab until SIGTERM.
func serve(ctx context.Context, args []string, errw io.Writer) error {
	var f upFlags
	fs := newFlagSet("serve", errw)
	f.register(fs)
	fs.BoolVar(&f.demo, "demo", false, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	report := os.NewFile(3, "report")
	say := func(format string, a ...any) { fmt.Fprintf(report, format+"\n", a...) }
	start := time.Now()
	l, err := lab.Start(ctx, f.config())
	if err != nil {
		say("error %s", oneLine(err))
		return err
	}
	defer l.Close()
	say("lab %s up in %v", l.ID, time.Since(start).Round(time.Millisecond))
	if f.demo {
		var b strings.Builder
		err := deploy(ctx, l, &b)
		for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
			say("%s", line)
		}
		if err != nil {
			say("error %s", oneLine(err))
			return err
		}
	}
	say("ready %s", l.ID)
	report.Close()
	<-ctx.Done()
	return nil
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " | ") }

// down tears down running labs: it asks their owner to stop, waits, and
// cleans what is left.
func down(ctx context.Context, args []string, w, errw io.Writer) error {
	fs := newFlagSet("down", errw)
	id := fs.String("id", "", "ID of the lab to tear down; empty means every running lab")
	if err := fs.Parse(args); err != nil {
		return err
	}
	running := lab.Running()
	ids := make([]string, 0, len(running))
	for i := range running {
		if *id == "" || i == *id {
			ids = append(ids, i)
		}
	}
	sort.Strings(ids)
	if *id != "" && len(ids) == 0 {
		fmt.Fprintf(w, "lab %s is not running\n", *id)
	}
	var errs []error
	for _, i := range ids {
		fmt.Fprintf(w, "tearing down lab %s\n", i)
		if err := lab.Stop(ctx, i, time.Minute); err != nil {
			errs = append(errs, err)
		}
	}
	if err := clean(ctx, w); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func clean(ctx context.Context, w io.Writer) error {
	removed, err := lab.Clean(ctx)
	for _, r := range removed {
		fmt.Fprintf(w, "removed %s\n", r)
	}
	return err
}

func status(w io.Writer) error {
	running := lab.Running()
	if len(running) == 0 {
		fmt.Fprintln(w, "no lab is running")
		return nil
	}
	ids := make([]string, 0, len(running))
	for id := range running {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		l, err := lab.Attach(id)
		if err != nil {
			fmt.Fprintf(w, "lab %s: %v\n", id, err)
			continue
		}
		fmt.Fprint(w, l.Summary())
	}
	return nil
}

// repoRoot returns the root of the ironlb source tree this package was
// built from.
func repoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}
