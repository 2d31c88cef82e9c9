package layer2

import (
	"fmt"
	"net"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/speaker/layer2/arp"
	"github.com/ironlb/ironlb/speaker/layer2/ndp"
)

// Listener is the Factory of real Responders: an arp.Responder for IPv4
// and an ndp.Responder for IPv6, on the interfaces of the network
// namespace of the calling thread. Opening needs CAP_NET_RAW.
type Listener struct {
	// ARP counts what the ARP Responders do; nil counts nothing.
	ARP arp.Recorder
	// NDP counts what the NDP Responders do; nil counts nothing.
	NDP ndp.Recorder
}

// Open returns a Responder answering for addresses of family f on the
// interface named ifname.
func (l Listener) Open(ifname string, f config.Family) (Responder, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("find interface %q: %w", ifname, err)
	}
	// Each case returns its own nil, not a typed nil pointer in a
	// non-nil interface.
	switch f {
	case config.IPv4:
		r, err := arp.Listen(ifi, l.ARP)
		if err != nil {
			return nil, err
		}
		return r, nil
	case config.IPv6:
		r, err := ndp.Listen(ifi, l.NDP)
		if err != nil {
			return nil, err
		}
		return r, nil
	default:
		return nil, fmt.Errorf("open responder on %s: unknown address family %v", ifname, f)
	}
}
