package gobgp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/speaker/bgp"
)

// GracefulRestartTime is the restart time a speaker announces with the
// graceful restart capability (RFC 4724 section 3): how long a router
// keeps its routes while it restarts. It is FRR's default.
const GracefulRestartTime = 120 * time.Second

// ebgpMultiHopTTL is the TTL of an eBGP multihop session's packets.
const ebgpMultiHopTTL = 255

// originIGP is the ORIGIN of every route: the speaker originates them
// (RFC 4271 section 5.1.1).
const originIGP = 0

// families are the address families every session carries.
var families = [...]api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6}

// familyOf returns the gobgp family of routes to prefixes like p.
func familyOf(p netip.Prefix) *api.Family {
	afi := api.Family_AFI_IP6
	if p.Addr().Is4() {
		afi = api.Family_AFI_IP
	}
	return &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}
}

// seconds returns d in whole seconds, rounded up, as gobgp's timers take
// it.
func seconds(d time.Duration) uint64 {
	return uint64((d + time.Second - 1) / time.Second)
}

// neighbor returns gobgp's configuration of the session to p.
func neighbor(p bgp.Peer) *api.Peer {
	n := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			LocalAsn:        p.MyASN,
			AuthPassword:    string(p.Password),
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      max(seconds(p.ConnectTime), 1),
			HoldTime:          seconds(p.HoldTime),
			KeepaliveInterval: seconds(p.KeepaliveTime),
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
	}
	if p.SourceAddress.IsValid() {
		n.Transport.LocalAddress = p.SourceAddress.String()
	}
	if p.EBGPMultiHop && !p.IBGP() {
		n.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: ebgpMultiHopTTL}
	}
	if p.GracefulRestart {
		n.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: uint32(seconds(GracefulRestartTime))}
	}
	for _, afi := range families {
		n.AfiSafis = append(n.AfiSafis, &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: p.GracefulRestart}},
		})
	}
	return n
}

// pathOf returns the gobgp path of route r with next hop nextHop, which
// is of r's family; LOCAL_PREF goes only on iBGP sessions.
func pathOf(r bgp.Route, nextHop netip.Addr, ibgp bool) (*api.Path, error) {
	family := familyOf(r.Prefix)
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: r.Prefix.Addr().String(), PrefixLen: uint32(r.Prefix.Bits())})
	if err != nil {
		return nil, fmt.Errorf("encode prefix %s: %w", r.Prefix, err)
	}
	attrs := []proto.Message{&api.OriginAttribute{Origin: originIGP}}
	if family.Afi == api.Family_AFI_IP {
		attrs = append(attrs, &api.NextHopAttribute{NextHop: nextHop.String()})
	} else {
		attrs = append(attrs, &api.MpReachNLRIAttribute{Family: family, NextHops: []string{nextHop.String()}, Nlris: []*anypb.Any{nlri}})
	}
	var standard []uint32
	var large []*api.LargeCommunity
	for _, c := range r.Communities {
		if c.IsLarge() {
			g, l1, l2 := c.Large()
			large = append(large, &api.LargeCommunity{GlobalAdmin: g, LocalData1: l1, LocalData2: l2})
		} else {
			standard = append(standard, c.Standard())
		}
	}
	if len(standard) > 0 {
		attrs = append(attrs, &api.CommunitiesAttribute{Communities: standard})
	}
	if len(large) > 0 {
		attrs = append(attrs, &api.LargeCommunitiesAttribute{Communities: large})
	}
	if ibgp && r.LocalPref != 0 {
		attrs = append(attrs, &api.LocalPrefAttribute{LocalPref: r.LocalPref})
	}
	pattrs := make([]*anypb.Any, len(attrs))
	for i, a := range attrs {
		if pattrs[i], err = anypb.New(a); err != nil {
			return nil, fmt.Errorf("encode attributes of %s: %w", r.Prefix, err)
		}
	}
	return &api.Path{Family: family, Nlri: nlri, Pattrs: pattrs}, nil
}

// errNotUnicast reports a path that is not an IPv4 or IPv6 unicast route.
var errNotUnicast = errors.New("not an IP unicast route")

