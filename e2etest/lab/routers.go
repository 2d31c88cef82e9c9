package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// RouterConfig configures FRR or BIRD: one BGP neighbour per node address
// (IPv4 and IPv6 sessions, each carrying both families: an IPv4 session
// takes IPv6 routes with an IPv6 next hop, as MetalLB users configure
// it), eBGP, ECMP.
type RouterConfig struct {
	// ASN is the router's own AS number; 0 means 64500 for FRR and 64501
	// for BIRD (FRR's matches manifests/samples/bgppeer.yaml).
	ASN uint32
	// NodeASN is the nodes' AS number; 0 means 64512.
	NodeASN uint32
	// Password turns TCP MD5 on for every session.
	Password string
	// MaxPaths is how many equal paths the router installs (ECMP); 0 means
	// 8, 1 turns ECMP off.
	MaxPaths int
	// Passive makes the router wait for the nodes to connect.
	Passive bool
}

func (c RouterConfig) defaults(asn uint32) RouterConfig {
	if c.ASN == 0 {
		c.ASN = asn
	}
	if c.NodeASN == 0 {
		c.NodeASN = 64512
	}
	if c.MaxPaths == 0 {
		c.MaxPaths = 8
	}
	return c
}

// Session is a BGP session as a router sees it.
type Session struct {
	// Peer is the node address at the other end.
	Peer netip.Addr
	// State is the BGP state: Idle, Connect, Active, OpenSent,
	// OpenConfirm or Established.
	State string
	// PrefixesReceived counts the routes the peer sent (FRR only; -1 when
	// unknown).
	PrefixesReceived int
}

// Established is the BGP state of a working session.
const Established = "Established"

// Route is a prefix in a router's BGP table with every path it holds.
type Route struct {
	Prefix netip.Prefix
	Paths  []Path
}

// Path is one way to a prefix, learned from one peer.
type Path struct {
	// NextHop is the address the route points to; Peer the neighbour that
	// sent it (they are the same in this lab).
	NextHop, Peer netip.Addr
	// Best is the router's chosen path; Multipath says it is used for
	// ECMP with the best one.
	Best, Multipath bool
	// ASPath is the AS path, AS numbers separated by spaces ("64512").
	ASPath string
	// Communities are the path's communities in the API's notation
	// ("65535:65281", "large:64512:1:1"), sorted: from BIRD.Routes and
	// FRR.Route (FRR's whole-table JSON leaves them out).
	Communities []string
}

// KernelRoute is a route a router installed in its namespace's kernel
// table, with every next hop (several for ECMP).
type KernelRoute struct {
	Prefix   netip.Prefix
	NextHops []netip.Addr
}

// router is what FRR and BIRD share.
type router struct {
	lab *Lab
	// Name is "frr" or "bird"; Namespace its network namespace.
	Name, Namespace string
	// IPv4 and IPv6 are its addresses on the segment.
	IPv4, IPv6 netip.Addr
	// Config is the configuration it runs with.
	Config RouterConfig

	runDir string
	procs  []*Process
}

// neighbours returns every node address, IPv4 first.
func (r *router) neighbours() (v4, v6 []netip.Addr) {
	for _, n := range r.lab.Nodes {
		v4 = append(v4, n.IPv4)
		v6 = append(v6, n.IPv6)
	}
	return v4, v6
}

// stop stops the router's daemons.
func (r *router) stop() error {
	var errs []error
	for i := len(r.procs) - 1; i >= 0; i-- {
		errs = append(errs, r.procs[i].Stop(5*time.Second))
	}
	r.procs = nil
	return errors.Join(errs...)
}

// Monitor follows the router namespace's kernel routes (`ip monitor
// route`): when a BGP route was installed, changed or withdrawn.
func (r *router) Monitor(ctx context.Context) (*Monitor, error) {
	return r.lab.startMonitor(ctx, r.Name, r.Namespace, "route")
}

// KernelRoutes returns the routes the router installed in its kernel
// table, IPv4 and IPv6, sorted by prefix.
func (r *router) KernelRoutes(ctx context.Context) ([]KernelRoute, error) {
	var routes []KernelRoute
	for _, family := range []string{"-4", "-6"} {
		out, err := run(ctx, "ip", "-n", r.Namespace, "-j", family, "route", "show")
		if err != nil {
			return nil, err
		}
		rs, err := parseKernelRoutes(out)
		if err != nil {
			return nil, err
		}
		routes = append(routes, rs...)
	}
	return routes, nil
}

