package gobgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/ironlb/ironlb/speaker/bgp"
)

// importPolicy names the gobgp policy that keeps the routers' routes out
// of a server's RIB.
const importPolicy = "ironlb-local-routes-only"

// Errors a caller may branch on.
var (
	// ErrNoNextHop reports a route of one family on a session of the other
	// when the node has no address of the route's family to give as its
	// next hop.
	ErrNoNextHop = errors.New("gobgp: no next hop for a route of this family on this session")
	// ErrNoRouterID reports a peer without a router ID on a node without
	// an IPv4 address to use instead.
	ErrNoRouterID = errors.New("gobgp: no router ID: give the BGPPeer a routerID or the node an IPv4 address")
	// ErrClosed reports a call after the Router stopped.
	ErrClosed = errors.New("gobgp: router stopped")
	// ErrNoPeer reports a call about a peer the Router does not hold.
	ErrNoPeer = errors.New("gobgp: no such peer")
)

// Options configure a Router.
type Options struct {
	// RouterID is the BGP identifier of sessions whose Peer has none; the
	// zero Addr means IPv4.
	RouterID netip.Addr
	// IPv4 is the node's IPv4 address: the next hop of IPv4 routes on
	// IPv6 sessions, and the router ID when RouterID is not set.
	IPv4 netip.Addr
	// IPv6 is the node's IPv6 address: the next hop of IPv6 routes on
	// IPv4 sessions.
	IPv6 netip.Addr
	// Logger receives the Router's logs, and gobgp's; nil discards them.
	Logger *slog.Logger
	// OnSessionState, if set, is called whenever a session changes state,
	// from a goroutine of gobgp's; it must not block.
	OnSessionState func(peer string, state bgp.SessionState)
}

// Router is a bgp.Router made of embedded gobgp servers, one per peer (see
// the package documentation). Create it with New; it is safe for
// concurrent use, and calls about routes and states run concurrently with
// one another.
type Router struct {
	opts Options
	log  *slog.Logger

	// mu is held to read, by calls about routes and states, and to write,
	// by calls that start, change or stop sessions.
	mu       sync.RWMutex
	sessions map[string]*session
	idle     []*gobgpServer
	closed   bool
}

var _ bgp.Router = (*Router)(nil)

// session is one peer and the gobgp server that speaks to it.
type session struct {
	peer bgp.Peer
	// srv is nil while the session is down after a failed start.
	srv *gobgpServer
	// stopWatch stops the watch of the session's state.
	stopWatch context.CancelFunc

	// routesMu guards routes while the Router's mu is held to read.
	routesMu sync.Mutex
	// routes are the routes advertised, by prefix.
	routes map[netip.Prefix]bgp.Route
}

// setRoute records route as advertised on s.
func (s *session) setRoute(route bgp.Route) {
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	s.routes[route.Prefix] = route
}

// route returns the route to prefix advertised on s, if there is one.
func (s *session) route(prefix netip.Prefix) (bgp.Route, bool) {
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	route, ok := s.routes[prefix]
	return route, ok
}

// deleteRoute records that s advertises no route to prefix.
func (s *session) deleteRoute(prefix netip.Prefix) {
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	delete(s.routes, prefix)
}

// gobgpServer is an embedded gobgp server and the logger it writes to.
type gobgpServer struct {
	*server.BgpServer
	log *logger
}

// New returns a Router that has no sessions. It starts no goroutine: each
// AddPeer starts a gobgp server, and Run or Close stops them.
func New(opts Options) *Router {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !opts.RouterID.IsValid() && opts.IPv4.Is4() {
		opts.RouterID = opts.IPv4
	}
	return &Router{opts: opts, log: log, sessions: map[string]*session{}}
}

// Run waits until ctx ends, then stops: it closes the sessions without
// graceful restart, with a Cease NOTIFICATION so that their routers
// withdraw the node's routes at once. It leaves the sessions with graceful
// restart open, so that when the process exits the kernel closes them
// without a NOTIFICATION and their routers keep the routes while the
// speaker restarts (RFC 4724); a caller that does not exit calls Close.
// Run returns nil.
func (r *Router) Run(ctx context.Context) error {
	<-ctx.Done()
	r.stop(false)
	return nil
}

// Close closes every session, with a Cease NOTIFICATION, and stops the
// Router. It is safe to call more than once, and after Run.
func (r *Router) Close() {
	r.stop(true)
}

// stop marks the Router stopped and closes its sessions: all of them, or
// those without graceful restart.
func (r *Router) stop(all bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, name := range slices.Sorted(maps.Keys(r.sessions)) {
		s := r.sessions[name]
		if !all && s.peer.GracefulRestart {
			r.log.Info("leaving BGP session open for graceful restart", "peer", name)
			continue
		}
		r.stopSession(s)
		delete(r.sessions, name)
	}
}

