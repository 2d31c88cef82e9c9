package allocator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/config"
)

func TestPoolChoice(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name: "priority first, then name, never map order",
			cfg: configOf(
				newPool("b", "10.0.2.0/30"),
				newPool("a", "10.0.1.0/30"),
				poolWith(newPool("z", "10.0.3.0/30"), priority(1)),
				poolWith(newPool("y", "10.0.4.0/30"), priority(2)),
			),
			steps: []step{
				allocateFrom("z", svc("ns/s1"), "10.0.3.0"),
				allocateFrom("z", svc("ns/s2"), "10.0.3.1"),
				allocateFrom("z", svc("ns/s3"), "10.0.3.2"),
				allocateFrom("z", svc("ns/s4"), "10.0.3.3"),
				allocateFrom("y", svc("ns/s5"), "10.0.4.0"),
				allocate(svc("ns/s6"), "10.0.4.1"),
				allocate(svc("ns/s7"), "10.0.4.2"),
				allocate(svc("ns/s8"), "10.0.4.3"),
				allocateFrom("a", svc("ns/s9"), "10.0.1.0"),
			},
		},
		{
			name: "same key gets the same address again",
			cfg:  configOf(newPool("lan", "10.0.0.0/29")),
			steps: []step{
				allocate(svc("ns/a"), "10.0.0.0"),
				allocate(svc("ns/b"), "10.0.0.1"),
				allocate(svc("ns/a"), "10.0.0.0"),
				allocate(svc("ns/a", sharing("k", "TCP/80")), "10.0.0.0"),
				release("ns/b"),
				allocate(svc("ns/a"), "10.0.0.0"),
				holds("ns/b"),
			},
		},
		{
			name: "exhausted exactly at size, and a release frees one",
			cfg:  configOf(newPool("small", "10.0.0.0/30")),
			steps: []step{
				allocate(svc("ns/a"), "10.0.0.0"),
				allocate(svc("ns/b"), "10.0.0.1"),
				allocate(svc("ns/c"), "10.0.0.2"),
				status("small", 3, 1, 0, 0),
				allocate(svc("ns/d"), "10.0.0.3"),
				status("small", 4, 0, 0, 0),
				refuse(svc("ns/e"), PoolExhausted),
				release("ns/b"),
				status("small", 3, 1, 0, 0),
				allocate(svc("ns/e"), "10.0.0.1"),
				refuse(svc("ns/f"), PoolExhausted),
				release("ns/a"),
				release("ns/c"),
				// Released addresses are handed out first, oldest first.
				allocate(svc("ns/g"), "10.0.0.0"),
				allocate(svc("ns/h"), "10.0.0.2"),
				refuse(svc("ns/i"), PoolExhausted),
			},
		},
		{
			name: "released addresses are used before the cursor moves on",
			cfg:  configOf(newPool("lan", "10.0.0.0/24")),
			steps: []step{
				allocate(svc("ns/a"), "10.0.0.0"),
				allocate(svc("ns/b"), "10.0.0.1"),
				release("ns/a"),
				allocate(svc("ns/c"), "10.0.0.0"),
				allocate(svc("ns/d"), "10.0.0.2"),
			},
		},
		{
			name: "several ranges are used in address order",
			cfg:  configOf(newPool("lan", "10.0.0.8/31", "10.0.0.1", "2001:db8::/127")),
			steps: []step{
				allocate(svc("ns/a"), "10.0.0.1"),
				allocate(svc("ns/b"), "10.0.0.8"),
				allocate(svc("ns/c"), "10.0.0.9"),
				refuse(svc("ns/d"), PoolExhausted),
				allocate(svc("ns/e", v6Only), "2001:db8::"),
			},
		},
		{
			name: "avoidBuggyIPs skips .0 and .255 and counts them out",
			cfg: configOf(
				poolWith(newPool("edge", "10.0.0.254-10.0.1.1"), avoidBuggy, priority(1)),
				newPool("plain", "10.1.0.255-10.1.1.0"),
			),
			steps: []step{
				status("edge", 0, 2, 0, 0),
				allocate(svc("ns/a"), "10.0.0.254"),
				allocate(svc("ns/b"), "10.0.1.1"),
				status("edge", 2, 0, 0, 0),
				allocateFrom("plain", svc("ns/c"), "10.1.0.255"),
				allocateFrom("plain", svc("ns/d"), "10.1.1.0"),
				refuse(svc("ns/e"), PoolExhausted),
				refuse(svc("ns/f", wantIPs("10.0.0.255")), InvalidRequest),
				refuse(svc("ns/f", fromPool("edge")), PoolExhausted),
			},
		},
		{
			name: "autoAssign false: only when asked for by name or address",
			cfg: configOf(
				poolWith(newPool("manual", "10.0.9.0/30"), manual, priority(1)),
				newPool("auto", "10.0.1.0/31"),
			),
			steps: []step{
				allocateFrom("auto", svc("ns/a"), "10.0.1.0"),
				allocateFrom("manual", svc("ns/b", fromPool("manual")), "10.0.9.0"),
				allocateFrom("manual", svc("ns/c", wantIPs("10.0.9.3")), "10.0.9.3"),
				allocateFrom("auto", svc("ns/d"), "10.0.1.1"),
				refuse(svc("ns/e"), PoolExhausted),
				// A key keeps its address from a manual pool when it stops
				// naming the pool.
				allocateFrom("manual", svc("ns/b"), "10.0.9.0"),
				setConfig(configOf(poolWith(newPool("manual", "10.0.9.0/30"), manual)), "ns/a", "ns/d"),
				refuse(svc("ns/f"), NoMatchingPool),
				allocate(svc("ns/f", fromPool("manual")), "10.0.9.1"),
			},
		},
		{
			name: "serviceAllocation: namespaces, namespace and Service selectors",
			cfg: configOf(
				poolWith(newPool("team-a", "10.0.1.0/30"), forNamespaces("a"), priority(1)),
				poolWith(newPool("blue", "10.0.2.0/30"), forNamespaceLabels("team=blue"), priority(2)),
				poolWith(newPool("web", "10.0.3.0/30"), forServiceLabels("app=web"), priority(3)),
				poolWith(newPool("a-web", "10.0.5.0/30"), forNamespaces("a"), forServiceLabels("app=web"), priority(1)),
				newPool("rest", "10.0.4.0/30"),
			),
			steps: []step{
				allocateFrom("team-a", svc("a/s1"), "10.0.1.0"),
				allocateFrom("a-web", svc("a/s2", serviceLabels("app", "web")), "10.0.5.0"),
				allocateFrom("blue", svc("b/s1", namespaceLabels("team", "blue")), "10.0.2.0"),
				allocateFrom("web", svc("c/s1", serviceLabels("app", "web")), "10.0.3.0"),
				allocateFrom("rest", svc("c/s2"), "10.0.4.0"),
				refuse(svc("b/s2", fromPool("team-a")), NoMatchingPool),
				refuse(svc("b/s3", wantIPs("10.0.1.1")), NoMatchingPool),
				allocateFrom("team-a", svc("a/s3", wantIPs("10.0.1.3")), "10.0.1.3"),
			},
		},
		{
			name: "no pool serves the Service",
			cfg:  configOf(poolWith(newPool("team-a", "10.0.1.0/30"), forNamespaces("a"))),
			steps: []step{
				refuse(svc("b/s1"), NoMatchingPool),
				allocate(svc("a/s1"), "10.0.1.0"),
			},
		},
		{
			name:  "no pools at all",
			cfg:   nil,
			steps: []step{refuse(svc("ns/a"), NoMatchingPool)},
		},
		{
			name: "invalid requests",
			cfg:  configOf(newPool("lan", "10.0.0.0/29")),
			steps: []step{
				refuse(svc(""), InvalidRequest),
				refuse(svc("ns/a", stack(SingleStack)), InvalidRequest),
				refuse(svc("ns/a", stack("Both", config.IPv4)), InvalidRequest),
				refuse(svc("ns/a", stack(PreferDualStack, config.IPv4, config.IPv4)), InvalidRequest),
				refuse(svc("ns/a", stack(PreferDualStack, config.IPv4, config.Family(5))), InvalidRequest),
				refuse(svc("ns/a", wantIPs("::ffff:10.0.0.1")), InvalidRequest),
				refuse(svc("ns/a", func(r *Request) { r.IPs = []netip.Addr{{}} }), InvalidRequest),
				refuse(svc("ns/a", func(r *Request) { r.IPs = []netip.Addr{netip.MustParseAddr("fe80::1%eth0")} }), InvalidRequest),
				// The empty policy is SingleStack.
				allocate(svc("ns/a", stack("", config.IPv4, config.IPv6)), "10.0.0.0"),
			},
		},
	})
}

