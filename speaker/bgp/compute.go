package bgp

import (
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config"
)

// Service is a Service this node may advertise, as plain values: the
// caller has already decided that the node is eligible (it is not excluded,
// its speaker is alive and, for externalTrafficPolicy: Local, it holds a
// ready endpoint).
type Service struct {
	// Key identifies the Service, such as "namespace/name".
	Key string
	// IPs are the Service's load-balancer IPs, of either family.
	IPs []netip.Addr
	// Pool is the name of the address pool the IPs come from; empty means
	// each IP's pool is looked up in the configuration.
	Pool string
}

// Advertisement is what a node advertises over BGP: the desired State and,
// for each Service, the peers that receive its routes.
type Advertisement struct {
	// State holds the sessions to open and the routes to advertise on each.
	State State
	// Services maps the Key of each Service that has at least one route to
	// the names of the peers its routes go to, sorted. A Service missing
	// from it is not advertised by this node.
	Services map[string][]string
}

// Compute returns what a node with labels nodeLabels advertises, given the
// configuration and the Services the node may advertise.
//
// The node opens a session to each BGPPeer whose nodeSelectors select it.
// For each IP of each Service, each BGPAdvertisement that selects the node
// and the Service's pool yields one route, the IP masked to the
// advertisement's aggregation length for the IP's family, to each of the
// node's peers that the advertisement's peers list selects (all of them
// when the list is empty). Both families go to every peer.
//
// Several Services and several advertisements can yield the same prefix
// for the same peer; that peer then receives one route whose communities
// are the union of theirs. Its LOCAL_PREF, on iBGP sessions only, is the
// highest that any of those advertisements gives: a deterministic choice
// that does not depend on the order of the advertisements, and the one a
// router would prefer anyway. eBGP routes carry no LOCAL_PREF (RFC 4271
// section 5.1.5).
//
// A nil cfg advertises nothing. IPs that are not valid are skipped, and
// IPv4-mapped IPv6 addresses are taken as IPv4.
func Compute(cfg *config.Config, nodeLabels map[string]string, services []Service) Advertisement {
	adv := Advertisement{
		State:    State{Peers: map[string]Peer{}, Routes: map[string]map[netip.Prefix]Route{}},
		Services: map[string][]string{},
	}
	if cfg == nil {
		return adv
	}
	node := labels.Set(nodeLabels)

	var peers []Peer
	for _, p := range cfg.BGPPeers {
		if p.SelectsNode(node) {
			peer := PeerFromConfig(p)
			peers = append(peers, peer)
			adv.State.Peers[peer.Name] = peer
			adv.State.Routes[peer.Name] = map[netip.Prefix]Route{}
		}
	}
	var advs []*config.BGPAdvertisement
	for _, a := range cfg.BGPAdvertisements {
		if a.SelectsNode(node) {
			advs = append(advs, a)
		}
	}
	if len(peers) == 0 || len(advs) == 0 {
		return adv
	}

	for _, svc := range services {
		var svcPeers []string
		for _, ip := range svc.IPs {
			ip = ip.Unmap()
			if !ip.IsValid() {
				continue
			}
			pool := svc.Pool
			if pool == "" {
				p, ok := cfg.PoolOf(ip)
				if !ok {
					continue
				}
				pool = p.Name
			}
			family := config.FamilyOf(ip)
			for _, a := range advs {
				if !a.SelectsPool(pool) {
					continue
				}
				prefix, err := ip.Prefix(a.AggregationLengthFor(family))
				if err != nil {
					continue // config.New rejects such lengths
				}
				for _, p := range peers {
					if !a.SelectsPeer(p.Name) {
						continue
					}
					routes := adv.State.Routes[p.Name]
					r, ok := routes[prefix]
					if !ok {
						r = Route{Prefix: prefix}
					}
					r.Communities = append(r.Communities, a.Communities...)
					if p.IBGP() {
						r.LocalPref = max(r.LocalPref, a.LocalPref)
					}
					routes[prefix] = r
					svcPeers = append(svcPeers, p.Name)
				}
			}
		}
		if len(svcPeers) > 0 {
			all := append(adv.Services[svc.Key], svcPeers...)
			slices.Sort(all)
			adv.Services[svc.Key] = slices.Compact(all)
		}
	}

	for _, routes := range adv.State.Routes {
		for prefix, r := range routes {
			if len(r.Communities) == 0 {
				continue
			}
			slices.SortFunc(r.Communities, config.Community.Compare)
			r.Communities = slices.Clip(slices.Compact(r.Communities))
			routes[prefix] = r
		}
	}
	return adv
}
