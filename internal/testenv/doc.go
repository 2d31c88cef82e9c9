// Package testenv starts a real kube-apiserver and etcd for integration
// tests, from the binaries `make controlplane` builds into bin/k8s/<version>.
//
// Without the binaries a test skips and says how to get them, unless
// IRONLB_REQUIRE_ENVTEST=1 is set (as `make test` and CI set it): then it
// fails, so that an integration test can never pass by being skipped.
package testenv