func TestRequestedAddresses(t *testing.T) {
	cfg := configOf(
		newPool("lan", "10.0.0.0/29"),
		newPool("wan", "192.0.2.0/29", "2001:db8::/125"),
	)
	runScenarios(t, []scenario{
		{
			name: "requests are honoured or refused, never replaced",
			cfg:  cfg,
			steps: []step{
				allocateFrom("lan", svc("ns/x", wantIPs("10.0.0.5")), "10.0.0.5"),
				refuse(svc("ns/y", wantIPs("10.0.0.5")), RequestedIPInUse),
				refuse(svc("ns/z", wantIPs("203.0.113.1")), NoMatchingPool),
				refuse(svc("ns/z", wantIPs("2001:db8::1")), InvalidRequest),
				refuse(svc("ns/z", fromPool("wan"), wantIPs("10.0.0.6")), InvalidRequest),
				refuse(svc("ns/z", preferDual, wantIPs("10.0.0.6", "2001:db8::1")), InvalidRequest),
				refuse(svc("ns/z", wantIPs("10.0.0.1", "10.0.0.2")), InvalidRequest),
				refuse(svc("ns/z", requireDual, wantIPs("192.0.2.2")), InvalidRequest),
				refuse(svc("ns/z", fromPool("nope")), NoMatchingPool),
				refuse(svc("ns/z", fromPool("nope"), wantIPs("10.0.0.1")), NoMatchingPool),
				allocateFrom("wan", svc("ns/z", preferDual, wantIPs("2001:db8::1", "192.0.2.1")), "192.0.2.1", "2001:db8::1"),
				allocateFrom("wan", svc("ns/w", preferDual, wantIPs("192.0.2.2")), "192.0.2.2"),
				allocateFrom("wan", svc("ns/v", fromPool("wan"), wantIPs("192.0.2.3")), "192.0.2.3"),
				// Changing the request moves the key and frees the old
				// address.
				allocate(svc("ns/x", wantIPs("10.0.0.6")), "10.0.0.6"),
				allocate(svc("ns/y", wantIPs("10.0.0.5")), "10.0.0.5"),
				// Asking for nothing keeps what the key holds.
				allocate(svc("ns/y"), "10.0.0.5"),
				// Addresses asked for are never handed out to others.
				allocate(svc("ns/a"), "10.0.0.0"),
				allocate(svc("ns/b"), "10.0.0.1"),
				allocate(svc("ns/c"), "10.0.0.2"),
				allocate(svc("ns/d"), "10.0.0.3"),
				allocate(svc("ns/e"), "10.0.0.4"),
				allocate(svc("ns/f"), "10.0.0.7"),
				allocateFrom("wan", svc("ns/g"), "192.0.2.0"),
				refuse(svc("ns/h", fromPool("lan")), PoolExhausted),
			},
		},
		{
			name: "a refused request lets go of the old address",
			cfg:  cfg,
			steps: []step{
				allocate(svc("ns/x"), "10.0.0.0"),
				allocate(svc("ns/y", wantIPs("10.0.0.1")), "10.0.0.1"),
				refuse(svc("ns/x", wantIPs("10.0.0.1")), RequestedIPInUse),
				holds("ns/x"),
				status("lan", 1, 7, 0, 0),
			},
		},
	})
}

