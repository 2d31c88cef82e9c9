package members

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/hashicorp/memberlist"
)

// DefaultPort is the port the speakers gossip on, UDP and TCP: memberlist's
// and MetalLB's.
const DefaultPort = 7946

// The timing defaults. With them a speaker that dies is dropped by the others
// in roughly 200-400 ms on a LAN, where memberlist's LAN defaults, which
// MetalLB keeps, take about 6 s. A crash is noticed in four steps:
//
//	step                             bounded by                  mean here
//	until a survivor probes it       the survivors' round robin  ~70 ms
//	the probe fails                  ProbeInterval               100 ms
//	suspicion, then "dead"           SuspicionMult x Interval    100 ms
//	the death gossiped to the rest   GossipInterval              ~10 ms
//
// Each member probes one peer per ProbeInterval, round robin, so together
// the survivors probe any one peer about once per interval. A probe that gets
// no direct ack within ProbeTimeout asks IndirectChecks other members to ping
// the target and tries TCP too, and fails only at the end of the interval.
// The prober then suspects the target, and declares it dead when the
// suspicion timeout runs out unless the target refuted the suspicion first.
// Measured here, three speakers on loopback (BenchmarkFailureDetection, 40
// kills): a median of 265-280 ms from SIGKILL until both survivors dropped
// the speaker, never under 200 ms, rarely over 450 ms.
//
// A live speaker is declared dead only when it misses the direct ack, every
// indirect ack and the TCP ping for a whole probe interval, and then does not
// refute within the suspicion timeout, where it refutes within two gossip
// intervals of hearing the suspicion. Measured here (BenchmarkFalseDeaths), a
// speaker frozen with SIGSTOP for 100 ms was never declared dead, for 200 ms
// one time in ten, for 300 ms most times: far above a LAN's round trip or a
// Go pause, but not above CPU throttling, so the speaker should run without
// a CPU limit. memberlist's Lifeguard awareness stretches a member's own
// probe timeouts (up to 8 times) when it notices that it is the slow one, so
// a starved speaker does not declare its healthy peers dead.
const (
	// DefaultProbeInterval is how often each member probes one peer. Ten
	// probes a second is a few hundred bytes per second per node; it bounds
	// both the wait until a dead peer is probed and the probe itself.
	DefaultProbeInterval = 100 * time.Millisecond

	// DefaultProbeTimeout is how long a direct ping waits for its ack before
	// the indirect pings start: many LAN round trips, half the interval so
	// the indirect pings have the other half.
	DefaultProbeTimeout = 50 * time.Millisecond

	// DefaultSuspicionMult scales the suspicion timeout: SuspicionMult x
	// ProbeInterval x max(1, log10(members)), so 100 ms up to 10 speakers
	// and 200 ms at 100. A suspected speaker that is alive refutes within
	// two gossip intervals, 40 ms, of hearing the suspicion. At 1 and 2
	// memberlist expects no confirmations from other members and uses the
	// timeout as it is; at 3 and more it waits for confirmations, starting
	// from the longer SuspicionMaxTimeoutMult timeout. 2 would add 100 ms to
	// every failover (measured median 380 ms) and tolerate a freeze about
	// 50 ms longer.
	DefaultSuspicionMult = 1

	// DefaultSuspicionMaxTimeoutMult bounds the suspicion timeout when a
	// larger SuspicionMult makes memberlist wait for confirmations from other
	// members: at most this many times the base timeout. It is not used at
	// the default SuspicionMult.
	DefaultSuspicionMaxTimeoutMult = 4

	// DefaultGossipInterval is how often queued messages (alive, suspect,
	// dead, leave) are sent to GossipNodes random members when they did not
	// ride on a probe. It bounds how long a graceful leave, a death and a
	// refutation take to reach the others: a leave is seen in 15 ms at the
	// median (BenchmarkGracefulLeave), against 22 ms at 50 ms, and a live
	// speaker suspected by mistake refutes well inside the suspicion
	// timeout. A round with nothing queued sends nothing: an idle cluster
	// pays only a timer.
	DefaultGossipInterval = 20 * time.Millisecond

	// DefaultGossipNodes is how many random members each gossip round goes
	// to: a message reaches a hundred speakers in about five rounds.
	DefaultGossipNodes = 3

	// DefaultIndirectChecks is how many other members are asked to ping a
	// peer that missed its direct ack, so that one lossy path does not get
	// a live speaker suspected.
	DefaultIndirectChecks = 3

	// DefaultTCPTimeout bounds a join and a full state exchange: plenty on a
	// LAN, and short enough that a Node whose speaker does not answer does
	// not hold up the others' joins for long.
	DefaultTCPTimeout = time.Second

	// DefaultRetransmitMult is how often a message is retransmitted:
	// RetransmitMult x ceil(log10(members+1)) sends, so that a lost UDP
	// packet does not lose a death or a leave.
	DefaultRetransmitMult = 4

	// DefaultPushPullInterval is how often a member exchanges its full state
	// with a random other over TCP: the anti-entropy that repairs what
	// gossip missed, every few seconds instead of memberlist's 30.
	DefaultPushPullInterval = 5 * time.Second

	// DefaultDeadNodeReclaimTime is how long a dead member's name stays
	// bound to its old address. Names are Node names, unique in the cluster,
	// so a dead name can only come back as that Node's restarted speaker,
	// perhaps on a new address: let it in at once. (On the same address it
	// rejoins anyway, by refuting its death with a higher incarnation.)
	DefaultDeadNodeReclaimTime = 100 * time.Millisecond

	// DefaultRejoinInterval is how often peers given to SetPeers that are not
	// members are joined again, while there are any.
	DefaultRejoinInterval = time.Second

	// DefaultLeaveTimeout bounds how long a graceful leave waits for its
	// message to go out before the member shuts down anyway.
	DefaultLeaveTimeout = time.Second
)

