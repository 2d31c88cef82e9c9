// Package election chooses the one node that announces an IP address in
// layer-2 mode.
//
// Every speaker runs the same pure function on the same inputs — the nodes
// eligible to announce and the election key of the address — and so reaches
// the same answer without talking to the others. The function is rendezvous
// hashing (highest random weight, Thaler and Ravishankar, 1996): each node
// scores the key, and the highest score wins. A node that joins takes over
// only the keys it now scores highest on; a node that leaves gives up only
// the keys it held. Every other key stays where it is.
//
// The score is stable across Go versions, architectures and processes: it
// is the first 8 bytes, read big-endian, of SHA-256(node || 0x00 || key).
// It never depends on map order or a runtime hash seed, so two speakers
// built by different compilers, or one speaker before and after a restart,
// agree. Changing it would move most addresses in a cluster during an
// upgrade: don't.
//
// The package is pure: it imports no Kubernetes client and opens no socket.
package election