// CountKernelRoutes returns how many routes into within the router's
// kernel table holds. It asks for text, not JSON, and parses nothing but
// line starts, so that it stays cheap at tens of thousands of routes.
func (r *router) CountKernelRoutes(ctx context.Context, within netip.Prefix) (int, error) {
	family := "-6"
	if within.Addr().Is4() {
		family = "-4"
	}
	out, err := run(ctx, "ip", "-n", r.Namespace, family, "route", "show", "root", within.String())
	if err != nil {
		return 0, err
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		// A multipath route's next hops follow it on indented lines.
		if line != "" && line[0] != ' ' && line[0] != '\t' {
			n++
		}
	}
	return n, nil
}

// parseKernelRoutes reads `ip -j route show` output, keeping routes that a
// routing daemon installed (protocol bgp or bird).
func parseKernelRoutes(out []byte) ([]KernelRoute, error) {
	var raw []struct {
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Protocol string `json:"protocol"`
		NextHops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("parse ip route output: %w", err)
	}
	var routes []KernelRoute
	for _, r := range raw {
		if r.Protocol != "bgp" && r.Protocol != "bird" {
			continue
		}
		p, err := parsePrefixOrAddr(r.Dst)
		if err != nil {
			return nil, err
		}
		kr := KernelRoute{Prefix: p}
		gws := []string{r.Gateway}
		for _, nh := range r.NextHops {
			gws = append(gws, nh.Gateway)
		}
		for _, g := range gws {
			if a, err := netip.ParseAddr(g); err == nil {
				kr.NextHops = append(kr.NextHops, a)
			}
		}
		sort.Slice(kr.NextHops, func(i, j int) bool { return kr.NextHops[i].Less(kr.NextHops[j]) })
		routes = append(routes, kr)
	}
	sort.Slice(routes, func(i, j int) bool { return prefixLess(routes[i].Prefix, routes[j].Prefix) })
	return routes, nil
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parse route destination %q: %w", s, err)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func prefixLess(a, b netip.Prefix) bool {
	if a.Addr() != b.Addr() {
		return a.Addr().Less(b.Addr())
	}
	return a.Bits() < b.Bits()
}

// FRR is the FRR router (zebra and bgpd) on the segment, 198.51.100.1 and
// 2001:db8:1::1, also the routed client's gateway.
type FRR struct{ router }

var frrTemplate = template.Must(template.New("frr").Parse(`frr defaults datacenter
hostname {{.Name}}
log file {{.Dir}}/frr.log
log timestamp precision 6
debug bgp neighbor-events
debug bgp updates
!
router bgp {{.C.ASN}}
 bgp router-id {{.ID}}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
 neighbor nodes4 peer-group
 neighbor nodes4 remote-as {{.C.NodeASN}}
 neighbor nodes6 peer-group
 neighbor nodes6 remote-as {{.C.NodeASN}}
{{- range $g := .Groups}}
{{- if $.C.Password}}
 neighbor {{$g}} password {{$.C.Password}}
{{- end}}
{{- if $.C.Passive}}
 neighbor {{$g}} passive
{{- end}}
{{- end}}
{{- range .V4}}
 neighbor {{.}} peer-group nodes4
{{- end}}
{{- range .V6}}
 neighbor {{.}} peer-group nodes6
{{- end}}
 !
 address-family ipv4 unicast
  neighbor nodes4 activate
  neighbor nodes6 activate
  maximum-paths {{.C.MaxPaths}}
 exit-address-family
 !
 address-family ipv6 unicast
  neighbor nodes4 activate
  neighbor nodes6 activate
  maximum-paths {{.C.MaxPaths}}
 exit-address-family
!
`))