// label is put on every packet and stream, so that a speaker never merges
// with another memberlist cluster (MetalLB's, Consul's) reachable at a peer
// address; with encryption it is authenticated too.
const label = "ironlb"

// Options configures Members. Zero values take the defaults.
type Options struct {
	// NodeName is this member's name, the name of this speaker's Node.
	NodeName string
	// BindAddr is the node's address: memberlist listens on it, UDP and
	// TCP, and tells the others to reach this member there.
	BindAddr netip.Addr
	// Port is the gossip port, UDP and TCP; 0 means DefaultPort.
	Port uint16
	// SecretKey encrypts and authenticates the gossip with AES-GCM. It must
	// be 16, 24 or 32 bytes long (AES-128, -192, -256); nil turns encryption
	// off. Every member must hold the same key.
	SecretKey []byte
	// Log receives membership changes and memberlist's own messages
	// (warnings at level 0, information at 1, debugging at 2).
	Log logr.Logger
	// Notify, if set, is called with the names of the live members, this
	// one included, whenever that set changes, starting once Run has
	// tried to join every peer SetPeers first gave (before that, the set
	// says nothing about the others). It is called from one goroutine,
	// never concurrently, never after Run returns, and owns the map it is given. It should return
	// quickly: changes that arrive meanwhile are coalesced.
	Notify func(live map[string]bool)

	// ProbeInterval is how often each member probes one peer
	// (DefaultProbeInterval).
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for its ack
	// (DefaultProbeTimeout).
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspected member has to refute
	// (DefaultSuspicionMult).
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion timeout when it waits for
	// confirmations (DefaultSuspicionMaxTimeoutMult).
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often queued messages are gossiped
	// (DefaultGossipInterval).
	GossipInterval time.Duration
	// GossipNodes is how many members each gossip round goes to
	// (DefaultGossipNodes).
	GossipNodes int
	// IndirectChecks is how many members ping a peer that missed its direct
	// ack (DefaultIndirectChecks).
	IndirectChecks int
	// TCPTimeout bounds joins and full state exchanges (DefaultTCPTimeout).
	TCPTimeout time.Duration
	// RetransmitMult scales how often a gossiped message is retransmitted
	// (DefaultRetransmitMult).
	RetransmitMult int
	// PushPullInterval is how often full state is exchanged with a random
	// member (DefaultPushPullInterval).
	PushPullInterval time.Duration
	// DeadNodeReclaimTime is how long a dead member's name stays bound to
	// its old address (DefaultDeadNodeReclaimTime).
	DeadNodeReclaimTime time.Duration
	// RejoinInterval is how often peers that are not members are joined
	// again (DefaultRejoinInterval).
	RejoinInterval time.Duration
	// LeaveTimeout bounds the graceful leave (DefaultLeaveTimeout).
	LeaveTimeout time.Duration
}

