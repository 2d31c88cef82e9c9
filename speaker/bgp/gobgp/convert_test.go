package gobgp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ironlb/ironlb/config"
	ibgp "github.com/ironlb/ironlb/speaker/bgp"
)

// cmpOpts compare routes: netip values and communities by ==, empty and
// nil alike.
var cmpOpts = cmp.Options{
	cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}, config.Community{}),
	cmpopts.EquateEmpty(),
}

func community(s string) config.Community {
	c, err := config.ParseCommunity(s)
	if err != nil {
		panic(err)
	}
	return c
}

func TestPathRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		route   ibgp.Route
		nextHop netip.Addr
		ibgp    bool
		want    ibgp.Route
	}{{
		name:    "IPv4 host route, next hop left to gobgp",
		route:   ibgp.Route{Prefix: netip.MustParsePrefix("203.0.113.7/32")},
		nextHop: netip.IPv4Unspecified(),
	}, {
		name:    "IPv6 aggregate with a next hop",
		route:   ibgp.Route{Prefix: netip.MustParsePrefix("2001:db8:100::/64")},
		nextHop: netip.MustParseAddr("2001:db8:1::11"),
	}, {
		name: "standard and large communities, LOCAL_PREF on iBGP",
		route: ibgp.Route{
			Prefix:      netip.MustParsePrefix("203.0.113.0/24"),
			Communities: []config.Community{community("0:0"), community("65535:65282"), community("large:4294967295:0:1")},
			LocalPref:   250,
		},
		nextHop: netip.IPv4Unspecified(),
		ibgp:    true,
	}, {
		name:    "no LOCAL_PREF on eBGP",
		route:   ibgp.Route{Prefix: netip.MustParsePrefix("2001:db8:100::7/128"), LocalPref: 250},
		nextHop: netip.IPv6Unspecified(),
		want:    ibgp.Route{Prefix: netip.MustParsePrefix("2001:db8:100::7/128")},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if !want.Prefix.IsValid() {
				want = tt.route
			}
			path, err := pathOf(tt.route, tt.nextHop, tt.ibgp)
			if err != nil {
				t.Fatalf("pathOf: %v", err)
			}
			got, nh, err := routeOf(path)
			if err != nil {
				t.Fatalf("routeOf: %v", err)
			}
			if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
				t.Errorf("route (-want +got):\n%s", diff)
			}
			if nh != tt.nextHop {
				t.Errorf("next hop = %s, want %s", nh, tt.nextHop)
			}
			checkNative(t, path, want)
		})
	}
}

// checkNative checks path as gobgp decodes it into BGP attributes: one
// ORIGIN IGP, the communities in the wire format of RFC 1997 and RFC 8092.
func checkNative(t *testing.T, path *api.Path, want ibgp.Route) {
	t.Helper()
	attrs, err := apiutil.GetNativePathAttributes(path)
	if err != nil {
		t.Fatalf("gobgp cannot decode the path: %v", err)
	}
	var standard []uint32
	var large []*bgp.LargeCommunity
	var origin, localPref int
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeOrigin:
			origin++
			if a.Value != bgp.BGP_ORIGIN_ATTR_TYPE_IGP {
				t.Errorf("ORIGIN = %d, want IGP", a.Value)
			}
		case *bgp.PathAttributeCommunities:
			standard = a.Value
		case *bgp.PathAttributeLargeCommunities:
			large = a.Values
		case *bgp.PathAttributeLocalPref:
			localPref++
			if a.Value != want.LocalPref {
				t.Errorf("LOCAL_PREF = %d, want %d", a.Value, want.LocalPref)
			}
		}
	}
	if origin != 1 {
		t.Errorf("%d ORIGIN attributes, want 1", origin)
	}
	if (want.LocalPref != 0) != (localPref == 1) {
		t.Errorf("%d LOCAL_PREF attributes for a route with LocalPref %d", localPref, want.LocalPref)
	}
	var wantStd []uint32
	var wantLarge []*bgp.LargeCommunity
	for _, c := range want.Communities {
		if c.IsLarge() {
			g, l1, l2 := c.Large()
			wantLarge = append(wantLarge, bgp.NewLargeCommunity(g, l1, l2))
		} else {
			wantStd = append(wantStd, c.Standard())
		}
	}
	if diff := cmp.Diff(wantStd, standard, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("COMMUNITIES (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantLarge, large, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("LARGE_COMMUNITY (-want +got):\n%s", diff)
	}
}

