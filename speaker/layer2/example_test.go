package layer2_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/speaker/election"
	"github.com/ironlb/ironlb/speaker/eligibility"
	"github.com/ironlb/ironlb/speaker/layer2"
	"github.com/ironlb/ironlb/speaker/layer2/interfaces"
)

// printer is a Responder that prints what it is asked to do; a speaker
// uses layer2.Listener instead.
type printer struct{ name string }

func (p printer) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (p printer) Add(ip netip.Addr) error       { fmt.Println(p.name, "answers for", ip); return nil }
func (p printer) Remove(ip netip.Addr) error {
	fmt.Println(p.name, "stops answering for", ip)
	return nil
}
func (p printer) Close() error { return nil }
func (p printer) Gratuitous(ip netip.Addr) error {
	fmt.Println(p.name, "announces", ip)
	return nil
}

// Example shows one speaker's reconcile for one dual-stack Service: which
// nodes may announce it, which of them owns it, on which interfaces, and
// what the Announcer does about it.
func Example() {
	const self = "node-a" // the node this speaker runs on
	adv := &config.L2Advertisement{Name: "lan", Pools: []string{"pool"}}
	svc := eligibility.Service{
		Key:  "default/web",
		IPs:  []netip.Addr{netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8:1::1:c8")},
		Pool: "pool",
		Endpoints: []eligibility.Endpoint{
			{NodeName: "node-a", Ready: true, Serving: true},
		},
	}
	nodes := []eligibility.Node{
		{Name: "node-a", Ready: true},
		{Name: "node-b", Ready: true},
		{Name: "node-c", Ready: true, Labels: labels.Set{eligibility.ExcludeLabel: ""}},
	}
	live := map[string]bool{"node-a": true, "node-b": true, "node-c": true}

	// Which nodes may announce, and why the others may not.
	res := eligibility.Eligible(eligibility.Input{
		Nodes: nodes, Live: live, Service: svc,
		Selectors: []eligibility.Selector{eligibility.L2Selector(adv)},
	})
	fmt.Println("eligible:", res.Eligible)
	fmt.Println("node-c:", res.Ineligible["node-c"])

	// One owner for both addresses: the key is the lowest address.
	key, _ := election.ServiceKey(svc.IPs)
	owner, _ := election.Owner(res.Eligible, key)

	// This node's interfaces, as an interfaces.Watcher reports them.
	links := []interfaces.Link{
		{Name: "lo", Index: 1, Kind: "device", Up: true, Loopback: true},
		{Name: "eth0", Index: 2, Kind: "device", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.11/24")}},
	}
	ifaces := interfaces.Choose(links, []netip.Addr{netip.MustParseAddr("198.51.100.11")}, adv.Interfaces)

	desired := layer2.Desired{}
	if owner == self {
		for _, ip := range svc.IPs {
			desired[ip] = ifaces
		}
	}
	fmt.Println("owner:", owner, "on", ifaces)

	a := layer2.NewAnnouncer(layer2.FactoryFunc(func(ifname string, f config.Family) (layer2.Responder, error) {
		return printer{ifname + "/" + f.String()}, nil
	}))
	a.Schedule = []time.Duration{0} // only the packet sent at once, for the example
	_ = a.Apply(desired)
	_ = a.Apply(desired) // again: nothing to do
	_ = a.Apply(layer2.Desired{})
	// Output:
	// eligible: [node-a node-b]
	// node-c: excluded by label node.kubernetes.io/exclude-from-external-load-balancers
	// owner: node-a on [eth0]
	// eth0/IPv4 answers for 198.51.100.200
	// eth0/IPv4 announces 198.51.100.200
	// eth0/IPv6 answers for 2001:db8:1::1:c8
	// eth0/IPv6 announces 2001:db8:1::1:c8
	// eth0/IPv4 stops answering for 198.51.100.200
	// eth0/IPv6 stops answering for 2001:db8:1::1:c8
}
