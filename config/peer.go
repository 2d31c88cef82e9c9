package config

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/api/v1beta1"
)

// Defaults and limits of a BGP session.
const (
	DefaultBGPPort     = 179
	DefaultHoldTime    = 90 * time.Second
	DefaultConnectTime = 10 * time.Second
	// MinHoldTime is the shortest hold time other than 0 (RFC 4271 4.2).
	MinHoldTime = 3 * time.Second
	// MaxHoldTime is the longest hold time BGP can carry: 16 bits of
	// seconds.
	MaxHoldTime    = 65535 * time.Second
	MinConnectTime = time.Second
	MaxConnectTime = 65535 * time.Second
)

// PasswordKey is the key of a BGPPeer's passwordSecret that holds the TCP
// MD5 password.
const PasswordKey = "password"

// Password is a secret that fmt, slog, encoding/json and encoding/text
// print as "<redacted>". Convert it with string(p) only where it is used.
type Password string

// redacted is what a Password prints as.
const redacted = "<redacted>"

// String returns "<redacted>".
func (Password) String() string { return redacted }

// GoString returns "<redacted>", for %#v.
func (Password) GoString() string { return redacted }

// Format writes "<redacted>" whatever the verb, so that neither %s nor %x
// nor %d reveals the password.
func (Password) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue returns "<redacted>", for log/slog.
func (Password) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText returns "<redacted>", for encoding/json and other encoders.
func (Password) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// BGPPeer is a validated BGPPeer, with its defaults filled in: one BGP
// session that speakers open to a router.
type BGPPeer struct {
	// Name is the BGPPeer's name.
	Name string
	// MyASN is the AS number the speakers use.
	MyASN uint32
	// ASN is the router's AS number.
	ASN uint32
	// Address is the router's address.
	Address netip.Addr
	// SourceAddress is the local address the session starts from, of the
	// same family as Address; the zero Addr lets the kernel choose.
	SourceAddress netip.Addr
	// Port is the router's BGP port.
	Port uint16
	// HoldTime is the proposed hold time: 0 (no keepalives) or from
	// MinHoldTime to MaxHoldTime.
	HoldTime time.Duration
	// KeepaliveTime is the keepalive interval, shorter than a non-zero
	// HoldTime.
	KeepaliveTime time.Duration
	// ConnectTime is the time between attempts to connect.
	ConnectTime time.Duration
	// RouterID is the BGP identifier the speakers announce, an IPv4
	// address; the zero Addr means each node's own IPv4 address.
	RouterID netip.Addr
	// NodeSelectors select the nodes that open the session; none means
	// every node.
	NodeSelectors []labels.Selector
	// Password is the TCP MD5 password of the session; empty means none.
	Password Password
	// EBGPMultiHop lets an eBGP session reach a router more than one hop
	// away.
	EBGPMultiHop bool
	// GracefulRestart asks the router to keep the speaker's routes while
	// it restarts (RFC 4724).
	GracefulRestart bool
}

// SelectsNode reports whether a node with the given labels opens the
// session.
func (p *BGPPeer) SelectsNode(nodeLabels labels.Labels) bool {
	return selectsNode(p.NodeSelectors, nodeLabels)
}

// IBGP reports whether the session is internal: both ends in one AS.
func (p *BGPPeer) IBGP() bool {
	return p.MyASN == p.ASN
}

// bgpPeer validates one BGPPeer and fills in its defaults.
func (b *builder) bgpPeer(in *v1beta1.BGPPeer) *BGPPeer {
	name := in.Name
	fail := func(field, format string, args ...any) {
		b.add(errorf(KindBGPPeer, name, field, format, args...))
	}
	p := &BGPPeer{
		Name:            name,
		MyASN:           in.Spec.MyASN,
		ASN:             in.Spec.ASN,
		Port:            cmp.Or(in.Spec.Port, DefaultBGPPort),
		NodeSelectors:   b.selectors(KindBGPPeer, name, "spec.nodeSelectors", in.Spec.NodeSelectors),
		EBGPMultiHop:    in.Spec.EBGPMultiHop,
		GracefulRestart: in.Spec.EnableGracefulRestart,
	}
	if p.MyASN == 0 {
		fail("spec.myASN", "AS number 0 is reserved (RFC 7607): use the AS number of the cluster")
	}
	if p.ASN == 0 {
		fail("spec.peerASN", "AS number 0 is reserved (RFC 7607): use the AS number of the router")
	}

	var err error
	if p.Address, err = parseHostAddr(in.Spec.Address); err != nil {
		fail("spec.peerAddress", "%w", err)
	}
	if in.Spec.SrcAddress != "" {
		if p.SourceAddress, err = parseHostAddr(in.Spec.SrcAddress); err != nil {
			fail("spec.sourceAddress", "%w", err)
		} else if p.Address.IsValid() && FamilyOf(p.SourceAddress) != FamilyOf(p.Address) {
			fail("spec.sourceAddress", "source address %s is %s but the peer address %s is %s: they must be of the same family",
				p.SourceAddress, FamilyOf(p.SourceAddress), p.Address, FamilyOf(p.Address))
		}
	}
	if in.Spec.RouterID != "" {
		if p.RouterID, err = parseHostAddr(in.Spec.RouterID); err != nil {
			fail("spec.routerID", "%w", err)
		} else if !p.RouterID.Is4() {
			fail("spec.routerID", "router ID %s is not an IPv4 address: a BGP identifier is 32 bits written as IPv4, even on IPv6 sessions", p.RouterID)
			p.RouterID = netip.Addr{}
		}
	}

	p.HoldTime = duration(in.Spec.HoldTime, DefaultHoldTime)
	switch {
	case p.HoldTime < 0:
		fail("spec.holdTime", "hold time %s is negative", p.HoldTime)
	case p.HoldTime != 0 && p.HoldTime < MinHoldTime:
		fail("spec.holdTime", "hold time %s must be 0s (no keepalives) or at least %s", p.HoldTime, MinHoldTime)
	case p.HoldTime > MaxHoldTime:
		fail("spec.holdTime", "hold time %s is longer than BGP allows (%s)", p.HoldTime, MaxHoldTime)
	}
	p.KeepaliveTime = duration(in.Spec.KeepaliveTime, p.HoldTime/3)
	switch {
	case p.KeepaliveTime < 0:
		fail("spec.keepaliveTime", "keepalive time %s is negative", p.KeepaliveTime)
	case p.HoldTime > 0 && p.KeepaliveTime >= p.HoldTime:
		fail("spec.keepaliveTime", "keepalive time %s must be shorter than the hold time %s", p.KeepaliveTime, p.HoldTime)
	}
	p.ConnectTime = duration(in.Spec.ConnectTime, DefaultConnectTime)
	if p.ConnectTime < MinConnectTime || p.ConnectTime > MaxConnectTime {
		fail("spec.connectTime", "connect time %s must be from %s to %s", p.ConnectTime, MinConnectTime, MaxConnectTime)
	}

	p.Password = b.password(name, in.Spec.PasswordSecret)
	return p
}