// FuzzPathRoundTrip encodes routes drawn from the fuzzer's bytes as gobgp
// paths and decodes them again: the community encoding must lose nothing,
// and gobgp must accept every path.
func FuzzPathRoundTrip(f *testing.F) {
	f.Add([]byte{32, 203, 0, 113, 7}, []byte{0xff, 0xff, 0xff, 0x02}, uint32(100), true)
	f.Add([]byte{64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}, uint32(0), false)
	f.Add([]byte{0}, []byte{}, uint32(1), true)
	f.Fuzz(func(t *testing.T, prefixBytes, communityBytes []byte, localPref uint32, internal bool) {
		route, ok := fuzzRoute(prefixBytes, communityBytes, localPref)
		if !ok {
			return
		}
		nextHop := netip.IPv6Unspecified()
		if route.Prefix.Addr().Is4() {
			nextHop = netip.IPv4Unspecified()
		}
		path, err := pathOf(route, nextHop, internal)
		if err != nil {
			t.Fatalf("pathOf(%s): %v", route, err)
		}
		got, nh, err := routeOf(path)
		if err != nil {
			t.Fatalf("routeOf(pathOf(%s)): %v", route, err)
		}
		want := route
		if !internal {
			want.LocalPref = 0
		}
		if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
			t.Fatalf("round trip of %s (-want +got):\n%s", route, diff)
		}
		if nh != nextHop {
			t.Fatalf("next hop %s, want %s", nh, nextHop)
		}
		if _, err := apiutil.GetNativePathAttributes(path); err != nil {
			t.Fatalf("gobgp cannot decode the path of %s: %v", route, err)
		}
	})
}

// fuzzRoute draws a route from bytes: a prefix length then an address;
// communities as a kind byte and numbers. The communities are sorted and
// deduplicated, as bgp.Compute leaves them.
func fuzzRoute(prefixBytes, communityBytes []byte, localPref uint32) (ibgp.Route, bool) {
	if len(prefixBytes) < 1 {
		return ibgp.Route{}, false
	}
	bits, rest := int(prefixBytes[0]), prefixBytes[1:]
	var addr netip.Addr
	switch {
	case len(rest) >= 16:
		addr = netip.AddrFrom16([16]byte(rest[:16])).Unmap()
	case len(rest) >= 4:
		addr = netip.AddrFrom4([4]byte(rest[:4]))
	default:
		addr = netip.IPv4Unspecified()
	}
	prefix, err := addr.Prefix(bits % (addr.BitLen() + 1))
	if err != nil {
		return ibgp.Route{}, false
	}
	r := ibgp.Route{Prefix: prefix, LocalPref: localPref}
	buf := bytes.NewReader(communityBytes)
	for {
		kind, err := buf.ReadByte()
		if err != nil {
			break
		}
		var n [3]uint32
		if err := binary.Read(buf, binary.BigEndian, &n); err != nil {
			break
		}
		if kind%2 == 0 {
			r.Communities = append(r.Communities, config.StandardCommunity(uint16(n[0]), uint16(n[1])))
		} else {
			r.Communities = append(r.Communities, config.LargeCommunity(n[0], n[1], n[2]))
		}
	}
	sortCommunities(r.Communities)
	r.Communities = compactCommunities(r.Communities)
	return r, true
}

