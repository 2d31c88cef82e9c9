// Package eligibility decides which nodes may announce a Service's
// load-balancer addresses, and says why every other node may not.
//
// The rules are ironlb's announcement rules. A node may announce when it
//
//   - is selected by one of the advertisements (L2Advertisement or
//     BGPAdvertisement) that announce the Service's pool;
//   - is not labelled node.kubernetes.io/exclude-from-external-load-balancers;
//   - is not NetworkUnavailable;
//   - runs a live speaker;
//   - for externalTrafficPolicy: Local, holds an endpoint of the Service
//     that can serve.
//
// Nothing is announced when no endpoint of the Service can serve, whatever
// its traffic policy: an address that leads nowhere is better withdrawn,
// so that clients fail fast.
//
// Which endpoints can serve follows kube-proxy: the ready ones; when no
// endpoint of the Service is ready, the serving and terminating ones, so
// that a rolling restart down to its last terminating pod keeps traffic
// flowing. The fallback is decided for the whole Service, not per node as
// kube-proxy does for its local endpoints: while any endpoint is ready,
// only nodes with a ready local endpoint may announce an
// externalTrafficPolicy: Local Service, so that the announcement does not
// land on a node whose pods are going away.
//
// The package is pure: it takes plain values, never a Kubernetes object,
// and imports no client.
package eligibility
