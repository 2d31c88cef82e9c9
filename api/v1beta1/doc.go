// Package v1beta1 holds the ironlb.io/v1beta1 API: the objects with which a
// user tells ironlb which external IPs it may hand out to Services of type
// LoadBalancer and how to make them reachable from outside the cluster.
//
// Field names follow MetalLB's wherever MetalLB has the feature, so that a
// MetalLB configuration converts mechanically.
//
// +kubebuilder:object:generate=true
// +groupName=ironlb.io
package v1beta1
