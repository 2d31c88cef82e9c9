// Package count declares what the ARP and NDP Responders report about their
// work, so that one metrics type serves both.
package count

import "net/netip"

// Recorder counts what a Responder does. Its methods are called from the
// Responder's goroutines and must be safe for concurrent use.
type Recorder interface {
	// RequestReceived counts a request (an ARP request or a Neighbor
	// Solicitation) received on the interface, whatever its target.
	RequestReceived(ifname string)
	// RequestAnswered counts an answer sent for ip.
	RequestAnswered(ifname string, ip netip.Addr)
	// GratuitousSent counts a gratuitous ARP or unsolicited Neighbor
	// Advertisement sent for ip.
	GratuitousSent(ifname string, ip netip.Addr)
	// AnswerFailed reports an answer for ip that could not be sent. The
	// Responder goes on answering.
	AnswerFailed(ifname string, ip netip.Addr, err error)
}

// Nop is the Recorder that counts nothing, used when none is given.
type Nop struct{}

// RequestReceived does nothing.
func (Nop) RequestReceived(string) {}

// RequestAnswered does nothing.
func (Nop) RequestAnswered(string, netip.Addr) {}

// GratuitousSent does nothing.
func (Nop) GratuitousSent(string, netip.Addr) {}

// AnswerFailed does nothing.
func (Nop) AnswerFailed(string, netip.Addr, error) {}
