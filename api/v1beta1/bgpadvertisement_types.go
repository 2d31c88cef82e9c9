package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPAdvertisementSpec says which pools are advertised over BGP, how, to
// which peers and from which nodes.
type BGPAdvertisementSpec struct {
	// AggregationLength is the prefix length of the IPv4 routes
	// advertised: 32 advertises each address alone.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	// +kubebuilder:default=32
	// +optional
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// AggregationLengthV6 is the prefix length of the IPv6 routes
	// advertised: 128 advertises each address alone.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	// +kubebuilder:default=128
	// +optional
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`

	// LocalPref is the BGP LOCAL_PREF attribute of the routes, sent on
	// iBGP sessions only.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	// +optional
	LocalPref uint32 `json:"localPref,omitempty"`

	// Communities attached to the routes: "65535:65282", "large:1:2:3", or
	// the name of an alias from a Community object.
	// +optional
	// +listType=set
	Communities []string `json:"communities,omitempty"`

	// IPAddressPools names the pools to advertise. With neither this nor
	// IPAddressPoolSelectors set, every pool is advertised.
	// +optional
	// +listType=set
	IPAddressPools []string `json:"ipAddressPools,omitempty"`

	// IPAddressPoolSelectors select, by label, the pools to advertise.
	// +optional
	// +listType=atomic
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`

	// NodeSelectors select the nodes that advertise. Empty means every
	// node.
	// +optional
	// +listType=atomic
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Peers names the BGPPeers to advertise to. Empty means every peer.
	// +optional
	// +listType=set
	Peers []string `json:"peers,omitempty"`
}

// BGPAdvertisement advertises the addresses of some pools as BGP routes.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=bgpadv,categories=ironlb
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Spec BGPAdvertisementSpec `json:"spec,omitempty"`
}

// BGPAdvertisementList is a list of BGPAdvertisement.
//
// +kubebuilder:object:root=true
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAdvertisement `json:"items"`
}
