// Package ipam is the controller's Kubernetes side of IP address
// management: it turns Services into allocator requests, keeps the
// allocator's pools in step with the IPAddressPool objects, and writes the
// outcome back where a user looks — the Service's status.loadBalancer, its
// ironlb.io/IPAllocated condition, its events and the
// ironlb.io/ip-allocated-from-pool annotation, and each pool's status.
//
// The decisions belong to the pure package controller/allocator; this
// package reads and writes API objects around it.
//
// On start, before any address is handed out, every address found in the
// Services' status is claimed again (Allocator.Reload), so that a restart
// never moves an address. An invalid pool configuration never takes
// addresses away: the last valid one stays in force, and the error is
// reported on the pools and in events until it is fixed.
package ipam