// start writes FRR's configuration and starts zebra and bgpd.
func (r *FRR) start(ctx context.Context) error {
	u, err := user.Lookup("frr")
	if err != nil {
		return fmt.Errorf("start FRR: look up user frr: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// FRR keeps its sockets in /var/run/frr/<name>, the name given with
	// -N; the daemons run as user frr, which must own the directory.
	r.runDir = filepath.Join("/var/run/frr", r.Namespace)
	// The package makes /var/run/frr when its service starts, which the
	// lab never lets happen: make it as the package would.
	if _, err := os.Stat("/var/run/frr"); os.IsNotExist(err) {
		if err := os.Mkdir("/var/run/frr", 0o755); err != nil {
			return fmt.Errorf("create /var/run/frr: %w", err)
		}
		if err := os.Chown("/var/run/frr", uid, gid); err != nil {
			return fmt.Errorf("chown /var/run/frr: %w", err)
		}
	}
	if err := os.Mkdir(r.runDir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("create %s: %w", r.runDir, err)
	}
	if err := os.Chown(r.runDir, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", r.runDir, err)
	}
	v4, v6 := r.neighbours()
	var conf strings.Builder
	if err := frrTemplate.Execute(&conf, map[string]any{
		"Name": r.Name, "Dir": r.runDir, "C": r.Config, "ID": r.IPv4,
		"Groups": []string{"nodes4", "nodes6"}, "V4": v4, "V6": v6,
	}); err != nil {
		return fmt.Errorf("render FRR configuration: %w", err)
	}
	confPath := filepath.Join(r.runDir, "frr.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
		return fmt.Errorf("write FRR configuration: %w", err)
	}
	if err := os.Chown(confPath, uid, gid); err != nil {
		return fmt.Errorf("chown FRR configuration: %w", err)
	}
	zebra, err := r.lab.startProcess("frr-zebra", r.Namespace, nil, "/usr/lib/frr/zebra",
		"-N", r.Namespace, "-f", confPath, "-i", filepath.Join(r.runDir, "zebra.pid"), "-P", "0")
	if err != nil {
		return err
	}
	r.procs = append(r.procs, zebra)
	if err := waitFor(ctx, zebra, func() bool {
		_, err := os.Stat(filepath.Join(r.runDir, "zserv.api"))
		return err == nil
	}); err != nil {
		return fmt.Errorf("wait for zebra: %w", err)
	}
	bgpd, err := r.lab.startProcess("frr-bgpd", r.Namespace, nil, "/usr/lib/frr/bgpd",
		"-N", r.Namespace, "-f", confPath, "-i", filepath.Join(r.runDir, "bgpd.pid"), "-P", "0")
	if err != nil {
		return err
	}
	r.procs = append(r.procs, bgpd)
	if err := waitFor(ctx, bgpd, func() bool {
		_, err := r.VTY(ctx, "show bgp summary json")
		return err == nil
	}); err != nil {
		return fmt.Errorf("wait for bgpd: %w", err)
	}
	return nil
}

// Reconfigure restarts FRR with a new configuration.
func (r *FRR) Reconfigure(ctx context.Context, c RouterConfig) error {
	if err := r.stop(); err != nil {
		return err
	}
	r.Config = c.defaults(64500)
	return r.start(ctx)
}

// VTY runs one vtysh command against this FRR and returns its output.
func (r *FRR) VTY(ctx context.Context, command string) ([]byte, error) {
	return run(ctx, "vtysh", "-N", r.Namespace, "-c", command)
}

// Log returns FRR's log (bgpd and zebra, with neighbour events and
// updates, timestamps in microseconds).
func (r *FRR) Log() string {
	b, err := os.ReadFile(filepath.Join(r.runDir, "frr.log"))
	if err != nil {
		return fmt.Sprintf("(cannot read FRR's log: %v)", err)
	}
	return string(b)
}

// Sessions returns FRR's BGP sessions, IPv4 then IPv6 neighbours.
func (r *FRR) Sessions(ctx context.Context) ([]Session, error) {
	// Only bgpd is asked: vtysh connects to every daemon otherwise.
	out, err := run(ctx, "vtysh", "-N", r.Namespace, "-d", "bgpd", "-c", "show bgp summary json")
	if err != nil {
		return nil, err
	}
	return parseFRRSummary(out)
}

func parseFRRSummary(out []byte) ([]Session, error) {
	var sum map[string]struct {
		Peers map[string]struct {
			State  string `json:"state"`
			PfxRcd *int   `json:"pfxRcd"`
		} `json:"peers"`
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		return nil, fmt.Errorf("parse FRR's BGP summary: %w", err)
	}
	// A neighbour appears once per family it carries: one session each,
	// with the prefixes of both families added up.
	byPeer := map[netip.Addr]*Session{}
	var sessions []Session
	for _, af := range []string{"ipv4Unicast", "ipv6Unicast"} {
		for peer, p := range sum[af].Peers {
			a, err := netip.ParseAddr(peer)
			if err != nil {
				return nil, fmt.Errorf("parse FRR's BGP summary: peer %q: %w", peer, err)
			}
			s := byPeer[a]
			if s == nil {
				s = &Session{Peer: a, State: p.State, PrefixesReceived: -1}
				byPeer[a] = s
			}
			if p.PfxRcd != nil {
				if s.PrefixesReceived < 0 {
					s.PrefixesReceived = 0
				}
				s.PrefixesReceived += *p.PfxRcd
			}
		}
	}
	for _, s := range byPeer {
		sessions = append(sessions, *s)
	}
	sortSessions(sessions)
	return sessions, nil
}

func sortSessions(s []Session) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Peer.Is4() != s[j].Peer.Is4() {
			return s[i].Peer.Is4()
		}
		return s[i].Peer.Less(s[j].Peer)
	})
}