func TestRouteOfRejectsOtherNLRI(t *testing.T) {
	path, err := pathOf(ibgp.Route{Prefix: netip.MustParsePrefix("203.0.113.7/32")}, netip.IPv4Unspecified(), false)
	if err != nil {
		t.Fatal(err)
	}
	path.Nlri = path.Pattrs[0] // an ORIGIN is no prefix
	if _, _, err := routeOf(path); !errors.Is(err, errNotUnicast) {
		t.Errorf("routeOf(path with an ORIGIN as NLRI) error = %v, want %v", err, errNotUnicast)
	}
}

func TestNeighbor(t *testing.T) {
	p := ibgp.Peer{
		Name: "frr", MyASN: 64512, ASN: 64513,
		Address: netip.MustParseAddr("198.51.100.1"), SourceAddress: netip.MustParseAddr("198.51.100.11"), Port: 1179,
		HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second, ConnectTime: 1500 * time.Millisecond,
		Password: "s3cret", EBGPMultiHop: true, GracefulRestart: true,
	}
	n := neighbor(p)
	if got := n.GetConf(); got.NeighborAddress != "198.51.100.1" || got.PeerAsn != 64513 || got.LocalAsn != 64512 || got.AuthPassword != "s3cret" {
		t.Errorf("Conf = %v", got)
	}
	if got := n.GetTimers().GetConfig(); got.HoldTime != 9 || got.KeepaliveInterval != 3 || got.ConnectRetry != 2 {
		t.Errorf("Timers = %v, want hold 9, keepalive 3, connect retry 2 (rounded up)", got)
	}
	if got := n.GetTransport(); got.LocalAddress != "198.51.100.11" || got.RemotePort != 1179 || got.PassiveMode {
		t.Errorf("Transport = %v", got)
	}
	if got := n.GetEbgpMultihop(); !got.GetEnabled() || got.GetMultihopTtl() != 255 {
		t.Errorf("EbgpMultihop = %v, want enabled with TTL 255", got)
	}
	if got := n.GetGracefulRestart(); !got.GetEnabled() || got.GetRestartTime() != 120 {
		t.Errorf("GracefulRestart = %v, want enabled, restart time 120", got)
	}
	var afis []api.Family_Afi
	for _, af := range n.GetAfiSafis() {
		afis = append(afis, af.GetConfig().GetFamily().GetAfi())
		if !af.GetConfig().GetEnabled() || af.GetConfig().GetFamily().GetSafi() != api.Family_SAFI_UNICAST || !af.GetMpGracefulRestart().GetConfig().GetEnabled() {
			t.Errorf("AfiSafi = %v, want unicast, enabled, with graceful restart", af)
		}
	}
	if diff := cmp.Diff([]api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6}, afis); diff != "" {
		t.Errorf("families (-want +got):\n%s", diff)
	}

	// Multihop is for eBGP; no source address and no graceful restart
	// leave gobgp's defaults.
	p.MyASN, p.SourceAddress, p.GracefulRestart = p.ASN, netip.Addr{}, false
	n = neighbor(p)
	if n.EbgpMultihop != nil || n.GracefulRestart != nil || n.GetTransport().GetLocalAddress() != "" {
		t.Errorf("iBGP neighbor without source address or graceful restart = %v", n)
	}
}