func TestSharing(t *testing.T) {
	lan := configOf(newPool("lan", "10.0.0.0/29"))
	runScenarios(t, []scenario{
		{
			name: "ports and protocols",
			cfg:  lan,
			steps: []step{
				allocate(svc("a/web", sharing("k", "TCP/80")), "10.0.0.0"),
				status("lan", 1, 7, 0, 0),
				// A Service with a sharing key joins a partner first.
				allocate(svc("a/dns", sharing("k", "UDP/53")), "10.0.0.0"),
				status("lan", 1, 7, 0, 0),
				// Same port and protocol: not with web.
				allocate(svc("a/web2", sharing("k", "TCP/80")), "10.0.0.1"),
				refuse(svc("a/web3", sharing("k", "TCP/80"), wantIPs("10.0.0.0")), RequestedIPInUse),
				// Same port, another protocol: the lowest compatible partner.
				allocate(svc("a/quic", sharing("k", "UDP/80")), "10.0.0.0"),
				// Ports without a protocol are TCP.
				allocate(svc("a/tcp", sharing("k", "/443")), "10.0.0.0"),
				refuse(svc("a/tls", sharing("k", "TCP/443"), wantIPs("10.0.0.0")), RequestedIPInUse),
				// Another key, or none: a new address.
				allocate(svc("a/other", sharing("j", "TCP/443")), "10.0.0.2"),
				refuse(svc("a/nokey", wantIPs("10.0.0.0")), RequestedIPInUse),
				refuse(svc("a/other2", sharing("j2", "TCP/8080"), wantIPs("10.0.0.2")), RequestedIPInUse),
				// A partner's address asked for by name.
				allocate(svc("a/asks", sharing("j", "TCP/8443"), wantIPs("10.0.0.2")), "10.0.0.2"),
				status("lan", 3, 5, 0, 0),
				// Partners leave; the others keep the address.
				release("a/web"),
				holds("a/dns", "10.0.0.0"),
				holds("a/quic", "10.0.0.0"),
				allocate(svc("a/dns", sharing("k", "UDP/53")), "10.0.0.0"),
				release("a/dns"),
				release("a/quic"),
				release("a/tcp"),
				status("lan", 2, 6, 0, 0),
				allocate(svc("a/new"), "10.0.0.0"),
			},
		},
		{
			name: "externalTrafficPolicy Local",
			cfg:  lan,
			steps: []step{
				allocate(svc("a/l1", sharing("k", "TCP/80"), local("pods-1")), "10.0.0.0"),
				allocate(svc("a/l2", sharing("k", "TCP/81"), local("pods-1")), "10.0.0.0"),
				allocate(svc("a/l3", sharing("k", "TCP/82"), local("pods-2")), "10.0.0.1"),
				allocate(svc("a/c1", sharing("k", "TCP/83")), "10.0.0.2"),
				allocate(svc("a/c2", sharing("k", "TCP/84")), "10.0.0.2"),
				refuse(svc("a/l4", sharing("k", "TCP/85"), local("pods-2"), wantIPs("10.0.0.0")), RequestedIPInUse),
				refuse(svc("a/c3", sharing("k", "TCP/85"), wantIPs("10.0.0.1")), RequestedIPInUse),
				allocate(svc("a/l4", sharing("k", "TCP/85"), local("pods-2")), "10.0.0.1"),
			},
		},
		{
			name: "a partner in a pool the Service may not use",
			cfg: configOf(
				poolWith(newPool("a-only", "10.0.1.0/30"), forNamespaces("a"), priority(1)),
				poolWith(newPool("all", "10.0.2.0/30"), priority(2)),
			),
			steps: []step{
				allocate(svc("a/x", sharing("k", "TCP/80")), "10.0.1.0"),
				allocate(svc("b/y", sharing("k", "TCP/81")), "10.0.2.0"),
				allocate(svc("a/z", sharing("k", "TCP/82")), "10.0.1.0"),
			},
		},
		{
			name: "a partner's address before a new one from a pool of higher priority",
			cfg: configOf(
				poolWith(newPool("first", "10.0.1.0/30", "2001:db8:1::/126"), priority(1)),
				poolWith(newPool("second", "10.0.2.0/30"), priority(2)),
			),
			steps: []step{
				allocateFrom("second", svc("a/x", fromPool("second"), sharing("k", "TCP/80")), "10.0.2.0"),
				allocateFrom("second", svc("a/y", sharing("k", "TCP/81")), "10.0.2.0"),
				allocateFrom("first", svc("a/z", sharing("j", "TCP/81")), "10.0.1.0"),
				allocateFrom("first", svc("a/w"), "10.0.1.1"),
				// Both families beat sharing one.
				allocateFrom("first", svc("a/d", preferDual, sharing("k", "TCP/82")), "10.0.1.2", "2001:db8:1::"),
				// Sharing both beats sharing one.
				allocateFrom("first", svc("a/e", preferDual, sharing("k", "TCP/83")), "10.0.1.2", "2001:db8:1::"),
				// Sharing as much: pool order.
				allocateFrom("first", svc("a/f", sharing("k", "TCP/84")), "10.0.1.2"),
			},
		},
		{
			name: "a partner's address in a full pool",
			cfg:  configOf(newPool("one", "10.0.0.1")),
			steps: []step{
				allocate(svc("a/x", sharing("k", "TCP/80")), "10.0.0.1"),
				status("one", 1, 0, 0, 0),
				allocate(svc("a/y", sharing("k", "TCP/81")), "10.0.0.1"),
				refuse(svc("a/z", sharing("k", "TCP/81")), PoolExhausted),
			},
		},
		{
			name: "changing the sharing key or ports",
			cfg:  lan,
			steps: []step{
				allocate(svc("a/x", sharing("k", "TCP/80")), "10.0.0.0"),
				// Alone on its address, a key may change its sharing key.
				allocate(svc("a/x", sharing("j", "TCP/80")), "10.0.0.0"),
				allocate(svc("a/y", sharing("j", "TCP/81")), "10.0.0.0"),
				allocate(svc("a/z", sharing("k", "TCP/81")), "10.0.0.1"),
				// Now clashing with x, y moves; x stays.
				allocate(svc("a/y", sharing("j", "TCP/80")), "10.0.0.2"),
				holds("a/x", "10.0.0.0"),
				// Sharing with a partner, x may not change its key.
				allocate(svc("a/w", sharing("j", "TCP/443")), "10.0.0.0"),
				allocate(svc("a/x", sharing("k", "TCP/80")), "10.0.0.1"),
				holds("a/w", "10.0.0.0"),
			},
		},
		{
			name: "dual-stack partners",
			cfg:  configOf(newPool("dual", "10.0.0.0/30", "2001:db8::/126")),
			steps: []step{
				allocate(svc("a/x", requireDual, sharing("k", "TCP/80")), "10.0.0.0", "2001:db8::"),
				allocate(svc("a/y", preferDual64, sharing("k", "TCP/81")), "2001:db8::", "10.0.0.0"),
				allocate(svc("a/v4", sharing("k", "TCP/82")), "10.0.0.0"),
				allocate(svc("a/v6", v6Only, sharing("k", "TCP/80")), "2001:db8::1"),
				allocate(svc("a/z", requireDual, sharing("k", "TCP/80")), "10.0.0.1", "2001:db8::2"),
			},
		},
	})
}

