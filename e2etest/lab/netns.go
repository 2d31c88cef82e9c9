package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// run runs a command and returns its standard output; the error carries
// its standard error.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return runInput(ctx, nil, name, args...)
}

// runInput is run with stdin.
func runInput(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("run %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// nsExec runs a command inside network namespace ns.
func nsExec(ctx context.Context, ns string, args ...string) ([]byte, error) {
	return run(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// ipBatch runs `ip -batch -` in namespace ns (the root namespace when ns
// is empty): one command per line, stopping at the first that fails.
func ipBatch(ctx context.Context, ns string, lines []string) error {
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	_, err := runInput(ctx, []byte(strings.Join(lines, "\n")+"\n"), "ip", args...)
	return err
}

// sysctl sets kernel parameters inside namespace ns.
func sysctl(ctx context.Context, ns string, settings ...string) error {
	_, err := nsExec(ctx, ns, append([]string{"sysctl", "-q", "-w"}, settings...)...)
	return err
}

// inNamespace runs fn on an OS thread that has entered network namespace
// ns: sockets fn opens belong to ns and stay there. If the thread cannot
// return to its namespace it is left locked, so that the runtime discards
// it.
func inNamespace(ns string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current network namespace: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open network namespace %q: %w", ns, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %q: %w", ns, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Stay locked: the thread dies with this goroutine.
		return fmt.Errorf("leave network namespace %q: %w", ns, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// listenIn opens a TCP listener inside namespace ns.
func listenIn(ns, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNamespace(ns, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, ns, err)
	}
	return l, nil
}

// dialIn returns a dial function whose connections start inside namespace
// ns.
func dialIn(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNamespace(ns, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}
