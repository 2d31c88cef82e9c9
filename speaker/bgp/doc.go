// Package bgp decides what a speaker advertises over BGP, and applies it.
//
// It has three layers, like the rest of ironlb:
//
//   - Compute, a pure function, turns the configuration (config.Config),
//     this node's labels and the Services this node may advertise into the
//     desired State: the sessions this node opens (one per BGPPeer whose
//     nodeSelectors select the node) and, per session, the routes it
//     advertises. A route is a Service IP as a /32 or /128, or aggregated
//     to the advertisement's aggregationLength or aggregationLengthV6, with
//     the advertisement's communities (RFC 1997 standard communities and
//     RFC 8092 large communities) and, on iBGP sessions only, its
//     LOCAL_PREF (RFC 4271 section 5.1.5). IPv4 and IPv6 routes go to every
//     selected peer whatever the family of its address: BGP carries both
//     families over one session (RFC 4760).
//   - Plan{Current, Desired}.Calculate, also pure, returns the Changes that
//     turn one State into the other: sessions to add, to delete and to
//     reset, and routes to add, update and withdraw, in a deterministic
//     order. A session whose settings did not change is left alone.
//   - A Reconciler applies Changes to a Router, the small vendor-neutral
//     interface that an embedded BGP implementation satisfies (package
//     speaker/bgp/gobgp), and remembers what it applied, so that
//     reconciling the same desired State twice changes nothing the second
//     time. FakeRouter stands in for a real Router in tests.
//
// The package is pure apart from the Reconciler's calls to its Router: it
// imports no Kubernetes client, no BGP implementation and no metrics
// library. Which Services a node may advertise (eligibility, including
// externalTrafficPolicy: Local) is decided elsewhere and given to Compute as
// plain values.
package bgp