// duration returns d's value, or def if d is nil.
func duration(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

// parseHostAddr parses the address of one host: a peer, a source address or
// a router ID.
func parseHostAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, errors.New("an address is required")
	}
	if strings.Contains(s, "%") {
		return netip.Addr{}, fmt.Errorf("address %q has a zone, which is not supported", s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address: %w", s, err)
	}
	switch {
	case a.Is4In6():
		return netip.Addr{}, fmt.Errorf("address %q is an IPv4-mapped IPv6 address: write it as %s", s, a.Unmap())
	case a.IsUnspecified():
		return netip.Addr{}, fmt.Errorf("address %s is unspecified: name one host", a)
	case a.IsMulticast():
		return netip.Addr{}, fmt.Errorf("address %s is a multicast address: name one host", a)
	}
	return a, nil
}

// password reads the password of the BGPPeer named peer from the Secret
// ref names, if it names one.
func (b *builder) password(peer string, ref corev1.SecretReference) Password {
	if ref.Name == "" && ref.Namespace == "" {
		return ""
	}
	const field = "spec.passwordSecret"
	if ref.Name == "" {
		b.add(errorf(KindBGPPeer, peer, field+".name", "passwordSecret needs the name of a Secret"))
		return ""
	}
	if ref.Namespace != "" && ref.Namespace != b.namespace {
		b.add(errorf(KindBGPPeer, peer, field+".namespace", "Secret %s/%s is not in ironlb's namespace %q: ironlb only reads Secrets in its own namespace", ref.Namespace, ref.Name, b.namespace))
		return ""
	}
	secret, ok := b.secrets[ref.Name]
	if !ok {
		b.add(errorf(KindBGPPeer, peer, field+".name", "Secret %q does not exist in namespace %q", ref.Name, b.namespace))
		return ""
	}
	value, ok := secret.Data[PasswordKey]
	if !ok {
		s, inStringData := secret.StringData[PasswordKey]
		value, ok = []byte(s), inStringData
	}
	if !ok {
		b.add(errorf(KindBGPPeer, peer, field+".name", "Secret %q has no %q key", ref.Name, PasswordKey))
		return ""
	}
	if len(value) == 0 {
		b.add(errorf(KindBGPPeer, peer, field+".name", "the %q key of Secret %q is empty", PasswordKey, ref.Name))
		return ""
	}
	return Password(value)
}

// checkDuplicatePeers reports peers that name the same router address and
// port, on each of them.
func (b *builder) checkDuplicatePeers(peers []*BGPPeer) {
	type key struct {
		addr netip.Addr
		port uint16
	}
	byKey := make(map[key][]string)
	for _, p := range peers {
		if p.Address.IsValid() {
			k := key{p.Address, p.Port}
			byKey[k] = append(byKey[k], p.Name)
		}
	}
	for _, p := range peers {
		if !p.Address.IsValid() {
			continue
		}
		others := slices.DeleteFunc(slices.Clone(byKey[key{p.Address, p.Port}]), func(n string) bool { return n == p.Name })
		if len(others) == 0 {
			continue
		}
		quoted := make([]string, len(others))
		for i, n := range others {
			quoted[i] = fmt.Sprintf("%q", n)
		}
		b.add(errorf(KindBGPPeer, p.Name, "spec.peerAddress", "%s port %d is also the peer of %s %s: each router address and port may have one BGPPeer",
			p.Address, p.Port, KindBGPPeer, strings.Join(quoted, ", ")))
	}
}