func TestDualStack(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name: "policies",
			cfg: configOf(
				poolWith(newPool("v4only", "10.0.1.0/30"), priority(1)),
				poolWith(newPool("dual", "10.0.2.0/30", "2001:db8:2::/126"), priority(2)),
				poolWith(newPool("v6only", "2001:db8:6::/126"), priority(3)),
			),
			steps: []step{
				allocateFrom("v4only", svc("ns/single4"), "10.0.1.0"),
				allocateFrom("dual", svc("ns/single6", v6Only), "2001:db8:2::"),
				// SingleStack takes the first family only.
				allocateFrom("dual", svc("ns/single64", stack(SingleStack, config.IPv6, config.IPv4)), "2001:db8:2::1"),
				// PreferDualStack prefers a pool with both families over a
				// pool of higher priority with one.
				allocateFrom("dual", svc("ns/prefer", preferDual), "10.0.2.0", "2001:db8:2::2"),
				allocateFrom("dual", svc("ns/prefer64", preferDual64), "2001:db8:2::3", "10.0.2.1"),
				// IPv6 of "dual" is full: all or nothing.
				refuse(svc("ns/require", requireDual), PoolExhausted),
				// PreferDualStack settles for its first family.
				allocateFrom("v4only", svc("ns/prefer2", preferDual), "10.0.1.1"),
				allocateFrom("v6only", svc("ns/prefer3", preferDual64), "2001:db8:6::"),
				status("dual", 2, 2, 4, 0),
			},
		},
		{
			name: "RequireDualStack needs a pool with both families",
			cfg:  configOf(newPool("v4", "10.0.1.0/30"), newPool("v6", "2001:db8::/126")),
			steps: []step{
				refuse(svc("ns/x", requireDual), NoMatchingPool),
				allocateFrom("v4", svc("ns/y", preferDual), "10.0.1.0"),
				refuse(svc("ns/z", v6Only, fromPool("v4")), NoMatchingPool),
			},
		},
		{
			name: "the second family comes later, the first stays",
			cfg:  configOf(newPool("dual", "10.0.0.0/30", "2001:db8::/127")),
			steps: []step{
				allocate(svc("ns/six1", v6Only), "2001:db8::"),
				allocate(svc("ns/six2", v6Only), "2001:db8::1"),
				allocate(svc("ns/both", preferDual), "10.0.0.0"),
				allocate(svc("ns/both", preferDual), "10.0.0.0"),
				refuse(svc("ns/req", requireDual), PoolExhausted),
				release("ns/six1"),
				allocate(svc("ns/both", preferDual), "10.0.0.0", "2001:db8::"),
				status("dual", 1, 3, 2, 0),
			},
		},
		{
			name: "the second family comes with a new range",
			cfg:  configOf(poolWith(newPool("dual", "10.0.0.0/30"), priority(1)), newPool("other", "10.1.0.0/30", "2001:db8:1::/127")),
			steps: []step{
				// No pool has both yet... "other" has: prefer it.
				allocateFrom("other", svc("ns/a", preferDual), "10.1.0.0", "2001:db8:1::"),
				setConfig(configOf(poolWith(newPool("dual", "10.0.0.0/30"), priority(1))), "ns/a"),
				holds("ns/a"),
				allocateFrom("dual", svc("ns/b", preferDual), "10.0.0.0"),
				setConfig(configOf(poolWith(newPool("dual", "10.0.0.0/30", "2001:db8::/127"), priority(1)))),
				holds("ns/b", "10.0.0.0"),
				allocate(svc("ns/b", preferDual), "10.0.0.0", "2001:db8::"),
			},
		},
		{
			name: "changing the family policy keeps what still fits",
			cfg:  configOf(newPool("dual", "10.0.0.0/30", "2001:db8::/126")),
			steps: []step{
				allocate(svc("ns/x"), "10.0.0.0"),
				allocate(svc("ns/x", requireDual), "10.0.0.0", "2001:db8::"),
				allocate(svc("ns/x", preferDual64), "2001:db8::", "10.0.0.0"),
				allocate(svc("ns/x", v6Only), "2001:db8::"),
				status("dual", 0, 4, 1, 3),
				allocate(svc("ns/x"), "10.0.0.0"),
			},
		},
		{
			name: "RequireDualStack moves when the kept pool cannot complete it",
			cfg:  configOf(poolWith(newPool("v4", "10.0.1.0/30"), priority(1)), newPool("dual", "10.0.2.0/30", "2001:db8::/126")),
			steps: []step{
				allocateFrom("v4", svc("ns/x"), "10.0.1.0"),
				allocateFrom("dual", svc("ns/x", requireDual), "10.0.2.0", "2001:db8::"),
				status("v4", 0, 4, 0, 0),
			},
		},
	})
}