// withDefaults returns o with every zero value replaced by its default.
func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	def(&o.ProbeInterval, DefaultProbeInterval)
	def(&o.ProbeTimeout, DefaultProbeTimeout)
	defInt(&o.SuspicionMult, DefaultSuspicionMult)
	defInt(&o.SuspicionMaxTimeoutMult, DefaultSuspicionMaxTimeoutMult)
	def(&o.GossipInterval, DefaultGossipInterval)
	defInt(&o.GossipNodes, DefaultGossipNodes)
	defInt(&o.IndirectChecks, DefaultIndirectChecks)
	def(&o.TCPTimeout, DefaultTCPTimeout)
	defInt(&o.RetransmitMult, DefaultRetransmitMult)
	def(&o.PushPullInterval, DefaultPushPullInterval)
	def(&o.DeadNodeReclaimTime, DefaultDeadNodeReclaimTime)
	def(&o.RejoinInterval, DefaultRejoinInterval)
	def(&o.LeaveTimeout, DefaultLeaveTimeout)
	return o
}

// Members is this speaker's view of which speakers are alive, kept by a
// memberlist gossip failure detector. It is safe for concurrent use.
type Members struct {
	opts Options
	log  logr.Logger

	// changed wakes the notifier when the live set changed; wake wakes the
	// joiner when the peers or the members changed. Both hold at most one
	// pending signal.
	changed chan struct{}
	wake    chan struct{}

	mu      sync.Mutex
	running bool
	live    map[string]netip.AddrPort // the live members' addresses; nil unless Run is running
	peers   []netip.AddrPort
	// peersSet is whether SetPeers was called; settled whether Run has
	// since tried to join every peer it gave, after which Live and Notify
	// report the live set.
	peersSet, settled bool
}

// New returns Members for opts. It checks nothing and starts nothing: Run
// does.
func New(opts Options) *Members {
	opts = opts.withDefaults()
	opts.SecretKey = bytes.Clone(opts.SecretKey)
	return &Members{
		opts:    opts,
		log:     opts.Log,
		changed: make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
	}
}

// SetPeers sets the addresses of the other speakers, as the API server knows
// them (the other Nodes' addresses, port included). Run joins those that are
// not members, at once and then every RejoinInterval while any is missing;
// that also heals a partition once it ends. This member's own address is
// ignored. SetPeers may be called at any time, before Run too.
func (m *Members) SetPeers(addrs []netip.AddrPort) {
	peers := make([]netip.AddrPort, 0, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			peers = append(peers, netip.AddrPortFrom(a.Addr().Unmap(), a.Port()))
		}
	}
	m.mu.Lock()
	m.peers = peers
	m.peersSet = true
	m.mu.Unlock()
	poke(m.wake)
}

// Live returns the names of the live members, this one included: those
// alive or suspected, not those dead or left. It returns nil unless Run is
// running and has tried to join every peer SetPeers first gave, which
// callers take as "no failure detector": a speaker that has just started
// and met nobody yet must not believe itself alone.
func (m *Members) Live() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.live == nil || !m.settled {
		return nil
	}
	live := make(map[string]bool, len(m.live))
	for name := range m.live {
		live[name] = true
	}
	return live
}

