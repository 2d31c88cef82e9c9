package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CommunityAlias names a BGP community value.
type CommunityAlias struct {
	// Name is the alias used in BGPAdvertisement.spec.communities.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Value is the community: "65535:65282" or "large:1:2:3".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Value string `json:"value"`
}

// CommunitySpec holds named community values.
type CommunitySpec struct {
	// Communities are the aliases this object defines.
	// +optional
	// +listType=map
	// +listMapKey=name
	Communities []CommunityAlias `json:"communities,omitempty"`
}

// Community gives names to BGP community values, so that advertisements can
// refer to them by name.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=ironlb
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Community struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CommunitySpec `json:"spec,omitempty"`
}

// CommunityList is a list of Community.
//
// +kubebuilder:object:root=true
type CommunityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Community `json:"items"`
}
