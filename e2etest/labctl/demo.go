package labctl

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// The demo's Services, from manifests/samples/services.yaml.
const (
	demoNamespace = "default"
	l2Service     = "web"
	bgpService    = "web-routed"
	servicePort   = 80
)

// ipWait is how long the demo waits for the controller to give the
// Services their IPs; announceWait how long it waits for an announcement
// to reach a client or a router.
// bgpWait is longer: a speaker's first BGP dial waits a random 1-2 s.
const (
	ipWait       = 15 * time.Second
	announceWait = 5 * time.Second
	bgpWait      = 10 * time.Second
)

// report collects what the demo could not show, for the closing summary.
type report struct {
	w       io.Writer
	notYet  []string
	working []string
}

func (r *report) ok(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintln(r.w, msg)
	r.working = append(r.working, msg)
}

func (r *report) notYetf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintln(r.w, "NOT YET: "+msg)
	r.notYet = append(r.notYet, msg)
}

// curlError returns curl's own message from an error of Client.Curl.
func curlError(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "curl: ("); i >= 0 {
		return strings.TrimSpace(s[i:])
	}
	return s
}

func demo(ctx context.Context, args []string, w, errw io.Writer) error {
	var f upFlags
	fs := newFlagSet("demo", errw)
	f.register(fs)
	fs.BoolVar(&f.keep, "keep", false, "leave the lab running in the background afterwards")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f.demo = true
	var l *lab.Lab
	var err error
	if f.keep {
		if l, err = startDetached(ctx, f, w); err != nil {
			return err
		}
	} else {
		start := time.Now()
		fmt.Fprintln(w, "starting the lab...")
		if l, err = lab.Start(ctx, f.config()); err != nil {
			return err
		}
		defer closeLab(l, w)
		fmt.Fprintf(w, "lab %s up in %v\n", l.ID, time.Since(start).Round(time.Millisecond))
		if err := deploy(ctx, l, w); err != nil {
			return err
		}
	}
	if err := show(ctx, l, w); err != nil {
		return err
	}
	if f.keep {
		printUse(ctx, w, l)
	}
	return nil
}

// deploy installs ironlb's CRDs and RBAC and the samples, runs a pod of
// app=web on every node, and starts the controller and a speaker per
// node.
func deploy(ctx context.Context, l *lab.Lab, w io.Writer) error {
	fmt.Fprintln(w, "installing ironlb's CRDs, namespace and RBAC from manifests/install.yaml (not its Deployment and DaemonSet: the programs run as processes)")
	if err := l.InstallIronLB(ctx); err != nil {
		return err
	}
	fmt.Fprintln(w, "applying manifests/samples: pools lan and routed, an L2Advertisement, a BGPPeer (FRR), a BGPAdvertisement, Services web and web-routed")
	if err := l.ApplyFiles(ctx, filepath.Join(repoRoot(), "manifests", "samples")); err != nil {
		return err
	}
	pods, err := l.RunPods(ctx, lab.PodSpec{Labels: map[string]string{"app": "web"}})
	if err != nil {
		return err
	}
	var names []string
	for _, p := range pods {
		names = append(names, fmt.Sprintf("%s (%s, %s)", p.Name, p.IPv4, p.IPv6))
	}
	fmt.Fprintf(w, "pods of app=web: %s\n", strings.Join(names, ", "))
	fmt.Fprintln(w, "starting the controller and a speaker on every node")
	if _, err := l.StartController(ctx); err != nil {
		return err
	}
	for _, n := range l.Nodes {
		if _, err := n.StartSpeaker(ctx); err != nil {
			return err
		}
	}
	return nil
}

