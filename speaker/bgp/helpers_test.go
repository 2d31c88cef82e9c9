package bgp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/config"
)

// ns is ironlb's namespace in these tests.
const ns = "ironlb-system"

// cmpOpts compare States, routes and changes: netip values and communities
// by ==, empty and nil alike.
var cmpOpts = cmp.Options{
	cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}, config.Community{}),
	cmpopts.EquateEmpty(),
}

// with returns v changed by edit.
func with[T any](v T, edit func(*T)) T {
	edit(&v)
	return v
}

func meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns}
}

func ipPool(name string, addresses ...string) v1beta1.IPAddressPool {
	return v1beta1.IPAddressPool{ObjectMeta: meta(name), Spec: v1beta1.IPAddressPoolSpec{Addresses: addresses}}
}

// bgpPeer returns a BGPPeer from AS 64512 to the router at address in AS
// asn.
func bgpPeer(name, address string, asn uint32) v1beta1.BGPPeer {
	return v1beta1.BGPPeer{ObjectMeta: meta(name), Spec: v1beta1.BGPPeerSpec{MyASN: 64512, ASN: asn, Address: address}}
}

func bgpAdv(name string, pools ...string) v1beta1.BGPAdvertisement {
	return v1beta1.BGPAdvertisement{ObjectMeta: meta(name), Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: pools}}
}

func secret(name, password string) corev1.Secret {
	return corev1.Secret{ObjectMeta: meta(name), Type: corev1.SecretTypeBasicAuth, Data: map[string][]byte{config.PasswordKey: []byte(password)}}
}

func selector(key, value string) []metav1.LabelSelector {
	return []metav1.LabelSelector{{MatchLabels: map[string]string{key: value}}}
}

func ptrTo[T any](v T) *T {
	return &v
}

// build validates r, failing the test if it is not valid.
func build(t testing.TB, r config.Resources) *config.Config {
	t.Helper()
	r.Namespace = ns
	cfg, err := config.New(r)
	if err != nil {
		t.Fatalf("config.New: %v", err)
	}
	return cfg
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func prefix(s string) netip.Prefix {
	return netip.MustParsePrefix(s)
}

func community(s string) config.Community {
	c, err := config.ParseCommunity(s)
	if err != nil {
		panic(err)
	}
	return c
}

// routesOf returns every peer's routes, sorted by prefix, by peer name:
// the shape tests compare.
func routesOf(s State) map[string][]Route {
	out := map[string][]Route{}
	for _, name := range s.PeerNames() {
		out[name] = s.SortedRoutes(name)
	}
	return out
}

// checkHolds fails the test unless router holds exactly the sessions and
// routes of want.
func checkHolds(t *testing.T, router *FakeRouter, want State) {
	t.Helper()
	got := router.State()
	if diff := cmp.Diff(want.Peers, got.Peers, cmpOpts); diff != "" {
		t.Errorf("router's peers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(routesOf(want), routesOf(got), cmpOpts); diff != "" {
		t.Errorf("router's routes (-want +got):\n%s", diff)
	}
}

// fmtAll prints v with every verb a log line might use.
func fmtAll(v any) string {
	return fmt.Sprintf("%v %+v %#v %s", v, v, v, v)
}

func containsString(s, sub string) bool {
	return strings.Contains(s, sub)
}
