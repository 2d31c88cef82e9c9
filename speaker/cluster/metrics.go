package cluster

import (
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/speaker/bgp"
	"github.com/ironlb/ironlb/speaker/layer2"
)

// Metrics are the speaker's Prometheus metrics. A nil *Metrics records
// nothing. It is also the Recorder of the ARP and NDP Responders.
type Metrics struct {
	announcedIPs *prometheus.GaugeVec
	received     *prometheus.CounterVec
	answered     *prometheus.CounterVec
	gratuit      *prometheus.CounterVec
	failed       *prometheus.CounterVec
	members      prometheus.Gauge
	bgpUp        *prometheus.GaugeVec
	bgpSent      *prometheus.GaugeVec
	bgpPrefix    *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		announcedIPs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "ironlb", Subsystem: "speaker", Name: "layer2_announced_ips",
			Help: "Addresses this node answers ARP or NDP for, by family."}, []string{"family"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "ironlb", Subsystem: "speaker", Name: "layer2_requests_received_total",
			Help: "ARP requests and Neighbor Solicitations received, by protocol and interface."}, []string{"protocol", "interface"}),
		answered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "ironlb", Subsystem: "speaker", Name: "layer2_requests_answered_total",
			Help: "ARP replies and Neighbor Advertisements sent in answer, by protocol and interface."}, []string{"protocol", "interface"}),
		gratuit: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "ironlb", Subsystem: "speaker", Name: "layer2_gratuitous_sent_total",
			Help: "Gratuitous ARPs and unsolicited Neighbor Advertisements sent, by protocol and interface."}, []string{"protocol", "interface"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "ironlb", Subsystem: "speaker", Name: "layer2_answers_failed_total",
			Help: "Answers that could not be sent, by protocol and interface."}, []string{"protocol", "interface"}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "ironlb", Subsystem: "speaker", Name: "members",
			Help: "Speakers the failure detector sees alive, this one included."}),
		bgpUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "ironlb", Subsystem: "speaker", Name: "bgp_session_up",
			Help: "1 when the BGP session with the peer is Established, else 0."}, []string{"peer"}),
		bgpSent: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "ironlb", Subsystem: "speaker", Name: "bgp_updates_sent",
			Help: "UPDATE messages sent on the session with the peer since it was opened."}, []string{"peer"}),
		bgpPrefix: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "ironlb", Subsystem: "speaker", Name: "bgp_prefixes_advertised",
			Help: "Prefixes advertised to the peer."}, []string{"peer"}),
	}
	for _, c := range []prometheus.Collector{m.announcedIPs, m.received, m.answered, m.gratuit, m.failed, m.members, m.bgpUp, m.bgpSent, m.bgpPrefix} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) announced(d layer2.Desired) {
	if m == nil {
		return
	}
	var v4, v6 float64
	for ip, ifs := range d {
		if len(ifs) == 0 {
			continue
		}
		if ip.Is4() {
			v4++
		} else {
			v6++
		}
	}
	m.announcedIPs.WithLabelValues("IPv4").Set(v4)
	m.announcedIPs.WithLabelValues("IPv6").Set(v6)
}

// sessions records the state of the BGP sessions.
func (m *Metrics) sessions(states []bgp.PeerState) {
	if m == nil {
		return
	}
	m.bgpUp.Reset()
	m.bgpSent.Reset()
	m.bgpPrefix.Reset()
	for _, st := range states {
		up := 0.0
		if st.Session == bgp.SessionEstablished {
			up = 1
		}
		m.bgpUp.WithLabelValues(st.Name).Set(up)
		m.bgpSent.WithLabelValues(st.Name).Set(float64(st.UpdatesSent))
		m.bgpPrefix.WithLabelValues(st.Name).Set(float64(st.PrefixesSent))
	}
}

// Members records the number of live speakers.
func (m *Metrics) Members(n int) {
	if m != nil {
		m.members.Set(float64(n))
	}
}

// Protocol returns the Recorder of the ARP ("arp") or NDP ("ndp")
// Responders.
func (m *Metrics) Protocol(protocol string) *ProtocolRecorder {
	return &ProtocolRecorder{m: m, protocol: protocol}
}

// ProtocolRecorder counts what the Responders of one protocol do; it is an
// arp.Recorder and an ndp.Recorder.
type ProtocolRecorder struct {
	m        *Metrics
	protocol string
}

// RequestReceived counts a request received.
func (r *ProtocolRecorder) RequestReceived(ifname string) {
	if r.m != nil {
		r.m.received.WithLabelValues(r.protocol, ifname).Inc()
	}
}

// RequestAnswered counts an answer sent.
func (r *ProtocolRecorder) RequestAnswered(ifname string, _ netip.Addr) {
	if r.m != nil {
		r.m.answered.WithLabelValues(r.protocol, ifname).Inc()
	}
}

// GratuitousSent counts a gratuitous packet sent.
func (r *ProtocolRecorder) GratuitousSent(ifname string, _ netip.Addr) {
	if r.m != nil {
		r.m.gratuit.WithLabelValues(r.protocol, ifname).Inc()
	}
}

// AnswerFailed counts an answer that could not be sent.
func (r *ProtocolRecorder) AnswerFailed(ifname string, _ netip.Addr, _ error) {
	if r.m != nil {
		r.m.failed.WithLabelValues(r.protocol, ifname).Inc()
	}
}