// show prints what a user wants to see of the demo, and says plainly what
// does not work yet. It fails only when the lab itself does.
func show(ctx context.Context, l *lab.Lab, w io.Writer) error {
	r := &report{w: w}
	section := func(title string) { fmt.Fprintf(w, "\n== %s\n", title) }
	kubectl := func(args ...string) error {
		fmt.Fprintf(w, "$ kubectl %s\n", strings.Join(args, " "))
		out, err := l.Kubectl(ctx, args...)
		w.Write(out)
		return err
	}

	section("The lab")
	fmt.Fprint(w, l.Summary())

	section("The cluster")
	if err := kubectl("get", "nodes", "-o", "wide"); err != nil {
		return err
	}
	ctrl := "not running"
	if u := l.ControllerHealthURL(); u != "" && lab.Healthy(ctx, u) {
		ctrl = "running, healthy"
	}
	fmt.Fprintf(w, "controller: %s\n", ctrl)
	for _, n := range l.Nodes {
		state := "not running"
		if lab.Healthy(ctx, n.SpeakerHealthURL()) {
			state = "running, healthy"
		}
		fmt.Fprintf(w, "speaker on %s: %s\n", n.Name, state)
	}
	if err := kubectl("get", "ipaddresspools,l2advertisements,bgppeers,bgpadvertisements", "-n", "ironlb-system"); err != nil {
		return err
	}

	section("Services")
	waitCtx, cancel := context.WithTimeout(ctx, ipWait)
	l2IPs, _ := l.WaitServiceIP(waitCtx, demoNamespace, l2Service, 1)
	bgpIPs, _ := l.WaitServiceIP(waitCtx, demoNamespace, bgpService, 1)
	cancel()
	if err := kubectl("get", "svc", "-n", demoNamespace, "-o", "wide"); err != nil {
		return err
	}
	for _, s := range []struct {
		name string
		ips  []netip.Addr
	}{{l2Service, l2IPs}, {bgpService, bgpIPs}} {
		if len(s.ips) == 0 {
			r.notYetf("%s has no EXTERNAL-IP after %v: the controller did not allocate one (IP allocation is not implemented yet; controller log: %s/logs/controller.log)",
				s.name, ipWait, l.Dir)
		} else {
			r.working = append(r.working, fmt.Sprintf("%s got EXTERNAL-IP %v from the controller", s.name, s.ips))
		}
	}
	if err := kubectl("get", "endpointslices", "-n", demoNamespace); err != nil {
		return err
	}

	section(fmt.Sprintf("Layer 2: curl from the client on the segment (%s)", l.L2Client.IPv4))
	if len(l2IPs) == 0 {
		r.notYetf("no layer-2 curl: %s has no IP", l2Service)
	}
	for _, ip := range l2IPs {
		curlL2(ctx, l, r, ip)
	}

	section(fmt.Sprintf("BGP: FRR's route (AS %d, %s) to %s", l.FRR.Config.ASN, l.FRR.IPv4, bgpService))
	if err := showFRR(ctx, l, r, bgpIPs); err != nil {
		return err
	}
	if sessions, err := l.BIRD.Sessions(ctx); err == nil {
		fmt.Fprintf(w, "BIRD (AS %d, %s): %d of %d sessions established (no BGPPeer of the samples points at it)\n",
			l.BIRD.Config.ASN, l.BIRD.IPv4, established(sessions), len(sessions))
	}

	section(fmt.Sprintf("Routed: curl from the client behind FRR (%s)", l.RoutedClient.IPv4))
	if len(bgpIPs) == 0 {
		r.notYetf("no routed curl: %s has no IP", bgpService)
	}
	for _, ip := range bgpIPs {
		a, err := l.RoutedClient.Curl(ctx, ip, servicePort)
		if err != nil {
			r.notYetf("%s does not answer the routed client (%s)", lab.URL(ip, servicePort), curlError(err))
			continue
		}
		r.ok("curl %s from the routed client → answered by pod %s on %s, through FRR", lab.URL(ip, servicePort), a.Pod, a.Node)
	}

	section("Summary")
	fmt.Fprintln(w, "The lab worked: control plane, nodes, pods, kube-proxy stand-in, routers and clients are up.")
	for _, s := range r.working {
		fmt.Fprintln(w, "  works:   "+s)
	}
	for _, s := range r.notYet {
		fmt.Fprintln(w, "  not yet: "+s)
	}
	return nil
}

