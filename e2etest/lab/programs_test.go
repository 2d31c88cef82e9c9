package lab_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/ironlb/ironlb/internal/testenv"
)

// TestProgramsAndHelpers runs the real controller and speakers in a lab
// and exercises the scenario helpers: freeze, thaw, restart, kill, and
// event times from `ip monitor` in a client and a router.
func TestProgramsAndHelpers(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: end-to-end test; -short runs unit tests only")
	}
	if missing := lab.Prerequisites(lab.Config{Assets: testenv.Assets(t)}); len(missing) > 0 {
		lab.Missing(t, "the lab needs %s", strings.Join(missing, ", "))
	}
	speaker := testenv.Build(t, "github.com/ironlb/ironlb/speaker")
	controller := testenv.Build(t, "github.com/ironlb/ironlb/controller")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := lab.New(t, lab.Config{Nodes: 2, Speaker: speaker, Controller: controller})

	if err := l.InstallIronLB(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartController(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Nodes {
		if _, err := n.StartSpeaker(ctx); err != nil {
			t.Fatal(err)
		}
	}
	n1, n2 := l.Nodes[0], l.Nodes[1]

	// A frozen speaker answers nothing; a thawed one does again.
	if err := n1.Freeze(); err != nil {
		t.Fatal(err)
	}
	if lab.Healthy(ctx, n1.SpeakerHealthURL()) {
		t.Error("a frozen speaker answered /healthz")
	}
	if err := n1.Thaw(); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, ctx, n1.SpeakerHealthURL())
	if _, err := n2.RestartSpeaker(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RestartController(ctx); err != nil {
		t.Fatal(err)
	}

	// The client's neighbour table, as `ip monitor` reports it.
	mon, err := l.L2Client.Monitor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	from := mon.Len()
	sent := time.Now()
	if got, err := l.L2Client.Ping(ctx, n2.IPv4, 1, 100*time.Millisecond); err != nil || got != 1 {
		t.Fatalf("ping %s: %d answers, %v", n2.IPv4, got, err)
	}
	ev, err := mon.Wait(ctx, from, lab.Mentions(false, n2.IPv4.String()))
	if err != nil {
		t.Fatal(err)
	}
	mac, err := n2.MAC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Object != "neigh" || !strings.Contains(ev.Line, mac) || ev.Time.Before(sent.Add(-time.Second)) || ev.Time.After(time.Now()) {
		t.Errorf("neighbour event %+v: want %s at %s, after %v", ev, n2.IPv4, mac, sent)
	}
	if nb, ok, err := l.L2Client.Neighbor(ctx, n2.IPv4); err != nil || !ok || nb.MAC != mac {
		t.Errorf("neighbour entry of %s: %+v %v %v, want MAC %s", n2.IPv4, nb, ok, err, mac)
	}

	// A router's kernel routes, with ECMP next hops, and when they came
	// and went.
	rmon, err := l.FRR.Monitor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	from = rmon.Len()
	vip := netip.MustParseAddr("203.0.113.77")
	if _, err := exec.CommandContext(ctx, "ip", "-n", l.FRR.Namespace, "route", "add", vip.String()+"/32", "proto", "bgp",
		"nexthop", "via", n1.IPv4.String(), "nexthop", "via", n2.IPv4.String()).CombinedOutput(); err != nil {
		t.Fatal(err)
	}
	if _, err := rmon.Wait(ctx, from, lab.Mentions(false, vip.String())); err != nil {
		t.Fatal(err)
	}
	routes, err := l.FRR.KernelRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 1 || routes[0].Prefix != netip.PrefixFrom(vip, 32) || len(routes[0].NextHops) != 2 {
		t.Errorf("FRR's kernel routes: %+v, want %s via both nodes", routes, vip)
	}
	from = rmon.Len()
	if _, err := exec.CommandContext(ctx, "ip", "-n", l.FRR.Namespace, "route", "del", vip.String()+"/32").CombinedOutput(); err != nil {
		t.Fatal(err)
	}
	if _, err := rmon.Wait(ctx, from, lab.Mentions(true, vip.String())); err != nil {
		t.Fatal(err)
	}

	// A killed node: its speaker is gone and it answers nothing.
	if _, err := n2.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if !n2.Speaker().Exited() {
		t.Error("the killed node's speaker still runs")
	}
	if got, _ := l.L2Client.Ping(ctx, n2.IPv6, 1, 100*time.Millisecond); got != 0 {
		t.Errorf("a killed node answered %d pings", got)
	}
	if err := n2.LinkUp(ctx); err != nil {
		t.Fatal(err)
	}
	// Back up, its IPv6 address may need a moment (the client's neighbour
	// entry failed while the link was down).
	for deadline := time.Now().Add(10 * time.Second); ; {
		got, err := l.L2Client.Ping(ctx, n2.IPv6, 1, 100*time.Millisecond)
		if err == nil && got == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("a node whose link is back does not answer within 10 s: %d, %v", got, err)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitHealthy(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	for !lab.Healthy(ctx, url) {
		if ctx.Err() != nil {
			t.Fatalf("%s never answered", url)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// crashHelperEnv makes TestCrashHelper start a lab and wait to be killed.
const crashHelperEnv = "IRONLB_LAB_CRASH_HELPER"

// TestCrashHelper is not a test: TestCleanAfterCrash runs this test
// binary with it as a process that owns a lab and gets SIGKILLed.
func TestCrashHelper(t *testing.T) {
	if os.Getenv(crashHelperEnv) != "1" {
		t.Skip("helper process of TestCleanAfterCrash")
	}
	l, err := lab.Start(context.Background(), lab.Config{Nodes: 1})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("LAB", l.ID)
	select {}
}

// TestCleanAfterCrash kills the owner of a lab with SIGKILL: the lab's
// processes die with it, and Clean (which the next Start runs too)
// removes the rest.
func TestCleanAfterCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: end-to-end test; -short runs unit tests only")
	}
	if missing := lab.Prerequisites(lab.Config{Assets: testenv.Assets(t)}); len(missing) > 0 {
		lab.Missing(t, "the lab needs %s", strings.Join(missing, ", "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
	cmd.Env = append(os.Environ(), crashHelperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id := ""
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "LAB "); ok {
			id = v
			break
		}
		if strings.HasPrefix(sc.Text(), "ERROR ") {
			t.Fatal(sc.Text())
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if id == "" {
		t.Fatal("the helper never reported its lab")
	}
	t.Cleanup(func() { _, _ = lab.Clean(context.Background()) })

	// Every process of the lab dies with its owner, except FRR's daemons:
	// they change user, which clears the parent-death signal.
	for {
		left, err := lab.Leftovers(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		procs := 0
		for _, s := range left {
			if strings.HasPrefix(s, "process ") && !strings.Contains(s, "/usr/lib/frr/") {
				procs++
			}
		}
		if procs == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("processes of lab %s outlive their owner:\n%s", id, strings.Join(left, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	removed, err := lab.Clean(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Clean removed %s", strings.Join(removed, ", "))
	left, err := lab.Leftovers(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("left behind after Clean:\n%s", strings.Join(left, "\n"))
	}
}
