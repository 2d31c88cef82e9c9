// Package interfaces chooses the network interfaces a node answers ARP and
// NDP on, and follows the node's interfaces as they come and go.
//
// Choose is pure: given the node's links and their addresses, it returns
// the names to announce on. By default these are the interfaces that carry
// the node's own addresses (those of its Node object), never:
//
//   - loopback or NOARP links (they have no neighbours to answer);
//   - links that are down (chosen again when they come up);
//   - links enslaved to a bridge, bond, team or Open vSwitch (the master
//     carries the node's address, and answering on a port would bypass
//     it); links enslaved to a VRF stay eligible;
//   - pod veths: a veth with a master, or one with no global unicast
//     address, is taken for the host end of a pod's veth pair (CNI plugins
//     such as Calico or Cilium leave those without addresses), as the peer's
//     namespace cannot be read from here.
//
// An L2Advertisement that names interfaces replaces the default: those of
// the named interfaces that exist, are up, and are neither loopback nor
// NOARP.
//
// A Watcher reads the links and addresses of a network namespace and
// reports them again whenever netlink says a link or an address changed,
// so the speaker follows interfaces without polling.
package interfaces