// Run joins this speaker to the others and keeps the live set until ctx is
// done; then it leaves gracefully, so that the others drop this member at
// once instead of detecting its death, and returns. It returns an error
// only when the options are wrong or memberlist cannot start.
func (m *Members) Run(ctx context.Context) error {
	conf, err := m.config()
	if err != nil {
		return err
	}
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("members: already running")
	}
	m.running = true
	m.live = map[string]netip.AddrPort{}
	m.settled = false
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.running = false
		m.live = nil
		m.mu.Unlock()
	}()

	ml, err := memberlist.Create(conf)
	if err != nil {
		return fmt.Errorf("members: start memberlist on %s: %w", m.self(), err)
	}
	m.log.Info("gossiping", "node", m.opts.NodeName, "address", m.self(), "encrypted", m.opts.SecretKey != nil)

	var notifier, joiner sync.WaitGroup
	notifier.Go(func() { m.notify(ctx) })
	joiner.Go(func() { m.rejoin(ctx, ml) })
	<-ctx.Done()

	// No Notify from here on: this member's own leave is not news to the
	// speaker, which keeps announcing until it stops its announcer.
	notifier.Wait()
	start := time.Now()
	if err := ml.Leave(m.opts.LeaveTimeout); err != nil {
		m.log.Info("leave not confirmed; shutting down anyway", "error", err.Error())
	} else {
		m.log.Info("left", "after", time.Since(start))
	}
	if err := ml.Shutdown(); err != nil {
		m.log.Error(err, "shut down memberlist")
	}
	joiner.Wait()
	return nil
}

// self is this member's gossip address.
func (m *Members) self() netip.AddrPort {
	return netip.AddrPortFrom(m.opts.BindAddr.Unmap(), m.opts.Port)
}

// config checks the options and turns them into memberlist's configuration.
func (m *Members) config() (*memberlist.Config, error) {
	o := m.opts
	if o.NodeName == "" {
		return nil, errors.New("members: no node name")
	}
	if !o.BindAddr.IsValid() || o.BindAddr.IsUnspecified() {
		return nil, fmt.Errorf("members: bind address %q is not a node address", o.BindAddr)
	}
	if err := checkKey(o.SecretKey); err != nil {
		return nil, err
	}
	c := memberlist.DefaultLANConfig()
	c.Name = o.NodeName
	addr := o.BindAddr.Unmap().String()
	c.BindAddr, c.AdvertiseAddr = addr, addr
	c.BindPort, c.AdvertisePort = int(o.Port), int(o.Port)
	c.Label = label
	c.SecretKey = bytes.Clone(o.SecretKey)
	c.ProbeInterval = o.ProbeInterval
	c.ProbeTimeout = o.ProbeTimeout
	c.SuspicionMult = o.SuspicionMult
	c.SuspicionMaxTimeoutMult = o.SuspicionMaxTimeoutMult
	c.GossipInterval = o.GossipInterval
	c.GossipNodes = o.GossipNodes
	c.IndirectChecks = o.IndirectChecks
	c.TCPTimeout = o.TCPTimeout
	c.RetransmitMult = o.RetransmitMult
	c.PushPullInterval = o.PushPullInterval
	c.DeadNodeReclaimTime = o.DeadNodeReclaimTime
	c.Events = events{m}
	c.Logger = log.New(logWriter{m.log.WithName("memberlist")}, "", 0)
	return c, nil
}

// checkKey reports whether key is usable as an AES key, or nil.
func checkKey(key []byte) error {
	if key == nil {
		return nil
	}
	switch len(key) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("members: secret key is %d bytes long; it must be 16, 24 or 32 bytes (AES-128, AES-192 or AES-256)", len(key))
}

// set records that member n is live, at its address, or not, and wakes the
// notifier and the joiner. memberlist calls it with its locks held: it must
// neither block nor call back into memberlist. It copies what it needs: the
// Node changes under memberlist's lock later.
func (m *Members) set(n *memberlist.Node, live bool) {
	addr, _ := netip.AddrFromSlice(n.Addr)
	ap := netip.AddrPortFrom(addr.Unmap(), n.Port)
	m.mu.Lock()
	if m.live == nil {
		m.mu.Unlock()
		return
	}
	if live {
		m.live[n.Name] = ap
	} else {
		delete(m.live, n.Name)
	}
	m.mu.Unlock()
	poke(m.changed)
	poke(m.wake)
}

// notify calls Notify with the live set each time it changed, until ctx is
// done.
func (m *Members) notify(ctx context.Context) {
	var last map[string]bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.changed:
		}
		if ctx.Err() != nil {
			return
		}
		live := m.Live()
		if maps.Equal(live, last) {
			continue
		}
		m.log.Info("live members changed", "members", len(live), "joined", sorted(minus(live, last)), "gone", sorted(minus(last, live)))
		last = live
		if m.opts.Notify != nil {
			m.opts.Notify(maps.Clone(live))
		}
	}
}