// Routes returns FRR's BGP table, IPv4 and IPv6.
func (r *FRR) Routes(ctx context.Context) ([]Route, error) {
	var routes []Route
	for _, af := range []string{"ipv4", "ipv6"} {
		out, err := r.VTY(ctx, "show bgp "+af+" unicast json")
		if err != nil {
			return nil, err
		}
		rs, err := parseFRRRoutes(out)
		if err != nil {
			return nil, err
		}
		routes = append(routes, rs...)
	}
	return routes, nil
}

func parseFRRRoutes(out []byte) ([]Route, error) {
	var table struct {
		Routes map[string][]struct {
			Valid     bool   `json:"valid"`
			Best      bool   `json:"bestpath"`
			Multipath bool   `json:"multipath"`
			Path      string `json:"path"`
			PeerID    string `json:"peerId"`
			NextHops  []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
		} `json:"routes"`
	}
	if err := json.Unmarshal(out, &table); err != nil {
		return nil, fmt.Errorf("parse FRR's BGP table: %w", err)
	}
	var routes []Route
	for prefix, paths := range table.Routes {
		p, err := parsePrefixOrAddr(prefix)
		if err != nil {
			return nil, err
		}
		rt := Route{Prefix: p}
		for _, fp := range paths {
			path := Path{Best: fp.Best, Multipath: fp.Multipath, ASPath: fp.Path}
			path.Peer, _ = netip.ParseAddr(fp.PeerID)
			if len(fp.NextHops) > 0 {
				path.NextHop, _ = netip.ParseAddr(fp.NextHops[0].IP)
			}
			rt.Paths = append(rt.Paths, path)
		}
		sortPaths(rt.Paths)
		routes = append(routes, rt)
	}
	sort.Slice(routes, func(i, j int) bool { return prefixLess(routes[i].Prefix, routes[j].Prefix) })
	return routes, nil
}

// Route returns FRR's paths to one prefix with their communities (`show
// bgp <family> unicast <prefix> json`); ok is false when FRR has no route
// to it.
func (r *FRR) Route(ctx context.Context, prefix netip.Prefix) (rt Route, ok bool, err error) {
	af := "ipv4"
	if prefix.Addr().Is6() {
		af = "ipv6"
	}
	out, err := r.VTY(ctx, "show bgp "+af+" unicast "+prefix.String()+" json")
	if err != nil {
		return Route{}, false, err
	}
	return parseFRRRoute(out, prefix)
}

// frrCommunityNames are the well-known communities FRR prints by name.
var frrCommunityNames = map[string]string{
	"graceful-shutdown": "65535:0", "accept-own": "65535:1", "llgr-stale": "65535:6", "no-llgr": "65535:7",
	"blackhole": "65535:666", "no-export": "65535:65281", "no-advertise": "65535:65282",
	"local-AS": "65535:65283", "no-peer": "65535:65284",
}

