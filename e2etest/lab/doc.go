// Package lab brings up a small data center on one Linux machine, in
// network namespaces, so that ironlb's real programs can be tested end to
// end as they run in production.
//
// A lab holds:
//
//   - a control plane: etcd and kube-apiserver from bin/k8s/<version>,
//     started by hand, reachable on a link-local management network
//     (169.254.K.0/24) that joins the root namespace to every node; the root
//     namespace never gets an address or a route for the lab's ranges;
//   - nodes: N namespaces (default 3) on one bridge, each with an IPv4 and an
//     IPv6 address on the segment, registered as a Ready Node object, able
//     to run the real speaker;
//   - pod stand-ins: small HTTP servers, one per "pod", listening in a node's
//     namespace on a pod address and answering with their node's name, and
//     EndpointSlices for the Services that select them;
//   - a kube-proxy stand-in: nftables DNAT in each node namespace from the
//     Services' external IPs to their endpoints (local ones only for
//     externalTrafficPolicy Local; echo requests to the first one, so the
//     external IPs answer ping), kept in sync with the API;
//   - clients: one on the segment (layer 2) and one behind the FRR router
//     (routed);
//   - routers: real FRR (zebra and bgpd) and BIRD 2 on the segment, with a
//     neighbour per node;
//   - scenario helpers: apply YAML, wait for a Service IP, ping and curl from
//     a client, kill or freeze a node, restart the controller or a speaker,
//     and event times read from `ip monitor`.
//
// Addressing (see Plan): the node segment is 198.51.100.0/24 and
// 2001:db8:1::/64 (FRR .1, BIRD .2, node i .1i, the layer-2 client .100);
// pods live in 203.0.113.192/26 and 2001:db8:2:i::/64; the routed client in
// 203.0.113.128/28 and 2001:db8:200::/64; Service cluster IPs in
// 198.51.100.128/26 and 2001:db8:ffff::/108. The samples' pools
// (198.51.100.200-249, 2001:db8:1::1:0/112, 203.0.113.0/25,
// 2001:db8:100::/120) are left free for ironlb. No namespace has a default
// route.
//
// Every lab has an ID; its namespaces are named ilb-<ID>-<role>, its one
// root link ilb-<ID>, and its files live in a private directory
// $TMPDIR/ironlb-lab-<ID> (certificates, kubeconfigs, logs, etcd's data).
// Close removes all of it, and every process the lab starts dies with the
// process that started it. Clean removes what a crashed run left behind.
//
// Tests get a lab with New, which skips when root or a tool is missing
// (or fails when IRONLB_REQUIRE_E2E=1) and tears the lab down when the test
// ends. Programs use Start and Close, or Attach to a lab another process
// runs.
package lab