func TestReload(t *testing.T) {
	lan := configOf(newPool("lan", "10.0.0.0/29"), newPool("wan", "192.0.2.0/29", "2001:db8::/125"))
	older := svc("ns/older", age(1))
	younger := svc("ns/younger", age(2))
	sameAge := svc("ns/a-same", age(2)) // Older than ns/younger by name.
	runScenarios(t, []scenario{
		{
			name: "older first",
			cfg:  lan,
			steps: []step{
				assign(older, []string{"10.0.0.5"}),
				assignRefused(younger, []string{"10.0.0.5"}, RequestedIPInUse),
				holds("ns/older", "10.0.0.5"),
				holds("ns/younger"),
				allocate(younger, "10.0.0.0"),
			},
		},
		{
			name: "younger first",
			cfg:  lan,
			steps: []step{
				assign(younger, []string{"10.0.0.5"}),
				assign(older, []string{"10.0.0.5"}, "ns/younger"),
				holds("ns/older", "10.0.0.5"),
				holds("ns/younger"),
				allocate(younger, "10.0.0.0"),
			},
		},
		{
			name: "same age: the smaller key is older",
			cfg:  lan,
			steps: []step{
				assign(younger, []string{"10.0.0.5"}),
				assign(sameAge, []string{"10.0.0.5"}, "ns/younger"),
				assignRefused(younger, []string{"10.0.0.5"}, RequestedIPInUse),
			},
		},
		{
			name: "compatible claims share",
			cfg:  lan,
			steps: []step{
				assign(svc("ns/y", age(2), sharing("k", "TCP/80")), []string{"10.0.0.5"}),
				assign(svc("ns/x", age(1), sharing("k", "UDP/53")), []string{"10.0.0.5"}),
				holds("ns/y", "10.0.0.5"),
				status("lan", 1, 7, 0, 0),
			},
		},
		{
			name: "reloaded addresses are not handed out, and stay put",
			cfg:  lan,
			steps: []step{
				assign(svc("ns/a"), []string{"10.0.0.1"}),
				assign(svc("ns/b"), []string{"10.0.0.0"}),
				// Addresses come back in the order of the families.
				{op: opAssign, req: svc("ns/c", preferDual), ips: []string{"2001:db8::", "192.0.2.3"}, want: []string{"192.0.2.3", "2001:db8::"}},
				allocate(svc("ns/d"), "10.0.0.2"),
				allocate(svc("ns/a"), "10.0.0.1"),
				allocate(svc("ns/c", preferDual), "192.0.2.3", "2001:db8::"),
				status("wan", 1, 7, 1, 7),
			},
		},
		{
			name: "a partial dual-stack claim is completed by Allocate",
			cfg:  lan,
			steps: []step{
				assign(svc("ns/c", requireDual), []string{"192.0.2.3"}),
				allocate(svc("ns/c", requireDual), "192.0.2.3", "2001:db8::"),
			},
		},
		{
			name: "claims that do not suit the request",
			cfg:  lan,
			steps: []step{
				assignRefused(svc("ns/a"), []string{"203.0.113.1"}, NoMatchingPool),
				assignRefused(svc("ns/a", wantIPs("10.0.0.1")), []string{"10.0.0.2"}, InvalidRequest),
				assignRefused(svc("ns/a"), []string{"2001:db8::1"}, InvalidRequest),
				assignRefused(svc("ns/a", fromPool("wan")), []string{"10.0.0.1"}, InvalidRequest),
				assignRefused(svc("ns/a"), nil, InvalidRequest),
				assignRefused(svc("ns/a"), []string{"::ffff:10.0.0.1"}, InvalidRequest),
				assign(svc("ns/a", wantIPs("10.0.0.1")), []string{"10.0.0.1"}),
			},
		},
	})
}

func TestReloadOrder(t *testing.T) {
	cfg := configOf(newPool("dual", "10.0.0.0/29", "2001:db8::/125"))
	// a, the oldest, claims X; b claims X and Y; c, the youngest, claims Y.
	// Whatever the order, a keeps X, b loses, c keeps Y.
	claims := []Claim{
		{Request: svc("ns/a", age(1)), IPs: addrs("10.0.0.5")},
		{Request: svc("ns/b", age(2), requireDual), IPs: addrs("10.0.0.5", "2001:db8::5")},
		{Request: svc("ns/c", age(3), v6Only), IPs: addrs("2001:db8::5")},
	}
	want := map[string][]string{"ns/a": {"10.0.0.5"}, "ns/c": {"2001:db8::5"}}
	for _, perm := range [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}} {
		t.Run(fmt.Sprint(perm), func(t *testing.T) {
			var in []Claim
			for _, i := range perm {
				in = append(in, claims[i])
			}
			a := New(cfg)
			errs, displaced := a.Reload(in)
			for i, err := range errs {
				wantErr := Reason("")
				if in[i].Request.Key == "ns/b" {
					wantErr = RequestedIPInUse
				}
				checkError(t, "Reload: "+in[i].Request.Key, err, wantErr)
			}
			if len(displaced) != 0 {
				t.Errorf("Reload displaced %v, want none", displaced)
			}
			got := map[string][]string{}
			for _, k := range []string{"ns/a", "ns/b", "ns/c"} {
				if as, ok := a.Assigned(k); ok {
					got[k] = strs(as.IPs)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("after Reload (-want +got):\n%s", diff)
			}
			if err := checkInvariants(a); err != nil {
				t.Error(err)
			}
		})
	}

	t.Run("displaces a younger key held before", func(t *testing.T) {
		a := New(cfg)
		if _, err := a.Allocate(svc("ns/young", age(5), wantIPs("10.0.0.1"))); err != nil {
			t.Fatal(err)
		}
		errs, displaced := a.Reload([]Claim{{Request: svc("ns/old", age(1)), IPs: addrs("10.0.0.1")}})
		if errs[0] != nil {
			t.Errorf("Reload: %v", errs[0])
		}
		if diff := cmp.Diff([]string{"ns/young"}, displaced); diff != "" {
			t.Errorf("displaced (-want +got):\n%s", diff)
		}
	})
}

