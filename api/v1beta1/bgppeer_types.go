package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPPeerSpec describes one BGP session that speakers open to a router.
//
// +kubebuilder:validation:XValidation:rule="!has(self.holdTime) || duration(self.holdTime) == duration('0s') || duration(self.holdTime) >= duration('3s')",message="holdTime must be 0s (no keepalives) or at least 3s",fieldPath=".holdTime"
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTime) || !has(self.holdTime) || duration(self.holdTime) == duration('0s') || duration(self.keepaliveTime) < duration(self.holdTime)",message="keepaliveTime must be shorter than holdTime",fieldPath=".keepaliveTime"
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTime) || has(self.holdTime) || duration(self.keepaliveTime) < duration('90s')",message="keepaliveTime must be shorter than holdTime (default 90s)",fieldPath=".keepaliveTime"
// +kubebuilder:validation:XValidation:rule="!has(self.connectTime) || (duration(self.connectTime) >= duration('1s') && duration(self.connectTime) <= duration('65535s'))",message="connectTime must be between 1s and 65535s",fieldPath=".connectTime"
type BGPPeerSpec struct {
	// MyASN is the AS number the speakers use on this session.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	MyASN uint32 `json:"myASN"`

	// ASN is the AS number of the router. Equal to MyASN for iBGP.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	ASN uint32 `json:"peerASN"`

	// Address is the router's IPv4 or IPv6 address.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=45
	Address string `json:"peerAddress"`

	// SrcAddress is the local address the session starts from. Empty means
	// the kernel chooses.
	// +kubebuilder:validation:MaxLength=45
	// +optional
	SrcAddress string `json:"sourceAddress,omitempty"`

	// Port is the router's BGP port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=179
	// +optional
	Port uint16 `json:"peerPort,omitempty"`

	// HoldTime is the proposed BGP hold time: 0s, or at least 3s.
	// Default 90s.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`

	// KeepaliveTime is the BGP keepalive interval; it must be shorter than
	// HoldTime. Default a third of HoldTime.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`

	// ConnectTime is the time between attempts to connect to the router.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	ConnectTime *metav1.Duration `json:"connectTime,omitempty"`

	// RouterID is the BGP router ID the speakers announce. Empty means each
	// node's IPv4 address.
	// +kubebuilder:validation:MaxLength=15
	// +optional
	RouterID string `json:"routerID,omitempty"`

	// NodeSelectors select the nodes that open this session. Empty means
	// every node.
	// +optional
	// +listType=atomic
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// PasswordSecret names a Secret in ironlb's namespace whose "password"
	// key holds the TCP MD5 password of the session. Any Secret type
	// works; MetalLB's kubernetes.io/basic-auth Secrets do.
	// +optional
	PasswordSecret corev1.SecretReference `json:"passwordSecret,omitempty"`

	// EBGPMultiHop lets an eBGP session reach a router that is more than
	// one hop away.
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`

	// EnableGracefulRestart asks the router to keep the speaker's routes
	// while the speaker restarts (RFC 4724).
	// +optional
	EnableGracefulRestart bool `json:"enableGracefulRestart,omitempty"`
}

// BGPSessionState is the state of a BGP session, as RFC 4271 names it.
// +kubebuilder:validation:Enum=Idle;Connect;Active;OpenSent;OpenConfirm;Established;Unknown
type BGPSessionState string

// The states of a BGP session.
const (
	BGPSessionIdle        BGPSessionState = "Idle"
	BGPSessionConnect     BGPSessionState = "Connect"
	BGPSessionActive      BGPSessionState = "Active"
	BGPSessionOpenSent    BGPSessionState = "OpenSent"
	BGPSessionOpenConfirm BGPSessionState = "OpenConfirm"
	BGPSessionEstablished BGPSessionState = "Established"
	BGPSessionUnknown     BGPSessionState = "Unknown"
)

// BGPSessionStatus is the state of the session one node holds with the
// peer.
type BGPSessionStatus struct {
	// Node is the name of the node that holds the session.
	Node string `json:"node"`

	// State is the session's state.
	State BGPSessionState `json:"state"`

	// Since is when the session entered State.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`

	// PrefixesSent is the number of prefixes the node advertises to the
	// peer.
	// +optional
	PrefixesSent int64 `json:"prefixesSent"`

	// Message says why the session is not established, when it is not.
	// +optional
	Message string `json:"message,omitempty"`
}

// BGPPeerStatus reports the session each node holds with the peer.
type BGPPeerStatus struct {
	// Sessions holds one entry per node that should hold a session.
	// +optional
	// +listType=map
	// +listMapKey=node
	Sessions []BGPSessionStatus `json:"sessions,omitempty"`

	// Conditions tell whether the peer's configuration is valid.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BGPPeer is a router to which speakers open BGP sessions.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bgpp,categories=ironlb
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="Peer ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="My ASN",type=integer,JSONPath=`.spec.myASN`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPPeerSpec   `json:"spec"`
	Status BGPPeerStatus `json:"status,omitempty"`
}

// BGPPeerList is a list of BGPPeer.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}