func TestNextHop(t *testing.T) {
	v4Peer := ibgp.Peer{Address: netip.MustParseAddr("198.51.100.1")}
	v6Peer := ibgp.Peer{Address: netip.MustParseAddr("2001:db8:1::1")}
	v4Route, v6Route := netip.MustParsePrefix("203.0.113.7/32"), netip.MustParsePrefix("2001:db8:100::7/128")
	node := Options{IPv4: netip.MustParseAddr("198.51.100.11"), IPv6: netip.MustParseAddr("2001:db8:1::11")}

	tests := []struct {
		name   string
		opts   Options
		peer   ibgp.Peer
		prefix netip.Prefix
		want   netip.Addr
	}{
		{"IPv4 on IPv4: the session's address", node, v4Peer, v4Route, netip.IPv4Unspecified()},
		{"IPv6 on IPv6: the session's address", node, v6Peer, v6Route, netip.IPv6Unspecified()},
		{"IPv6 on IPv4: the node's IPv6 address", node, v4Peer, v6Route, node.IPv6},
		{"IPv4 on IPv6: the node's IPv4 address", node, v6Peer, v4Route, node.IPv4},
		{"IPv6 on IPv4, node without IPv6", Options{IPv4: node.IPv4}, v4Peer, v6Route, netip.Addr{}},
		{"IPv4 on IPv6, node without IPv4", Options{IPv6: node.IPv6}, v6Peer, v4Route, netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(tt.opts).nextHop(tt.peer, tt.prefix)
			if got != tt.want {
				t.Errorf("nextHop = %s, want %s", got, tt.want)
			}
			if wantErr := !tt.want.IsValid(); wantErr != errors.Is(err, ErrNoNextHop) {
				t.Errorf("nextHop error = %v, want ErrNoNextHop: %t", err, wantErr)
			}
		})
	}
}

func TestPeerState(t *testing.T) {
	p := ibgp.Peer{Name: "frr", Address: netip.MustParseAddr("198.51.100.1")}
	up := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n := &api.Peer{
		State:  &api.PeerState{SessionState: api.PeerState_ESTABLISHED, Messages: &api.Messages{Sent: &api.Message{Update: 7}}},
		Timers: &api.Timers{State: &api.TimersState{Uptime: timestamppb.New(up)}},
		AfiSafis: []*api.AfiSafi{
			{State: &api.AfiSafiState{Advertised: 3, Received: 1}},
			{State: &api.AfiSafiState{Advertised: 2}},
		},
	}
	got := peerState(p, n, up.Add(time.Minute))
	want := ibgp.PeerState{
		Name: "frr", Address: p.Address, Session: ibgp.SessionEstablished,
		EstablishedAt: up, Uptime: time.Minute, PrefixesSent: 5, PrefixesReceived: 1, UpdatesSent: 7,
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("peerState (-want +got):\n%s", diff)
	}

	n.State.SessionState = api.PeerState_ACTIVE
	if got := peerState(p, n, up); got.Session != ibgp.SessionActive || !got.EstablishedAt.IsZero() || got.Uptime != 0 {
		t.Errorf("peerState of an active session = %+v, want Active with no uptime", got)
	}
	for s, want := range sessionStates {
		if got := sessionState(s); got != want || !strings.EqualFold(got.String(), strings.ReplaceAll(s.String(), "_", "")) {
			t.Errorf("sessionState(%s) = %s, want %s", s, got, want)
		}
	}
}

func TestLoggerDropsPasswords(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: levelTrace})))
	l.setPeer("frr")
	l.Warn("something", gobgplog.Fields{"Key": "198.51.100.1", "AuthPassword": "hunter2", "password": "hunter2"})
	l.Debug("detail", gobgplog.Fields{"Data": 1})
	out := buf.String()
	if strings.Contains(out, "hunter2") {
		t.Errorf("log reveals a password:\n%s", out)
	}
	for _, want := range []string{"level=WARN", "peer=frr", "Key=198.51.100.1", "level=DEBUG-4"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if got := l.GetLevel(); got != gobgplog.DebugLevel {
		t.Errorf("GetLevel() = %d, want DebugLevel", got)
	}
	quiet := newLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if got := quiet.GetLevel(); got != gobgplog.WarnLevel {
		t.Errorf("GetLevel() at slog Info = %d, want WarnLevel (gobgp's Info is our Debug)", got)
	}
}

func sortCommunities(cs []config.Community) {
	slices.SortFunc(cs, config.Community.Compare)
}

func compactCommunities(cs []config.Community) []config.Community {
	return slices.Compact(cs)
}