func TestSetConfig(t *testing.T) {
	base := func() []*config.Pool {
		return []*config.Pool{
			newPool("lan", "10.0.0.0/29"),
			newPool("wan", "192.0.2.0/29", "2001:db8::/125"),
		}
	}
	with := func(extra ...*config.Pool) *config.Config { return configOf(append(base(), extra...)...) }
	setup := []step{
		allocateFrom("lan", svc("a/x"), "10.0.0.0"),
		allocateFrom("lan", svc("a/y"), "10.0.0.1"),
		allocateFrom("wan", svc("a/z", fromPool("wan")), "192.0.2.0"),
		allocateFrom("wan", svc("a/d", preferDual, fromPool("wan")), "192.0.2.1", "2001:db8::"),
	}
	steps := func(s ...step) []step { return append(slices.Clone(setup), s...) }
	runScenarios(t, []scenario{
		{
			name: "a shrinking pool affects only the keys that lost an address",
			cfg:  with(),
			steps: steps(
				setConfig(configOf(newPool("lan", "10.0.0.0/32"), base()[1]), "a/y"),
				holds("a/x", "10.0.0.0"),
				holds("a/y"),
				holds("a/z", "192.0.2.0"),
				status("lan", 1, 0, 0, 0),
				allocateFrom("wan", svc("a/y"), "192.0.2.2"),
			),
		},
		{
			name: "a dual-stack key keeps the family that stays",
			cfg:  with(),
			steps: steps(
				setConfig(configOf(base()[0], newPool("wan", "192.0.2.0/29")), "a/d"),
				holds("a/d", "192.0.2.1"),
				allocate(svc("a/d", preferDual, fromPool("wan")), "192.0.2.1"),
			),
		},
		{
			name: "an unrelated pool change moves nothing",
			cfg:  with(),
			steps: steps(
				setConfig(with(poolWith(newPool("first", "10.9.0.0/30"), priority(1)))),
				setConfig(configOf(newPool("lan", "10.0.0.0/29"), poolWith(newPool("wan", "192.0.2.0/29", "2001:db8::/125"), priority(3)))),
				setConfig(configOf(newPool("lan", "10.0.0.0/29", "10.0.1.0/24"), newPool("wan", "192.0.2.0/28", "2001:db8::/125"))),
				holds("a/x", "10.0.0.0"),
				holds("a/y", "10.0.0.1"),
				holds("a/z", "192.0.2.0"),
				holds("a/d", "192.0.2.1", "2001:db8::"),
				allocate(svc("a/x"), "10.0.0.0"),
				allocate(svc("a/y"), "10.0.0.1"),
				allocate(svc("a/z", fromPool("wan")), "192.0.2.0"),
				allocate(svc("a/d", preferDual, fromPool("wan")), "192.0.2.1", "2001:db8::"),
				status("lan", 2, 262, 0, 0),
			),
		},
		{
			name: "a pool that goes",
			cfg:  with(),
			steps: steps(
				setConfig(configOf(base()[1]), "a/x", "a/y"),
				status("wan", 2, 6, 1, 7),
				allocate(svc("a/x"), "192.0.2.2"),
			),
		},
		{
			name: "a pool that stops serving a namespace",
			cfg:  with(),
			steps: steps(
				allocate(svc("b/w", fromPool("wan")), "192.0.2.2"),
				setConfig(configOf(base()[0], poolWith(newPool("wan", "192.0.2.0/29", "2001:db8::/125"), forNamespaces("b"))), "a/d", "a/z"),
				holds("b/w", "192.0.2.2"),
				status("wan", 1, 7, 0, 8),
			),
		},
		{
			name: "a range that moves to another pool",
			cfg:  with(),
			steps: steps(
				allocate(svc("a/w"), "10.0.0.2"),
				setConfig(configOf(newPool("lan", "10.0.0.0/30"), newPool("moved", "10.0.0.4/30"), base()[1])),
				setConfig(configOf(newPool("lan", "10.0.0.0/31"), newPool("moved", "10.0.0.2/31", "10.0.0.4/30"), base()[1])),
				holds("a/w", "10.0.0.2"),
				allocateFrom("moved", svc("a/w"), "10.0.0.2"),
				status("moved", 1, 5, 0, 0),
				status("lan", 2, 0, 0, 0),
				// A key asking for dmz loses the address that leaves dmz.
				setConfig(configOf(base()[0], newPool("wan", "192.0.2.1/32", "2001:db8::/125"), newPool("old-dmz", "192.0.2.0/32")), "a/z"),
			),
		},
		{
			name: "avoidBuggyIPs turned on",
			cfg:  with(),
			steps: steps(
				setConfig(configOf(poolWith(newPool("lan", "10.0.0.0/29"), avoidBuggy), base()[1]), "a/x"),
				status("lan", 1, 6, 0, 0),
				allocate(svc("a/x"), "10.0.0.2"),
			),
		},
	})

	runScenarios(t, []scenario{
		{
			name: "released addresses survive a configuration change",
			cfg:  configOf(newPool("lan", "10.0.0.0/30")),
			steps: []step{
				allocate(svc("ns/a"), "10.0.0.0"),
				allocate(svc("ns/b"), "10.0.0.1"),
				allocate(svc("ns/c"), "10.0.0.2"),
				allocate(svc("ns/d"), "10.0.0.3"),
				release("ns/b"),
				setConfig(configOf(newPool("lan", "10.0.0.0/30"), newPool("other", "10.1.0.0/32"))),
				allocateFrom("lan", svc("ns/e", fromPool("lan")), "10.0.0.1"),
			},
		},
		{
			name: "a range that grows",
			cfg:  configOf(newPool("lan", "10.0.0.0/31")),
			steps: []step{
				allocate(svc("ns/a"), "10.0.0.0"),
				allocate(svc("ns/b"), "10.0.0.1"),
				refuse(svc("ns/c"), PoolExhausted),
				setConfig(configOf(newPool("lan", "10.0.0.0/30"))),
				allocate(svc("ns/c"), "10.0.0.2"),
				// b and c stay: their addresses are in "more", which serves
				// them, and whose new cursor skips them.
				setConfig(configOf(newPool("lan", "10.0.0.0/32"), newPool("more", "10.0.0.1-10.0.0.5"))),
				allocateFrom("more", svc("ns/b"), "10.0.0.1"),
				allocateFrom("more", svc("ns/d"), "10.0.0.3"),
			},
		},
		{
			name: "avoidBuggyIPs turned off",
			cfg:  configOf(poolWith(newPool("lan", "10.0.0.255-10.0.1.1"), avoidBuggy)),
			steps: []step{
				allocate(svc("ns/a"), "10.0.1.1"),
				refuse(svc("ns/b"), PoolExhausted),
				setConfig(configOf(newPool("lan", "10.0.0.255-10.0.1.1"))),
				allocate(svc("ns/b"), "10.0.0.255"),
				allocate(svc("ns/c"), "10.0.1.0"),
				refuse(svc("ns/d"), PoolExhausted),
			},
		},
	})
}