// rejoin joins the peers that are not members whenever the peers or the
// members change, and every RejoinInterval while some are missing, until ctx
// is done.
func (m *Members) rejoin(ctx context.Context, ml *memberlist.Memberlist) {
	ticker := time.NewTicker(m.opts.RejoinInterval)
	defer ticker.Stop()
	failed := map[netip.AddrPort]string{} // the last error joining each peer
	for {
		var tick <-chan time.Time
		if missing := m.missing(); len(missing) > 0 {
			m.join(ml, missing, failed)
			if len(m.missing()) > 0 {
				tick = ticker.C
			}
		}
		m.settle()
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-tick:
		}
	}
}

// settle lets Live and Notify report the live set once the peers are
// known and the first attempt to join them is over.
func (m *Members) settle() {
	m.mu.Lock()
	done := m.settled || !m.peersSet
	m.settled = m.peersSet
	n := len(m.live)
	m.mu.Unlock()
	if done {
		return
	}
	m.log.Info("joined the peers the API server names", "members", n)
	poke(m.changed)
}

// missing returns the peers that are not live members. It reads the
// addresses the member events gave, not memberlist.Members: memberlist
// updates those Nodes in place.
func (m *Members) missing() []netip.AddrPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	have := map[netip.AddrPort]bool{m.self(): true}
	for _, a := range m.live {
		have[a] = true
	}
	var missing []netip.AddrPort
	for _, p := range m.peers {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	return missing
}

// join joins the peers, each on its own so that an unreachable one does not
// hold up the others. It logs a peer's failure when it differs from the
// last one, in failed, and its recovery.
func (m *Members) join(ml *memberlist.Memberlist, peers []netip.AddrPort, failed map[netip.AddrPort]string) {
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			_, errs[i] = ml.Join([]string{p.String()})
		})
	}
	wg.Wait()
	for i, p := range peers {
		switch err := errs[i]; {
		case err == nil:
			if _, ok := failed[p]; ok {
				m.log.Info("joined peer", "peer", p)
				delete(failed, p)
			} else {
				m.log.V(1).Info("joined peer", "peer", p)
			}
		case failed[p] != err.Error():
			m.log.Info("cannot join peer; retrying", "peer", p, "error", err.Error(), "every", m.opts.RejoinInterval)
			failed[p] = err.Error()
		default:
			m.log.V(1).Info("cannot join peer; retrying", "peer", p, "error", err.Error())
		}
	}
}

// events turns memberlist's member events into the live set.
type events struct{ m *Members }

// NotifyJoin records a member that joined or came back.
func (e events) NotifyJoin(n *memberlist.Node) { e.m.set(n, true) }

// NotifyLeave records a member that died or left.
func (e events) NotifyLeave(n *memberlist.Node) { e.m.set(n, false) }

// NotifyUpdate records a live member whose metadata changed.
func (e events) NotifyUpdate(n *memberlist.Node) { e.m.set(n, true) }

// logWriter passes memberlist's log lines ("[WARN] memberlist: ...") to a
// logr.Logger at a level that follows theirs.
type logWriter struct{ log logr.Logger }

// Write logs one line.
func (w logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level, msg := "", line
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if l, r, ok := strings.Cut(rest, "]"); ok {
			level, msg = l, strings.TrimSpace(r)
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	switch level {
	case "ERR", "ERROR", "WARN":
		w.log.Info(msg, "severity", level)
	case "INFO":
		w.log.V(1).Info(msg)
	default:
		w.log.V(2).Info(msg)
	}
	return len(p), nil
}

// poke leaves a pending signal on ch unless one is there.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// minus returns the names in a and not in b.
func minus(a, b map[string]bool) map[string]bool {
	d := map[string]bool{}
	for k := range a {
		if !b[k] {
			d[k] = true
		}
	}
	return d
}

// sorted returns the names in set, sorted.
func sorted(set map[string]bool) []string {
	return slices.Sorted(maps.Keys(set))
}