// AddPeer opens a session to p.
func (r *Router) AddPeer(ctx context.Context, p bgp.Peer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("add peer %q: %w", p.Name, ErrClosed)
	}
	if _, ok := r.sessions[p.Name]; ok {
		return fmt.Errorf("add peer %q: the peer exists already", p.Name)
	}
	s := &session{peer: p, routes: map[netip.Prefix]bgp.Route{}}
	if err := r.startSession(ctx, s); err != nil {
		return fmt.Errorf("add peer %q: %w", p.Name, err)
	}
	r.sessions[p.Name] = s
	r.log.Info("added BGP peer", peerAttrs(p)...)
	return nil
}

// UpdatePeer re-establishes the session named p.Name with p's settings,
// keeping its routes. It replaces the neighbor in the session's gobgp
// server, whose RIB still holds the routes; a new router ID, which is the
// server's, starts the server again and adds the routes anew.
func (r *Router) UpdatePeer(ctx context.Context, p bgp.Peer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("update peer %q: %w", p.Name, ErrClosed)
	}
	s, ok := r.sessions[p.Name]
	if !ok {
		return fmt.Errorf("update peer %q: %w", p.Name, ErrNoPeer)
	}
	old := s.peer
	s.peer = p
	if s.srv == nil || r.routerID(old) != r.routerID(p) {
		// gobgp has one router ID per server: start the server again.
		r.stopSession(s)
		if err := r.startSession(ctx, s); err != nil {
			return fmt.Errorf("update peer %q: %w", p.Name, err)
		}
	} else if err := r.replaceNeighbor(ctx, s, old); err != nil {
		return fmt.Errorf("update peer %q: %w", p.Name, err)
	}
	r.log.Info("reset BGP peer with new settings", peerAttrs(p)...)
	return nil
}

// replaceNeighbor closes s's session to old and opens it again with s's
// settings, in the same gobgp server, whose RIB keeps s's routes: gobgp
// sends them once the new session is established. The local AS number is
// the neighbor's, so it can change this way; the router ID cannot.
func (r *Router) replaceNeighbor(ctx context.Context, s *session, old bgp.Peer) error {
	if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: old.Address.String()}); err != nil {
		r.stopSession(s)
		return fmt.Errorf("delete neighbor %s: %w", old.Address, err)
	}
	r.warnHoldTime(s.peer)
	if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: neighbor(s.peer)}); err != nil {
		r.stopSession(s)
		return fmt.Errorf("add neighbor %s: %w", s.peer.Address, err)
	}
	if old.Address.Is4() == s.peer.Address.Is4() {
		return nil
	}
	// The session's family changed, and with it the next hops.
	for _, prefix := range slices.SortedFunc(maps.Keys(s.routes), netip.Prefix.Compare) {
		if err := r.addPath(ctx, s, s.routes[prefix]); err != nil {
			r.stopSession(s)
			return err
		}
	}
	return nil
}

// routerID returns the BGP identifier of the session to p; the zero Addr
// if there is none.
func (r *Router) routerID(p bgp.Peer) netip.Addr {
	if p.RouterID.IsValid() {
		return p.RouterID
	}
	return r.opts.RouterID
}

// warnHoldTime logs that gobgp cannot propose p's hold time of 0.
func (r *Router) warnHoldTime(p bgp.Peer) {
	if p.HoldTime == 0 {
		r.log.Warn("gobgp cannot propose a hold time of 0; it proposes 90s, and the session has no keepalives only if the router proposes 0", "peer", p.Name)
	}
}

// DeletePeer closes the session named name, if there is one.
func (r *Router) DeletePeer(_ context.Context, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sessions[name]
	if !ok {
		return nil
	}
	r.stopSession(s)
	delete(r.sessions, name)
	r.log.Info("deleted BGP peer", "peer", name)
	return nil
}

// Advertise advertises route on the session named peer.
func (r *Router) Advertise(ctx context.Context, peer string, route bgp.Route) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, err := r.running(peer)
	if err != nil {
		return fmt.Errorf("advertise %s: %w", route.Prefix, err)
	}
	if err := r.addPath(ctx, s, route); err != nil {
		return err
	}
	s.setRoute(route)
	return nil
}