func TestPoolStatus(t *testing.T) {
	a := New(configOf(
		poolWith(newPool("big", "10.0.0.0/8", "2001:db8::/64"), priority(2)),
		poolWith(newPool("huge", "2001:db8:1::/48"), priority(1)),
		poolWith(newPool("careful", "11.0.0.0/8"), avoidBuggy),
	))
	for _, r := range []Request{svc("ns/a", fromPool("big")), svc("ns/b", v6Only, fromPool("big")), svc("ns/c", v6Only), svc("ns/d", fromPool("careful"))} {
		if _, err := a.Allocate(r); err != nil {
			t.Fatalf("Allocate(%s): %v", r.Key, err)
		}
	}
	want := []PoolStatus{
		{Pool: "huge", AssignedIPv6: 1, AvailableIPv6: math.MaxUint64 - 1},
		{Pool: "big", AssignedIPv4: 1, AvailableIPv4: 1<<24 - 1, AssignedIPv6: 1, AvailableIPv6: math.MaxUint64 - 1},
		{Pool: "careful", AssignedIPv4: 1, AvailableIPv4: 1<<24 - 2<<16 - 1},
	}
	if diff := cmp.Diff(want, a.PoolStatuses()); diff != "" {
		t.Errorf("PoolStatuses (-want +got):\n%s", diff)
	}
	if _, ok := a.PoolStatus("nope"); ok {
		t.Errorf("PoolStatus(nope) found a pool")
	}
	got, ok := a.Assigned("ns/d")
	if diff := cmp.Diff(Assignment{Key: "ns/d", IPs: addrs("11.0.0.1"), Pool: "careful"}, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); !ok || diff != "" {
		t.Errorf("Assigned(ns/d) (-want +got):\n%s", diff)
	}
}

