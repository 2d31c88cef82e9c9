package lab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// info is what another process needs to use a running lab; it is saved
// as info.json in the lab's directory.
type info struct {
	ID            string       `json:"id"`
	Nodes         int          `json:"nodes"`
	MgmtSubnet    int          `json:"mgmtSubnet"`
	APIServerAddr netip.Addr   `json:"apiServerAddr"`
	Kubectl       string       `json:"kubectl"`
	Config        Config       `json:"config"`
	FRR           RouterConfig `json:"frr"`
	BIRD          RouterConfig `json:"bird"`
}

func (l *Lab) saveInfo() error {
	b, err := json.MarshalIndent(info{
		ID: l.ID, Nodes: len(l.Nodes), MgmtSubnet: l.mgmtSubnet, APIServerAddr: l.APIServerAddr,
		Kubectl: l.KubectlPath, Config: l.cfg, FRR: l.FRR.Config, BIRD: l.BIRD.Config,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab info: %w", err)
	}
	if err := os.WriteFile(filepath.Join(l.Dir, "info.json"), b, 0o600); err != nil {
		return fmt.Errorf("write lab info: %w", err)
	}
	return nil
}

// Dir returns the directory of the lab with the given ID.
func Dir(id string) string { return filepath.Join(os.TempDir(), dirPrefix+id) }

// Attach returns a running lab that another process owns, from its ID:
// its clients, nodes, routers and API connection work, but processes it
// did not start (speakers, controller, pods, the kube-proxy stand-in)
// stay with their owner, and Close leaves the lab running.
func Attach(id string) (*Lab, error) {
	dir := Dir(id)
	b, err := os.ReadFile(filepath.Join(dir, "info.json"))
	if err != nil {
		return nil, fmt.Errorf("attach to lab %s: %w", id, err)
	}
	var in info
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("attach to lab %s: parse info: %w", id, err)
	}
	l := &Lab{ID: in.ID, Dir: dir, cfg: in.Config, repo: repoRoot(), mgmtSubnet: in.MgmtSubnet,
		APIServerAddr: in.APIServerAddr, KubectlPath: in.Kubectl}
	l.populate(in.Nodes, in.FRR, in.BIRD)
	l.Kubeconfig = l.KubeconfigFor(Admin)
	l.FRR.runDir = filepath.Join("/var/run/frr", l.FRR.Namespace)
	if err := l.connect(); err != nil {
		return nil, err
	}
	return l, nil
}

// populate creates the lab's nodes, clients and routers (not the things
// they stand for).
func (l *Lab) populate(nodes int, frr, bird RouterConfig) {
	l.L2Client = &Client{lab: l, Name: roleClient, Namespace: l.nsName(roleClient), IPv4: ClientV4, IPv6: ClientV6}
	l.RoutedClient = &Client{lab: l, Name: roleRouted, Namespace: l.nsName(roleRouted), IPv4: RoutedClientV4, IPv6: RoutedClientV6}
	l.FRR = &FRR{router: router{lab: l, Name: roleFRR, Namespace: l.nsName(roleFRR), IPv4: FRRv4, IPv6: FRRv6, Config: frr}}
	l.BIRD = &BIRD{router: router{lab: l, Name: roleBIRD, Namespace: l.nsName(roleBIRD), IPv4: BIRDv4, IPv6: BIRDv6, Config: bird}}
	l.Nodes = nil
	for i := 1; i <= nodes; i++ {
		name := nodePrefix + strconv.Itoa(i)
		l.Nodes = append(l.Nodes, &Node{
			lab: l, index: i, Name: name, Namespace: l.nsName(name),
			IPv4: nodeV4(i), IPv6: nodeV6(i), MgmtAddr: nodeMgmt(l.mgmtSubnet, i),
		})
	}
}

// Summary describes the lab for a person: how to reach it, what runs
// where.
func (l *Lab) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lab %s (files in %s)\n", l.ID, l.Dir)
	fmt.Fprintf(&b, "  API server   https://%s:%d   export KUBECONFIG=%s   kubectl: %s\n", l.APIServerAddr, APIServerPort, l.Kubeconfig, l.KubectlPath)
	for _, n := range l.Nodes {
		fmt.Fprintf(&b, "  %-12s %-15s %-17s namespace %s\n", n.Name, n.IPv4, n.IPv6, n.Namespace)
	}
	fmt.Fprintf(&b, "  %-12s %-15s %-17s namespace %s (AS %d)\n", "frr", l.FRR.IPv4, l.FRR.IPv6, l.FRR.Namespace, l.FRR.Config.ASN)
	fmt.Fprintf(&b, "  %-12s %-15s %-17s namespace %s (AS %d)\n", "bird", l.BIRD.IPv4, l.BIRD.IPv6, l.BIRD.Namespace, l.BIRD.Config.ASN)
	fmt.Fprintf(&b, "  %-12s %-15s %-17s namespace %s (on the segment)\n", "client", l.L2Client.IPv4, l.L2Client.IPv6, l.L2Client.Namespace)
	fmt.Fprintf(&b, "  %-12s %-15s %-17s namespace %s (behind frr)\n", "rclient", l.RoutedClient.IPv4, l.RoutedClient.IPv6, l.RoutedClient.Namespace)
	return b.String()
}
