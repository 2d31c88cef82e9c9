// Package cluster is the speaker's Kubernetes side: it reads the cluster —
// the announcement configuration, Nodes, Services that hold an ironlb
// address and their EndpointSlices — and drives what this node announces.
//
// Compute is the pure decision: for every Service, the nodes that may
// announce it (package eligibility) and, in layer-2 mode, the one that does
// (package election), and from that, what this node answers ARP and NDP for,
// on which interfaces, and which Services it may advertise over BGP. The
// Speaker watches the API server, runs Compute on every change, applies
// the result to the layer-2 Announcer, and reports it: a ServiceL2Status per
// Service this node announces, and a nodeAssigned event when a Service's
// announcing node changes.
//
// A speaker that loses the API server keeps announcing what it last knew:
// nothing is withdrawn until the cluster says so.
package cluster