func TestErrorMessages(t *testing.T) {
	cfg := configOf(
		newPool("lan", "10.0.0.0/31"),
		poolWith(newPool("edge", "192.0.2.0/30"), avoidBuggy, manual),
		poolWith(newPool("team", "198.51.100.0/30"), forNamespaces("team")),
		newPool("v6", "2001:db8::/127"),
	)
	tests := []struct {
		name  string
		setup []Request
		req   Request
		want  Error
	}{
		{
			name:  "pool exhausted",
			setup: []Request{svc("ns/a"), svc("ns/b")},
			req:   svc("ns/c"),
			want:  Error{PoolExhausted, `pool "lan" has no free IPv4 address: add addresses to it or free some`},
		},
		{
			name:  "pools exhausted",
			setup: []Request{svc("team/a"), svc("team/b"), svc("team/c"), svc("team/d"), svc("team/e"), svc("team/f")},
			req:   svc("team/g"),
			want:  Error{PoolExhausted, `pools "lan" and "team" have no free IPv4 address: add addresses to them or free some`},
		},
		{
			name:  "dual stack from a single-family pool",
			setup: []Request{svc("ns/a", v6Only), svc("ns/b", v6Only)},
			req:   svc("ns/c", requireDual, fromPool("v6")),
			want:  Error{NoMatchingPool, `no pool that serves this Service has both IPv4 and IPv6 addresses: add addresses of the missing family to pool "v6", or change the Service's IP family policy`},
		},
		{
			name: "unknown pool",
			req:  svc("ns/a", fromPool("wan")),
			want: Error{NoMatchingPool, `pool "wan" does not exist: create it, or ask for another pool`},
		},
		{
			name: "pool not serving the Service",
			req:  svc("ns/a", fromPool("team")),
			want: Error{NoMatchingPool, `pool "team" does not serve Services in namespace "ns" with these labels: change its serviceAllocation, or ask for another pool`},
		},
		{
			name: "address in no pool",
			req:  svc("ns/a", wantIPs("203.0.113.7")),
			want: Error{NoMatchingPool, `address 203.0.113.7 is in no address pool: add it to a pool, or ask for an address of one`},
		},
		{
			name: "buggy address",
			req:  svc("ns/a", wantIPs("192.0.2.0")),
			want: Error{InvalidRequest, `address 192.0.2.0 ends in .0 or .255, which pool "edge" avoids: ask for another address, or turn off the pool's avoidBuggyIPs`},
		},
		{
			name: "wrong family",
			req:  svc("ns/a", wantIPs("2001:db8::1")),
			want: Error{InvalidRequest, `address 2001:db8::1 is IPv6, but the Service uses IPv4 only: ask for addresses of its IP families`},
		},
		{
			name: "address outside the pool asked for",
			req:  svc("ns/a", fromPool("lan"), wantIPs("192.0.2.1")),
			want: Error{InvalidRequest, `address 192.0.2.1 is in pool "edge", not in pool "lan" which the Service asks for: ask for an address of pool "lan", or for pool "edge"`},
		},
		{
			name:  "address in use",
			setup: []Request{svc("ns/a", wantIPs("10.0.0.1"))},
			req:   svc("ns/b", wantIPs("10.0.0.1")),
			want:  Error{RequestedIPInUse, `address 10.0.0.1 is in use by Service ns/a: to share it, give both Services the same sharing key`},
		},
		{
			name:  "address in use on the same port",
			setup: []Request{svc("ns/a", wantIPs("10.0.0.1"), sharing("k", "TCP/80"))},
			req:   svc("ns/b", wantIPs("10.0.0.1"), sharing("k", "TCP/80", "UDP/53")),
			want:  Error{RequestedIPInUse, `address 10.0.0.1 is in use by Service ns/a: both use port TCP/80: Services sharing an address need different ports`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(cfg)
			for _, r := range tt.setup {
				if _, err := a.Allocate(r); err != nil {
					t.Fatalf("Allocate(%s): %v", r.Key, err)
				}
			}
			_, err := a.Allocate(tt.req)
			var got *Error
			if err != nil {
				got, _ = err.(*Error)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("Allocate(%s) error (-want +got):\n%s", tt.req.Key, diff)
			}
		})
	}

	t.Run("only manual pools", func(t *testing.T) {
		a := New(configOf(poolWith(newPool("edge", "192.0.2.0/30"), manual)))
		_, err := a.Allocate(svc("ns/a"))
		want := `no pool assigns addresses to this Service automatically: pool "edge" is used only by Services that ask for it or for one of its addresses; ask for it, or set its autoAssign`
		if err == nil || err.Error() != want {
			t.Errorf("Allocate: %v, want %s", err, want)
		}
	})
}

// TestWithConfigNew checks the allocator with a configuration built by
// config.New from API objects, as the controller builds it.
func TestWithConfigNew(t *testing.T) {
	const ns = "ironlb-system"
	autoAssign := false
	cfg, err := config.New(config.Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "wan", Namespace: ns}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"203.0.113.0/30"}, AutoAssign: &autoAssign}},
		{ObjectMeta: metav1.ObjectMeta{Name: "lan", Namespace: ns}, Spec: v1beta1.IPAddressPoolSpec{
			Addresses:     []string{"10.0.0.0/24", "2001:db8::/64"},
			AvoidBuggyIPs: true,
			AllocateTo:    &v1beta1.ServiceAllocation{Priority: 5, Namespaces: []string{"web"}},
		}},
		{ObjectMeta: metav1.ObjectMeta{Name: "rest", Namespace: ns}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"10.1.0.0/30"}}},
	}})
	if err != nil {
		t.Fatalf("config.New: %v", err)
	}
	runScenarios(t, []scenario{{
		name: "config.New",
		cfg:  cfg,
		steps: []step{
			allocateFrom("lan", svc("web/a", preferDual), "10.0.0.1", "2001:db8::"),
			allocateFrom("rest", svc("db/a"), "10.1.0.0"),
			allocateFrom("wan", svc("db/b", fromPool("wan")), "203.0.113.0"),
			status("lan", 1, 253, 1, math.MaxUint64-1),
		},
	}})
}

// TestCursorFollowsReload checks that addresses claimed on start in any
// order move the cursor along, so that the first allocation after a
// restart does not walk over every address held.
func TestCursorFollowsReload(t *testing.T) {
	a := New(configOf(newPool("lan", "10.0.0.0/16")))
	var claims []Claim
	ip := netip.MustParseAddr("10.0.0.0")
	for i := range 1000 {
		claims = append(claims, Claim{Request: svc(fmt.Sprintf("ns/s%d", i)), IPs: []netip.Addr{ip}})
		ip = ip.Next()
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(claims), func(i, j int) { claims[i], claims[j] = claims[j], claims[i] })
	for _, c := range claims {
		if _, _, err := a.Assign(c.Request, c.IPs); err != nil {
			t.Fatal(err)
		}
	}
	s := a.byName["lan"].family(config.IPv4).spans[0]
	if want := netip.MustParseAddr("10.0.3.232"); s.next != want {
		t.Errorf("cursor at %s after reload, want %s", s.next, want)
	}
	got, err := a.Allocate(svc("ns/new"))
	if err != nil || got.IPs[0] != netip.MustParseAddr("10.0.3.232") {
		t.Errorf("Allocate = %v, %v; want 10.0.3.232", got.IPs, err)
	}
}

func TestConcurrent(t *testing.T) {
	a := New(configOf(newPool("lan", "10.0.0.0/20", "2001:db8::/116")))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				key := fmt.Sprintf("ns/g%d-%d", g, i%20)
				switch i % 3 {
				case 0, 1:
					if _, err := a.Allocate(svc(key, preferDual, sharing("k", fmt.Sprintf("TCP/%d", g)))); err != nil {
						t.Errorf("Allocate(%s): %v", key, err)
					}
				default:
					a.Release(key)
				}
				a.PoolStatuses()
			}
		})
	}
	wg.Wait()
	if err := checkInvariants(a); err != nil {
		t.Error(err)
	}
}
