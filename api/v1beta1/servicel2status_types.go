package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InterfaceInfo names an interface on which a node announces an address.
type InterfaceInfo struct {
	// Name is the interface's name on the node.
	Name string `json:"name"`
}

// ServiceL2StatusStatus says which node announces a Service in layer-2 mode.
type ServiceL2StatusStatus struct {
	// Node is the node that answers ARP and NDP for the Service's
	// addresses.
	// +optional
	Node string `json:"node,omitempty"`

	// ServiceName is the name of the Service.
	// +optional
	ServiceName string `json:"serviceName,omitempty"`

	// ServiceNamespace is the namespace of the Service.
	// +optional
	ServiceNamespace string `json:"serviceNamespace,omitempty"`

	// Interfaces are the interfaces on which the node announces.
	// +optional
	// +listType=atomic
	Interfaces []InterfaceInfo `json:"interfaces,omitempty"`
}

// ServiceL2Status is written by the speaker that announces a Service in
// layer-2 mode; it tells the user which node that is.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=l2status,categories=ironlb
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.status.serviceName`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.status.serviceNamespace`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceL2Status struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status ServiceL2StatusStatus `json:"status,omitempty"`
}

// ServiceL2StatusList is a list of ServiceL2Status.
//
// +kubebuilder:object:root=true
type ServiceL2StatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceL2Status `json:"items"`
}
