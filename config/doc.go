// Package config turns ironlb's API objects — IPAddressPools,
// L2Advertisements, BGPPeers, BGPAdvertisements and Communities, with the
// Secrets that hold BGP passwords — into one validated, immutable Config of
// netip values that the controller allocates from and the speaker announces
// from.
//
// New checks everything the API server's schema cannot: that addresses
// parse and pools do not overlap, that advertisements name pools, peers and
// community aliases that exist, that an aggregation length covers no
// address outside its pool, and that BGP timers and addresses make sense.
// It reports every problem at once, each as a FieldError naming the object
// and the field at fault, so that each object's status can say what is
// wrong with it.
//
// The package is pure: it reads no cluster, opens no socket, and keeps no
// state between calls.
package config
