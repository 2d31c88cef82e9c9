// Package allocator hands out the external addresses of Services of type
// LoadBalancer from the address pools of a config.Config.
//
// It is the controller's pure core: it takes plain values — a Service's key,
// IP families and family policy, requested pool and addresses, sharing key,
// ports and backends — in a Request, and answers with an Assignment or an
// *Error whose Reason and Message go to the Service's status condition. It
// imports no client-go, controller-runtime or Prometheus, and knows nothing
// of the API objects.
//
// The rules it enforces are ironlb's allocation rules:
//
//   - A Service gets one address per IP family it needs, all from one pool:
//     the pool it names, or else the first pool, by priority then name,
//     that assigns addresses automatically, serves it, and gives it every
//     family it needs (PreferDualStack settles for its first family, then
//     for any; RequireDualStack does not).
//   - Requested addresses must lie in one pool that serves the Service and
//     match its families; a request that cannot be honoured is refused, it
//     never silently gets another address.
//   - Two Services hold one address only if both carry the same sharing key,
//     use no (protocol, port) in common and, if either has
//     externalTrafficPolicy Local, select the same pods. A Service with a
//     sharing key takes a compatible partner's address rather than a new
//     one: among the pools that give it as many families, it picks the one
//     where it shares the most addresses, then the first.
//   - An address that stays valid never changes: Allocate returns what a key
//     already holds, another key's release or an unrelated pool's change
//     moves nothing, and on start Reload (or Assign) loads every address
//     found in Services' status before anything new is allocated; when two
//     claims on one address conflict, the older Service keeps it.
//
// # Errors
//
// Allocate, Assign and Reload refuse a request with an *Error: its Reason
// (NoMatchingPool, PoolExhausted, RequestedIPInUse, InvalidRequest) is the
// condition reason to branch on, through ReasonOf or errors.As; its
// Message tells the user what to change. There are no sentinel errors.
//
// # Cost
//
// Memory grows with the addresses held, not with the size of the pools: a
// /8 IPv4 pool or a /64 IPv6 pool costs nothing until addresses are taken.
// Taking an address costs amortized O(1) whatever the number already taken:
// each range of a pool has a cursor that only moves forward, and addresses
// released behind it wait on the pool's free list, which is used first.
// When the cursor meets a run of addresses held (claimed on start, say), it
// passes them 64 at a time in a bitmap of the addresses held. A pool is
// full exactly when the addresses it holds number its config.Pool.Size.
//
// # Concurrency
//
// An Allocator's methods may be called from several goroutines: a mutex
// serializes them.
package allocator