// Withdraw withdraws the route to prefix from the session named peer.
func (r *Router) Withdraw(ctx context.Context, peer string, prefix netip.Prefix) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, err := r.running(peer)
	if err != nil {
		return fmt.Errorf("withdraw %s: %w", prefix, err)
	}
	route, ok := s.route(prefix)
	if !ok {
		return nil
	}
	path, err := r.path(s.peer, route)
	if err != nil {
		return fmt.Errorf("withdraw %s: %w", prefix, err)
	}
	path.IsWithdraw = true
	if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: path.Family, Path: path}); err != nil {
		return fmt.Errorf("withdraw %s: %w", prefix, err)
	}
	s.deleteRoute(prefix)
	return nil
}

// Peers returns the state of every session, sorted by name.
func (r *Router) Peers(ctx context.Context) ([]bgp.PeerState, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	now := time.Now()
	out := make([]bgp.PeerState, 0, len(r.sessions))
	for _, name := range slices.Sorted(maps.Keys(r.sessions)) {
		s := r.sessions[name]
		st := bgp.PeerState{Name: name, Address: s.peer.Address, Session: bgp.SessionIdle}
		if s.srv != nil {
			err := s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(n *api.Peer) {
				st = peerState(s.peer, n, now)
			})
			if err != nil {
				return nil, fmt.Errorf("list peer %q: %w", name, err)
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// Advertised returns the routes gobgp holds for the session named peer
// (its Adj-RIB-Out, once the session is established), sorted by prefix,
// with their next hops: what the router is told. It is meant for
// diagnosis.
func (r *Router) Advertised(ctx context.Context, peer string) ([]bgp.Route, []netip.Addr, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, err := r.running(peer)
	if err != nil {
		return nil, nil, fmt.Errorf("list routes: %w", err)
	}
	var routes []bgp.Route
	var nextHops []netip.Addr
	var decodeErr error
	for _, afi := range families {
		req := &api.ListPathRequest{
			TableType: api.TableType_ADJ_OUT,
			Name:      s.peer.Address.String(),
			Family:    &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST},
		}
		err := s.srv.ListPath(ctx, req, func(d *api.Destination) {
			for _, p := range d.GetPaths() {
				route, nh, err := routeOf(p)
				if err != nil {
					decodeErr = errors.Join(decodeErr, err)
					continue
				}
				routes = append(routes, route)
				nextHops = append(nextHops, nh)
			}
		})
		if err != nil {
			return nil, nil, fmt.Errorf("list routes to peer %q: %w", peer, err)
		}
	}
	if decodeErr != nil {
		return nil, nil, fmt.Errorf("list routes to peer %q: %w", peer, decodeErr)
	}
	order := make([]int, len(routes))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return routes[a].Prefix.Compare(routes[b].Prefix) })
	sortedRoutes := make([]bgp.Route, len(routes))
	sortedHops := make([]netip.Addr, len(routes))
	for i, j := range order {
		sortedRoutes[i], sortedHops[i] = routes[j], nextHops[j]
	}
	return sortedRoutes, sortedHops, nil
}

// running returns the session named peer if its server runs.
func (r *Router) running(peer string) (*session, error) {
	if r.closed {
		return nil, ErrClosed
	}
	s, ok := r.sessions[peer]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrNoPeer, peer)
	}
	if s.srv == nil {
		return nil, fmt.Errorf("peer %q: the session failed to start; it starts again when the peer is updated", peer)
	}
	return s, nil
}

// startSession starts a gobgp server for s, gives it its one neighbor and
// advertises s's routes.
func (r *Router) startSession(ctx context.Context, s *session) error {
	p := s.peer
	routerID := r.routerID(p)
	if !routerID.Is4() {
		return ErrNoRouterID
	}

	srv := r.server()
	srv.log.setPeer(p.Name)
	fail := func(err error) error {
		r.release(srv)
		return err
	}
	err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        p.MyASN,
		RouterId:   routerID.String(),
		ListenPort: -1, // never listen: the speaker dials every router
	}})
	if err != nil {
		return fail(fmt.Errorf("start gobgp: %w", err))
	}
	// Take nothing from the router: its routes could only displace ours.
	// The global import policy also filters the paths we add, so it
	// accepts local ones and rejects the rest.
	err = srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name: importPolicy,
		Statements: []*api.Statement{{
			Name:       importPolicy + "-accept-local",
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		}},
	}})
	if err != nil {
		return fail(fmt.Errorf("add import policy: %w", err))
	}
	err = srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_IMPORT,
		Policies:      []*api.Policy{{Name: importPolicy}},
		DefaultAction: api.RouteAction_REJECT,
	}})
	if err != nil {
		return fail(fmt.Errorf("set import policy: %w", err))
	}

	name := p.Name
	watchCtx, stopWatch := context.WithCancel(context.Background())
	err = srv.WatchEvent(watchCtx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, func(ev *api.WatchEventResponse) {
		pe := ev.GetPeer()
		if pe == nil || pe.GetType() != api.WatchEventResponse_PeerEvent_STATE {
			return
		}
		state := sessionState(pe.GetPeer().GetState().GetSessionState())
		r.log.Info("BGP session state", "peer", name, "address", pe.GetPeer().GetState().GetNeighborAddress(), "state", state)
		if r.opts.OnSessionState != nil {
			r.opts.OnSessionState(name, state)
		}
	})
	if err != nil {
		stopWatch()
		return fail(fmt.Errorf("watch session: %w", err))
	}

	r.warnHoldTime(p)
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: neighbor(p)}); err != nil {
		stopWatch()
		return fail(fmt.Errorf("add neighbor %s: %w", p.Address, err))
	}
	s.srv, s.stopWatch = srv, stopWatch
	for _, prefix := range slices.SortedFunc(maps.Keys(s.routes), netip.Prefix.Compare) {
		if err := r.addPath(ctx, s, s.routes[prefix]); err != nil {
			r.stopSession(s)
			return err
		}
	}
	return nil
}

