package election

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
)

// Owner returns the node among nodes that announces the address whose
// election key is key, and false when nodes is empty.
//
// The owner is the node with the highest Score for key. The order of nodes
// does not matter, and duplicates change nothing. Two different nodes with
// the same score would need a 64-bit collision of SHA-256; should it ever
// happen, the node whose name sorts first wins, so the result still depends
// on nothing but the set of nodes and the key.
func Owner(nodes []string, key string) (string, bool) {
	var (
		owner string
		best  uint64
		found bool
	)
	for _, n := range nodes {
		s := Score(n, key)
		if !found || s > best || (s == best && n < owner) {
			owner, best, found = n, s, true
		}
	}
	return owner, found
}

// Score returns the weight of node for key: the first 8 bytes, read
// big-endian, of the SHA-256 digest of the node's name, a zero byte, and
// the key. The zero byte keeps ("ab", "c") and ("a", "bc") apart; neither
// node names nor keys contain one.
func Score(node, key string) uint64 {
	h := sha256.New()
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// ServiceKey returns the election key of a Service whose load-balancer
// addresses are ips: the lowest of them (in netip.Addr order, so an IPv4
// address before any IPv6 one) as a string, and false when ips holds no
// valid address.
//
// Keying a Service by its lowest address, rather than by its name or by
// each address alone, does two things. Both addresses of a dual-stack
// Service share one key, so one node announces both. And two Services
// sharing an address (allow-shared-ip) whose lowest address is the shared
// one get the same key, so the shared address has one owner. Services that
// share an address that is not the lowest of both, such as a dual-stack
// Service sharing only its IPv6 address with an IPv6-only one, need Keys,
// which groups them.
//
// The key also stays put while the Service keeps its addresses: renaming
// nothing, restarting nothing and adding no other Service moves it.
func ServiceKey(ips []netip.Addr) (string, bool) {
	var low netip.Addr
	for _, ip := range ips {
		if !ip.IsValid() {
			continue
		}
		if !low.IsValid() || ip.Less(low) {
			low = ip
		}
	}
	if !low.IsValid() {
		return "", false
	}
	return low.String(), true
}

// Keys returns the election key of every address of services, each
// element of which is the load-balancer addresses of one Service: the
// lowest address, as a string, of the group of addresses linked to it by
// belonging to the same Service, directly or through a chain of Services
// sharing addresses. Every address of a group therefore has one owner,
// whatever the order of services. Invalid addresses are ignored.
//
// For Services that share no address, Keys gives what ServiceKey gives.
func Keys(services [][]netip.Addr) map[netip.Addr]string {
	// Union-find over addresses; the root of each set is its lowest
	// address.
	parent := make(map[netip.Addr]netip.Addr)
	find := func(a netip.Addr) netip.Addr {
		if _, ok := parent[a]; !ok {
			parent[a] = a
			return a
		}
		root := a
		for parent[root] != root {
			root = parent[root]
		}
		for a != root { // path compression
			next := parent[a]
			parent[a] = root
			a = next
		}
		return root
	}
	union := func(a, b netip.Addr) {
		ra, rb := find(a), find(b)
		switch {
		case ra == rb:
		case ra.Less(rb):
			parent[rb] = ra
		default:
			parent[ra] = rb
		}
	}
	for _, ips := range services {
		var first netip.Addr
		for _, ip := range ips {
			if !ip.IsValid() {
				continue
			}
			if !first.IsValid() {
				first = ip
				find(ip)
				continue
			}
			union(first, ip)
		}
	}
	keys := make(map[netip.Addr]string, len(parent))
	for a := range parent {
		keys[a] = find(a).String()
	}
	return keys
}
