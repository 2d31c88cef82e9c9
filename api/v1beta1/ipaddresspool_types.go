package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPAddressPoolSpec says which addresses ironlb may hand out and to which
// Services.
type IPAddressPoolSpec struct {
	// Addresses are the addresses of the pool: CIDRs such as
	// "203.0.113.0/28" or ranges such as "203.0.113.10-203.0.113.20",
	// IPv4 or IPv6.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=100
	// +listType=atomic
	Addresses []string `json:"addresses"`

	// AutoAssign lets the controller pick addresses of this pool for
	// Services that do not name a pool. When false, only Services that ask
	// for this pool or for one of its addresses get one.
	// +kubebuilder:default=true
	// +optional
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// AvoidBuggyIPs skips addresses ending in .0 and .255, which some
	// old client networks drop.
	// +kubebuilder:default=false
	// +optional
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// AllocateTo restricts the Services that may get addresses of this pool
	// and orders the pools a Service may use.
	// +optional
	AllocateTo *ServiceAllocation `json:"serviceAllocation,omitempty"`
}

// ServiceAllocation restricts which Services a pool serves and sets the
// pool's priority among the pools a Service may use.
type ServiceAllocation struct {
	// Priority orders the pools a Service may use: the lowest number is
	// tried first; pools without a priority come last. Ties are broken by
	// pool name.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Priority int32 `json:"priority,omitempty"`

	// Namespaces lists the namespaces whose Services may use the pool.
	// +optional
	// +listType=set
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelectors select, by label, the namespaces whose Services
	// may use the pool.
	// +optional
	// +listType=atomic
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`

	// ServiceSelectors select, by label, the Services that may use the
	// pool.
	// +optional
	// +listType=atomic
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// IPAddressPoolStatus reports how much of the pool is in use and whether its
// configuration is valid.
type IPAddressPoolStatus struct {
	// AssignedIPv4 is the number of IPv4 addresses of the pool held by
	// Services.
	// +optional
	AssignedIPv4 int64 `json:"assignedIPv4"`

	// AssignedIPv6 is the number of IPv6 addresses of the pool held by
	// Services.
	// +optional
	AssignedIPv6 int64 `json:"assignedIPv6"`

	// AvailableIPv4 is the number of IPv4 addresses of the pool still free.
	// +optional
	AvailableIPv4 int64 `json:"availableIPv4"`

	// AvailableIPv6 is the number of IPv6 addresses of the pool still free;
	// it saturates at the largest int64.
	// +optional
	AvailableIPv6 int64 `json:"availableIPv6"`

	// Conditions tell whether the pool's configuration is valid and in use
	// (type Valid).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// IPAddressPool is a set of external addresses that ironlb hands out to
// Services of type LoadBalancer.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ippool;ipp,categories=ironlb
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Auto Assign",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="Assigned IPv4",type=integer,JSONPath=`.status.assignedIPv4`
// +kubebuilder:printcolumn:name="Assigned IPv6",type=integer,JSONPath=`.status.assignedIPv6`
// +kubebuilder:printcolumn:name="Available IPv4",type=integer,JSONPath=`.status.availableIPv4`
// +kubebuilder:printcolumn:name="Available IPv6",type=integer,JSONPath=`.status.availableIPv6`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPAddressPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPAddressPoolSpec   `json:"spec"`
	Status IPAddressPoolStatus `json:"status,omitempty"`
}

// IPAddressPoolList is a list of IPAddressPool.
//
// +kubebuilder:object:root=true
type IPAddressPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAddressPool `json:"items"`
}

// ConditionValid is the type of the condition that says whether an
// object's configuration is valid and in force. When it is False, its
// message says which field to fix; the last valid configuration stays in
// force meanwhile.
const ConditionValid = "Valid"