// stopSession closes s's session, if it runs, and keeps its server for
// the next session.
func (r *Router) stopSession(s *session) {
	if s.srv == nil {
		return
	}
	s.stopWatch()
	ctx := context.Background()
	// Cease the session, then empty the RIB with no neighbor left to tell.
	if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: s.peer.Address.String()}); err != nil {
		r.log.Warn("could not delete gobgp neighbor", "peer", s.peer.Name, "error", err)
	}
	if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL}); err != nil {
		r.log.Warn("could not empty gobgp's RIB", "peer", s.peer.Name, "error", err)
	}
	r.release(s.srv)
	s.srv, s.stopWatch = nil, nil
}

// server returns a stopped gobgp server, reused or new, whose Serve loop
// runs.
func (r *Router) server() *gobgpServer {
	if n := len(r.idle); n > 0 {
		srv := r.idle[n-1]
		r.idle = r.idle[:n-1]
		return srv
	}
	log := newLogger(r.log)
	srv := &gobgpServer{BgpServer: server.NewBgpServer(server.LoggerOption(log)), log: log}
	go srv.Serve() // gobgp's Serve never returns; the server is reused
	return srv
}

// release stops srv and keeps it for reuse.
func (r *Router) release(srv *gobgpServer) {
	if err := srv.StopBgp(context.Background(), &api.StopBgpRequest{}); err != nil {
		r.log.Warn("could not stop gobgp", "error", err)
	}
	srv.log.setPeer("")
	r.idle = append(r.idle, srv)
}

// addPath puts route into s's RIB.
func (r *Router) addPath(ctx context.Context, s *session, route bgp.Route) error {
	path, err := r.path(s.peer, route)
	if err != nil {
		return fmt.Errorf("advertise %s: %w", route.Prefix, err)
	}
	if _, err := s.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path}); err != nil {
		return fmt.Errorf("advertise %s: %w", route.Prefix, err)
	}
	return nil
}

// path returns the gobgp path of route on the session to p.
func (r *Router) path(p bgp.Peer, route bgp.Route) (*api.Path, error) {
	nextHop, err := r.nextHop(p, route.Prefix)
	if err != nil {
		return nil, err
	}
	return pathOf(route, nextHop, p.IBGP())
}

// nextHop returns the next hop of routes to prefix on the session to p:
// unspecified, for gobgp to fill in with the session's local address, when
// the families match; the node's address of the prefix's family when they
// do not.
func (r *Router) nextHop(p bgp.Peer, prefix netip.Prefix) (netip.Addr, error) {
	v4 := prefix.Addr().Is4()
	switch {
	case p.Address.Is4() == v4 && v4:
		return netip.IPv4Unspecified(), nil
	case p.Address.Is4() == v4:
		return netip.IPv6Unspecified(), nil
	case v4 && r.opts.IPv4.Is4():
		return r.opts.IPv4, nil
	case !v4 && r.opts.IPv6.Is6() && !r.opts.IPv6.Is4In6():
		return r.opts.IPv6, nil
	}
	return netip.Addr{}, fmt.Errorf("%w: %s over a session to %s, and the node has no address of that family", ErrNoNextHop, prefix, p.Address)
}

// peerAttrs returns the log attributes of p's settings, without its
// password.
func peerAttrs(p bgp.Peer) []any {
	return []any{
		"peer", p.Name, "address", p.Address, "port", p.Port, "myASN", p.MyASN, "peerASN", p.ASN,
		"holdTime", p.HoldTime, "md5", p.Password != "", "gracefulRestart", p.GracefulRestart,
	}
}