func established(ss []lab.Session) int {
	n := 0
	for _, s := range ss {
		if s.State == lab.Established {
			n++
		}
	}
	return n
}

// curlL2 curls a layer-2 Service IP from the client and says who
// answered, or why nobody did.
func curlL2(ctx context.Context, l *lab.Lab, r *report, ip netip.Addr) {
	url := lab.URL(ip, servicePort)
	deadline := time.Now().Add(announceWait)
	var err error
	for {
		var a lab.Answer
		a, err = l.L2Client.Curl(ctx, ip, servicePort)
		if err == nil {
			announcer := "an unknown MAC"
			if n, ok, nerr := l.L2Client.Neighbor(ctx, ip); nerr == nil && ok {
				announcer = n.MAC
				if node, err := l.NodeByMAC(ctx, n.MAC); err == nil && node != nil {
					announcer = node.Name
				}
			}
			r.ok("curl %s → announced by %s, answered by pod %s on %s", url, announcer, a.Pod, a.Node)
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	proto := "ARP"
	if ip.Is6() {
		proto = "NDP"
	}
	n, ok, nerr := l.L2Client.Neighbor(ctx, ip)
	if nerr == nil && (!ok || n.MAC == "") {
		r.notYetf("no node answers %s for %s after %v, so curl %s fails (%s): layer-2 announcement is not implemented yet, or see %s/logs/speaker-*.log",
			proto, ip, announceWait, url, curlError(err), l.Dir)
		return
	}
	r.notYetf("%s for %s resolved to %s, but curl %s fails: %s", proto, ip, n.MAC, url, curlError(err))
}

// showFRR prints FRR's routes to the BGP Service's IPs with their ECMP
// next hops, waiting up to bgpWait for the sessions and routes to come.
func showFRR(ctx context.Context, l *lab.Lab, r *report, ips []netip.Addr) error {
	w := r.w
	var sessions []lab.Session
	var routes []lab.KernelRoute
	found := map[netip.Addr]*lab.KernelRoute{}
	for deadline := time.Now().Add(bgpWait); ; {
		var err error
		if sessions, err = l.FRR.Sessions(ctx); err != nil {
			return err
		}
		if routes, err = l.FRR.KernelRoutes(ctx); err != nil {
			return err
		}
		for _, ip := range ips {
			for i := range routes {
				if routes[i].Prefix == netip.PrefixFrom(ip, ip.BitLen()) {
					found[ip] = &routes[i]
				}
			}
		}
		// Done when every IP has a route through every node (all of them
		// run a pod of the Service); else wait for the slower sessions.
		complete := len(found) == len(ips)
		for _, rt := range found {
			complete = complete && len(rt.NextHops) == len(l.Nodes)
		}
		if complete || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	up := established(sessions)
	fmt.Fprintf(w, "FRR's BGP sessions with the nodes: %d of %d established\n", up, len(sessions))
	if len(ips) == 0 {
		r.notYetf("no route to look up in FRR: %s has no IP", bgpService)
	}
	for _, ip := range ips {
		prefix := netip.PrefixFrom(ip, ip.BitLen())
		route := found[ip]
		if route == nil {
			why := fmt.Sprintf("no BGP session is established after %v: the speakers did not connect (BGP advertisement not implemented yet, or see %s/logs/speaker-*.log)", bgpWait, l.Dir)
			if up > 0 {
				why = fmt.Sprintf("sessions are up but no node advertises it (see %s/logs/speaker-*.log)", l.Dir)
			}
			r.notYetf("no route in FRR for %s: %s", prefix, why)
			continue
		}
		cmd := "show ip route " + prefix.String()
		if ip.Is6() {
			cmd = "show ipv6 route " + prefix.String()
		}
		out, err := l.FRR.VTY(ctx, cmd)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "$ vtysh -c '%s'\n%s", cmd, out)
		var hops []string
		for _, h := range route.NextHops {
			hops = append(hops, h.String())
		}
		r.ok("FRR routes %s to %d node(s) (ECMP): %s", prefix, len(hops), strings.Join(hops, ", "))
	}
	return nil
}