// routeOf returns the route a gobgp path carries and its next hop: the
// inverse of pathOf. Attributes a Route does not hold are ignored.
func routeOf(p *api.Path) (bgp.Route, netip.Addr, error) {
	var r bgp.Route
	var nextHop netip.Addr
	nlri, err := p.GetNlri().UnmarshalNew()
	if err != nil {
		return r, nextHop, fmt.Errorf("decode prefix: %w", err)
	}
	ipp, ok := nlri.(*api.IPAddressPrefix)
	if !ok {
		return r, nextHop, fmt.Errorf("decode prefix: %w: %T", errNotUnicast, nlri)
	}
	addr, err := netip.ParseAddr(ipp.Prefix)
	if err != nil {
		return r, nextHop, fmt.Errorf("decode prefix %q: %w", ipp.Prefix, err)
	}
	if r.Prefix, err = addr.Prefix(int(ipp.PrefixLen)); err != nil {
		return r, nextHop, fmt.Errorf("decode prefix %s/%d: %w", addr, ipp.PrefixLen, err)
	}
	for _, a := range p.GetPattrs() {
		m, err := a.UnmarshalNew()
		if err != nil {
			return r, nextHop, fmt.Errorf("decode attribute of %s: %w", r.Prefix, err)
		}
		switch m := m.(type) {
		case *api.NextHopAttribute:
			nextHop, err = netip.ParseAddr(m.NextHop)
		case *api.MpReachNLRIAttribute:
			if len(m.NextHops) > 0 {
				nextHop, err = netip.ParseAddr(m.NextHops[0])
			}
		case *api.CommunitiesAttribute:
			for _, c := range m.Communities {
				r.Communities = append(r.Communities, config.StandardCommunity(uint16(c>>16), uint16(c)))
			}
		case *api.LargeCommunitiesAttribute:
			for _, c := range m.Communities {
				r.Communities = append(r.Communities, config.LargeCommunity(c.GlobalAdmin, c.LocalData1, c.LocalData2))
			}
		case *api.LocalPrefAttribute:
			r.LocalPref = m.LocalPref
		}
		if err != nil {
			return r, nextHop, fmt.Errorf("decode next hop of %s: %w", r.Prefix, err)
		}
	}
	slices.SortFunc(r.Communities, config.Community.Compare)
	r.Communities = slices.Compact(r.Communities)
	return r, nextHop, nil
}

// sessionStates maps gobgp's session states to ours.
var sessionStates = map[api.PeerState_SessionState]bgp.SessionState{
	api.PeerState_UNKNOWN:     bgp.SessionUnknown,
	api.PeerState_IDLE:        bgp.SessionIdle,
	api.PeerState_CONNECT:     bgp.SessionConnect,
	api.PeerState_ACTIVE:      bgp.SessionActive,
	api.PeerState_OPENSENT:    bgp.SessionOpenSent,
	api.PeerState_OPENCONFIRM: bgp.SessionOpenConfirm,
	api.PeerState_ESTABLISHED: bgp.SessionEstablished,
}

// sessionState returns our name for gobgp's session state s.
func sessionState(s api.PeerState_SessionState) bgp.SessionState {
	return sessionStates[s] // SessionUnknown when missing
}

// peerState returns what gobgp reports of the session to p, as of now.
func peerState(p bgp.Peer, n *api.Peer, now time.Time) bgp.PeerState {
	st := bgp.PeerState{Name: p.Name, Address: p.Address, Session: sessionState(n.GetState().GetSessionState())}
	st.UpdatesSent = n.GetState().GetMessages().GetSent().GetUpdate()
	for _, af := range n.GetAfiSafis() {
		st.PrefixesSent += af.GetState().GetAdvertised()
		st.PrefixesReceived += af.GetState().GetReceived()
	}
	if st.Session == bgp.SessionEstablished {
		if up := n.GetTimers().GetState().GetUptime(); up != nil {
			st.EstablishedAt = up.AsTime()
			st.Uptime = max(now.Sub(st.EstablishedAt), 0)
		}
	}
	return st
}
