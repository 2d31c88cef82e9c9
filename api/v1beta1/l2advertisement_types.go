package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// L2AdvertisementSpec says which pools are announced in layer-2 mode, from
// which nodes and on which interfaces.
type L2AdvertisementSpec struct {
	// IPAddressPools names the pools to announce. With neither this nor
	// IPAddressPoolSelectors set, every pool is announced.
	// +optional
	// +listType=set
	IPAddressPools []string `json:"ipAddressPools,omitempty"`

	// IPAddressPoolSelectors select, by label, the pools to announce.
	// +optional
	// +listType=atomic
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`

	// NodeSelectors select the nodes that may announce. Empty means every
	// node.
	// +optional
	// +listType=atomic
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Interfaces names the interfaces on which the addresses are
	// announced. Empty means the interfaces that carry the node's own
	// addresses.
	// +optional
	// +listType=set
	Interfaces []string `json:"interfaces,omitempty"`
}

// L2Advertisement announces the addresses of some pools in layer-2 mode: the
// elected node answers ARP and NDP for them.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=l2adv,categories=ironlb
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type L2Advertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec L2AdvertisementSpec `json:"spec,omitempty"`
}

// L2AdvertisementList is a list of L2Advertisement.
//
// +kubebuilder:object:root=true
type L2AdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Advertisement `json:"items"`
}
