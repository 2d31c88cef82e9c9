package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// Roles of the lab's namespaces, the last part of their names.
const (
	roleLAN     = "lan"
	roleClient  = "client"
	roleRouted  = "rclient"
	roleFRR     = "frr"
	roleBIRD    = "bird"
	nodePrefix  = "node"
	segmentLink = "eth0" // every member's link to the segment
	mgmtLink    = "mgmt0"
)

// nsName returns the name of the lab namespace for a role.
func (l *Lab) nsName(role string) string { return NamePrefix + l.ID + "-" + role }

// rootLink is the name of the lab's one link in the root namespace.
func (l *Lab) rootLink() string { return NamePrefix + l.ID }

// pickMgmtSubnet returns a K for 169.254.K.0/24 that no route of the root
// namespace covers.
func pickMgmtSubnet(ctx context.Context, id string) (int, error) {
	out, err := run(ctx, "ip", "-j", "-4", "route", "show", "table", "all")
	if err != nil {
		return 0, err
	}
	var routes []struct {
		Dst string `json:"dst"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return 0, fmt.Errorf("parse routes: %w", err)
	}
	var used []netip.Prefix
	for _, r := range routes {
		if r.Dst == "default" || r.Dst == "" {
			continue
		}
		p, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			a, err := netip.ParseAddr(r.Dst)
			if err != nil {
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		used = append(used, p)
	}
	// Start from a place that depends on the ID, so that labs starting at
	// the same time seldom try the same subnet.
	n := mgmtLast - mgmtFirst + 1
	start := 0
	for _, c := range id {
		start = start*31 + int(c)
	}
	for i := range n {
		k := mgmtFirst + (start+i)%n
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{169, 254, byte(k), 0}), 24)
		free := true
		for _, p := range used {
			if p.Overlaps(subnet) {
				free = false
				break
			}
		}
		if free {
			return k, nil
		}
	}
	return 0, fmt.Errorf("no free management subnet in 169.254.%d-%d.0/24", mgmtFirst, mgmtLast)
}

// buildNetwork creates the namespaces, the bridges, the links and the
// addresses.
func (l *Lab) buildNetwork(ctx context.Context) error {
	lan := l.nsName(roleLAN)
	all := []string{lan, l.L2Client.Namespace, l.RoutedClient.Namespace, l.FRR.Namespace, l.BIRD.Namespace}
	for _, n := range l.Nodes {
		all = append(all, n.Namespace)
	}
	for _, ns := range all {
		if _, err := run(ctx, "ip", "netns", "add", ns); err != nil {
			return err
		}
		l.track(ns)
		// Before any link exists: no duplicate address detection, so that
		// addresses (link-local ones too) are usable at once.
		if err := sysctl(ctx, ns, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
			"net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0"); err != nil {
			return err
		}
	}
	routerSettings := []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"}
	for _, ns := range []string{l.FRR.Namespace, l.BIRD.Namespace} {
		if err := sysctl(ctx, ns, routerSettings...); err != nil {
			return err
		}
	}
	for _, n := range l.Nodes {
		// Strict ARP as kube-proxy IPVS users set it: the kernel answers
		// ARP only for addresses of the receiving interface, never for a
		// VIP bound elsewhere; addresses survive a link flap; the node
		// forwards to pods on other nodes.
		if err := sysctl(ctx, n.Namespace, "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
			"net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.default.keep_addr_on_down=1",
			"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"); err != nil {
			return err
		}
	}

	// The segment and the management network are bridges in the lan
	// namespace.
	lanCmds := []string{
		"link set lo up",
		"link add br0 type bridge mcast_snooping 0",
		"link add mgmt type bridge",
		"link set br0 up",
		"link set mgmt up",
	}
	member := func(port, ns, bridge, link string) {
		lanCmds = append(lanCmds,
			fmt.Sprintf("link add %s type veth peer name %s netns %s", port, link, ns),
			fmt.Sprintf("link set %s master %s", port, bridge),
			fmt.Sprintf("link set %s up", port))
	}
	member(roleClient, l.L2Client.Namespace, "br0", segmentLink)
	member(roleFRR, l.FRR.Namespace, "br0", segmentLink)
	member(roleBIRD, l.BIRD.Namespace, "br0", segmentLink)
	for _, n := range l.Nodes {
		member(n.Name, n.Namespace, "br0", segmentLink)
		member("m-"+n.Name, n.Namespace, "mgmt", mgmtLink)
	}
	if err := ipBatch(ctx, lan, lanCmds); err != nil {
		return fmt.Errorf("build the segment: %w", err)
	}

	// The root namespace joins the management bridge with one link-local
	// address and nothing else.
	root := l.rootLink()
	if err := ipBatch(ctx, "", []string{
		fmt.Sprintf("link add %s type veth peer name uplink netns %s", root, lan),
	}); err != nil {
		return fmt.Errorf("create the management link: %w", err)
	}
	l.rootLinkMade = true
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+root+"/disable_ipv6", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("turn IPv6 off on %s: %w", root, err)
	}
	if err := ipBatch(ctx, "", []string{
		fmt.Sprintf("addr add %s/24 dev %s", l.APIServerAddr, root),
		fmt.Sprintf("link set %s up", root),
	}); err != nil {
		return fmt.Errorf("configure the management link: %w", err)
	}
	if err := ipBatch(ctx, lan, []string{"link set uplink master mgmt", "link set uplink up"}); err != nil {
		return fmt.Errorf("attach the management link: %w", err)
	}

	up := func(addrs ...string) []string {
		cmds := []string{"link set lo up", "link set " + segmentLink + " up"}
		for _, a := range addrs {
			cmds = append(cmds, "addr add "+a+" dev "+segmentLink+nodad(a))
		}
		return cmds
	}
	v4 := func(a netip.Addr) string { return a.String() + "/24" }
	v6 := func(a netip.Addr) string { return a.String() + "/64" }

	if err := ipBatch(ctx, l.L2Client.Namespace, up(v4(ClientV4), v6(ClientV6))); err != nil {
		return fmt.Errorf("configure the client: %w", err)
	}
	if err := ipBatch(ctx, l.BIRD.Namespace, up(v4(BIRDv4), v6(BIRDv6))); err != nil {
		return fmt.Errorf("configure BIRD's namespace: %w", err)
	}
	frr := append(up(v4(FRRv4), v6(FRRv6)),
		"link add eth1 type veth peer name eth0 netns "+l.RoutedClient.Namespace,
		"addr add "+RoutedGatewayV4.String()+"/28 dev eth1",
		"addr add "+RoutedGatewayV6.String()+"/64 dev eth1 nodad",
		"link set eth1 up")
	if err := ipBatch(ctx, l.FRR.Namespace, frr); err != nil {
		return fmt.Errorf("configure FRR's namespace: %w", err)
	}
	routed := append(up(RoutedClientV4.String()+"/28", RoutedClientV6.String()+"/64"),
		"route add "+SegmentV4.String()+" via "+RoutedGatewayV4.String(),
		"route add 203.0.113.0/24 via "+RoutedGatewayV4.String(),
		"route add 2001:db8::/32 via "+RoutedGatewayV6.String())
	if err := ipBatch(ctx, l.RoutedClient.Namespace, routed); err != nil {
		return fmt.Errorf("configure the routed client: %w", err)
	}

	for _, n := range l.Nodes {
		cmds := append(up(v4(n.IPv4), v6(n.IPv6)),
			"link set "+mgmtLink+" up",
			"addr add "+n.MgmtAddr.String()+"/24 dev "+mgmtLink,
			// Replies to the routed client go back through FRR.
			"route add "+RoutedV4.String()+" via "+FRRv4.String(),
			"route add "+RoutedV6.String()+" via "+FRRv6.String())
		// Pods of other nodes are reached through those nodes.
		for _, o := range l.Nodes {
			if o == n {
				continue
			}
			cmds = append(cmds,
				"route add "+podPrefixV4(o.index).String()+" via "+o.IPv4.String(),
				"route add "+podPrefixV6(o.index).String()+" via "+o.IPv6.String())
		}
		if err := ipBatch(ctx, n.Namespace, cmds); err != nil {
			return fmt.Errorf("configure %s: %w", n.Name, err)
		}
	}
	return nil
}

// nodad returns " nodad" for an IPv6 address: usable at once, not
// tentative until the kernel's (asynchronous) duplicate address detection
// has run.
func nodad(addr string) string {
	if strings.Contains(addr, ":") {
		return " nodad"
	}
	return ""
}

// deleteNetwork removes the lab's namespaces (and so every link in them)
// and its root link.
func (l *Lab) deleteNetwork(ctx context.Context) error {
	var errs []string
	if l.rootLinkMade {
		if _, err := run(ctx, "ip", "link", "del", l.rootLink()); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
			errs = append(errs, err.Error())
		}
	}
	for i := len(l.namespaces) - 1; i >= 0; i-- {
		if err := deleteNamespace(ctx, l.namespaces[i]); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("delete the lab's network: %s", strings.Join(errs, "; "))
	}
	return nil
}

// deleteNamespace kills what still runs in ns and deletes it.
func deleteNamespace(ctx context.Context, ns string) error {
	if out, err := run(ctx, "ip", "netns", "pids", ns); err == nil {
		for _, f := range strings.Fields(string(out)) {
			killPID(f)
		}
	}
	if _, err := run(ctx, "ip", "netns", "del", ns); err != nil && !strings.Contains(err.Error(), "No such file") {
		return err
	}
	return nil
}