// parseFRRRoute reads `show bgp <family> unicast <prefix> json`.
func parseFRRRoute(out []byte, prefix netip.Prefix) (Route, bool, error) {
	var raw struct {
		Paths []struct {
			ASPath struct {
				String string `json:"string"`
			} `json:"aspath"`
			Community struct {
				String string `json:"string"`
			} `json:"community"`
			LargeCommunity struct {
				String string `json:"string"`
			} `json:"largeCommunity"`
			Multipath bool `json:"multipath"`
			BestPath  struct {
				Overall bool `json:"overall"`
			} `json:"bestpath"`
			NextHops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
			Peer struct {
				PeerID string `json:"peerId"`
			} `json:"peer"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return Route{}, false, fmt.Errorf("parse FRR's route to %s: %w", prefix, err)
	}
	if len(raw.Paths) == 0 {
		return Route{}, false, nil
	}
	rt := Route{Prefix: prefix}
	for _, p := range raw.Paths {
		path := Path{Best: p.BestPath.Overall, Multipath: p.Multipath, ASPath: p.ASPath.String}
		path.Peer, _ = netip.ParseAddr(p.Peer.PeerID)
		if len(p.NextHops) > 0 {
			path.NextHop, _ = netip.ParseAddr(p.NextHops[0].IP)
		}
		for _, c := range strings.Fields(p.Community.String) {
			if v, named := frrCommunityNames[c]; named {
				c = v
			}
			path.Communities = append(path.Communities, c)
		}
		for _, c := range strings.Fields(p.LargeCommunity.String) {
			path.Communities = append(path.Communities, "large:"+c)
		}
		sort.Strings(path.Communities)
		rt.Paths = append(rt.Paths, path)
	}
	sortPaths(rt.Paths)
	return rt, true, nil
}

func sortPaths(p []Path) {
	sort.Slice(p, func(i, j int) bool { return p[i].NextHop.Less(p[j].NextHop) })
}

// BIRD is the BIRD 2 router on the segment, 198.51.100.2 and
// 2001:db8:1::2.
type BIRD struct{ router }

var birdTemplate = template.Must(template.New("bird").Parse(`log "{{.Dir}}/bird.log" all;
timeformat log "%F %T.%6f";
timeformat protocol "%F %T.%6f";
timeformat route "%F %T.%6f";
router id {{.ID}};
debug protocols { states, events };

protocol device {}

protocol kernel kernel4 {
  ipv4 { export all; };
  merge paths {{if gt .C.MaxPaths 1}}on limit {{.C.MaxPaths}}{{else}}off{{end}};
}

protocol kernel kernel6 {
  ipv6 { export all; };
  merge paths {{if gt .C.MaxPaths 1}}on limit {{.C.MaxPaths}}{{else}}off{{end}};
}

template bgp nodes4 {
  local as {{.C.ASN}};
  {{- if .C.Password}}
  password "{{.C.Password}}";
  {{- end}}
  {{- if .C.Passive}}
  passive on;
  {{- end}}
  ipv4 { import all; export none; };
  ipv6 { import all; export none; };
}

template bgp nodes6 {
  local as {{.C.ASN}};
  {{- if .C.Password}}
  password "{{.C.Password}}";
  {{- end}}
  {{- if .C.Passive}}
  passive on;
  {{- end}}
  ipv4 { import all; export none; };
  ipv6 { import all; export none; };
}
{{range .Nodes}}
protocol bgp {{.Name}}_v4 from nodes4 { neighbor {{.IPv4}} as {{$.C.NodeASN}}; }
protocol bgp {{.Name}}_v6 from nodes6 { neighbor {{.IPv6}} as {{$.C.NodeASN}}; }
{{end}}`))

// dir is BIRD's directory inside the lab's.
func (r *BIRD) dir() string { return filepath.Join(r.lab.Dir, "bird") }

// socket is the path of BIRD's control socket.
func (r *BIRD) socket() string { return filepath.Join(r.dir(), "bird.ctl") }

// start writes BIRD's configuration and starts it.
func (r *BIRD) start(ctx context.Context) error {
	if err := os.MkdirAll(r.dir(), 0o700); err != nil {
		return fmt.Errorf("create BIRD's directory: %w", err)
	}
	var conf strings.Builder
	if err := birdTemplate.Execute(&conf, map[string]any{
		"Dir": r.dir(), "C": r.Config, "ID": r.IPv4, "Nodes": r.lab.Nodes,
	}); err != nil {
		return fmt.Errorf("render BIRD configuration: %w", err)
	}
	confPath := filepath.Join(r.dir(), "bird.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
		return fmt.Errorf("write BIRD configuration: %w", err)
	}
	p, err := r.lab.startProcess("bird", r.Namespace, nil, "bird", "-f",
		"-c", confPath, "-s", r.socket(), "-P", filepath.Join(r.dir(), "bird.pid"))
	if err != nil {
		return err
	}
	r.procs = append(r.procs, p)
	if err := waitFor(ctx, p, func() bool {
		_, err := r.CLI(ctx, "show status")
		return err == nil
	}); err != nil {
		return fmt.Errorf("wait for BIRD: %w", err)
	}
	return nil
}

// Reconfigure restarts BIRD with a new configuration.
func (r *BIRD) Reconfigure(ctx context.Context, c RouterConfig) error {
	if err := r.stop(); err != nil {
		return err
	}
	r.Config = c.defaults(64501)
	return r.start(ctx)
}

// CLI runs one birdc command against this BIRD and returns its output.
func (r *BIRD) CLI(ctx context.Context, command string) ([]byte, error) {
	return run(ctx, "birdc", append([]string{"-s", r.socket()}, strings.Fields(command)...)...)
}

// Log returns BIRD's log (protocol states and events, timestamps in
// microseconds).
func (r *BIRD) Log() string {
	b, err := os.ReadFile(filepath.Join(r.dir(), "bird.log"))
	if err != nil {
		return fmt.Sprintf("(cannot read BIRD's log: %v)", err)
	}
	return string(b)
}

// peers maps BIRD's protocol names to node addresses.
func (r *BIRD) peers() map[string]netip.Addr {
	m := map[string]netip.Addr{}
	for _, n := range r.lab.Nodes {
		m[n.Name+"_v4"] = n.IPv4
		m[n.Name+"_v6"] = n.IPv6
	}
	return m
}

// Sessions returns BIRD's BGP sessions, IPv4 then IPv6 neighbours.
func (r *BIRD) Sessions(ctx context.Context) ([]Session, error) {
	out, err := r.CLI(ctx, "show protocols all")
	if err != nil {
		return nil, err
	}
	return parseBIRDProtocols(out, r.peers()), nil
}

// parseBIRDProtocols reads `birdc show protocols all`: a block per
// protocol, its name at the start of a line, its BGP state on a
// "BGP state:" line.
func parseBIRDProtocols(out []byte, peers map[string]netip.Addr) []Session {
	var sessions []Session
	current := ""
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && line[0] != ' ' && line[0] != '\t' {
			current = strings.Fields(line)[0]
			continue
		}
		t := strings.TrimSpace(line)
		if state, ok := strings.CutPrefix(t, "BGP state:"); ok {
			if peer, known := peers[current]; known {
				sessions = append(sessions, Session{Peer: peer, State: strings.TrimSpace(state), PrefixesReceived: -1})
			}
		}
	}
	sortSessions(sessions)
	return sessions
}

// Routes returns BIRD's BGP routes, IPv4 and IPv6, with every path.
func (r *BIRD) Routes(ctx context.Context) ([]Route, error) {
	out, err := r.CLI(ctx, "show route all")
	if err != nil {
		return nil, err
	}
	return parseBIRDRoutes(out, r.peers())
}

// parseBIRDRoutes reads `birdc show route [all]`: a line per path,
// starting with the prefix for the first path of a prefix and with blanks
// for the others; "[proto time] *" marks the best path; a "via" line gives
// the next hop. Routes of protocols other than the nodes' sessions are
// skipped.
func parseBIRDRoutes(out []byte, peers map[string]netip.Addr) ([]Route, error) {
	var routes []Route
	var cur *Route
	var curPath *Path
	for _, line := range strings.Split(string(out), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "BIRD ") || strings.HasPrefix(t, "Table ") {
			continue
		}
		if open := strings.Index(t, "["); open >= 0 && (strings.Contains(t, " unicast [") || strings.HasPrefix(t, "unicast [")) {
			if line[0] != ' ' && line[0] != '\t' {
				p, err := parsePrefixOrAddr(strings.Fields(t)[0])
				if err != nil {
					return nil, err
				}
				routes = append(routes, Route{Prefix: p})
				cur = &routes[len(routes)-1]
			}
			if cur == nil {
				continue
			}
			closeIdx := strings.Index(t[open:], "]")
			if closeIdx < 0 {
				continue
			}
			proto := strings.Fields(t[open+1 : open+closeIdx])[0]
			peer, ok := peers[proto]
			if !ok {
				curPath = nil
				continue
			}
			rest := t[open+closeIdx+1:]
			path := Path{Peer: peer, Best: strings.HasPrefix(strings.TrimSpace(rest), "*")}
			cur.Paths = append(cur.Paths, path)
			curPath = &cur.Paths[len(cur.Paths)-1]
			continue
		}
		if curPath == nil {
			continue
		}
		if via, ok := strings.CutPrefix(t, "via "); ok {
			if a, err := netip.ParseAddr(strings.Fields(via)[0]); err == nil {
				curPath.NextHop = a
			}
		} else if v, ok := strings.CutPrefix(t, "BGP.as_path:"); ok {
			curPath.ASPath = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(t, "BGP.community:"); ok {
			curPath.Communities = append(curPath.Communities, birdCommunities(v, "")...)
		} else if v, ok := strings.CutPrefix(t, "BGP.large_community:"); ok {
			curPath.Communities = append(curPath.Communities, birdCommunities(v, "large:")...)
		}
	}
	// Keep only prefixes learned from the nodes.
	kept := routes[:0]
	for _, rt := range routes {
		for _, p := range rt.Paths {
			sort.Strings(p.Communities)
		}
		if len(rt.Paths) > 0 {
			sortPaths(rt.Paths)
			kept = append(kept, rt)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return prefixLess(kept[i].Prefix, kept[j].Prefix) })
	return kept, nil
}

// birdCommunities reads BIRD's "(65535,65281) (64512,100)" or, for large
// communities, "(64512, 1, 1)" into "65535:65281" or "large:64512:1:1".
func birdCommunities(s, prefix string) []string {
	var out []string
	for _, part := range strings.Split(s, ")") {
		part = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(part), "("))
		if part == "" {
			continue
		}
		fields := strings.Split(part, ",")
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		out = append(out, prefix+strings.Join(fields, ":"))
	}
	return out
}

// waitFor polls ready every 20 ms until it holds, p exits, or ctx ends
// (30 s at most).
func waitFor(ctx context.Context, p *Process, ready func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !ready() {
		if p.Exited() {
			return fmt.Errorf("%s exited (log %s)", p.Name, p.LogPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// LogEvent is a line of a router's log with its time (microseconds).
type LogEvent struct {
	Time time.Time
	Line string
}

// Log timestamp layouts: FRR's ("log timestamp precision 6") and BIRD's
// ("timeformat log"), both in local time.
var logLayouts = []string{"2006/01/02 15:04:05.000000", "2006-01-02 15:04:05.000000", "2006/01/02 15:04:05"}

// parseLogEvents returns the lines of a router's log that contain every
// one of words, with their times.
func parseLogEvents(log string, words ...string) []LogEvent {
	var out []LogEvent
	for _, line := range strings.Split(log, "\n") {
		match := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		for _, layout := range logLayouts {
			if len(line) < len(layout) {
				continue
			}
			if t, err := time.ParseInLocation(layout, line[:len(layout)], time.Local); err == nil {
				out = append(out, LogEvent{Time: t, Line: strings.TrimSpace(line[len(layout):])})
				break
			}
		}
	}
	return out
}

// LogEvents returns the lines of FRR's log (neighbour events and updates,
// see its configuration) that contain every one of words, with their
// times: when bgpd received or withdrew a prefix, when a session went up.
func (r *FRR) LogEvents(words ...string) []LogEvent { return parseLogEvents(r.Log(), words...) }

// LogEvents returns the lines of BIRD's log (protocol states and events)
// that contain every one of words, with their times.
func (r *BIRD) LogEvents(words ...string) []LogEvent { return parseLogEvents(r.Log(), words...) }
