package ipam

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/controller/allocator"
)

// Metrics are the controller's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	addresses   *prometheus.GaugeVec
	inUse       *prometheus.GaugeVec
	allocations prometheus.Counter
	failures    *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		addresses: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "controller", Name: "pool_addresses_total",
			Help: "Addresses a pool can assign, by pool and IP family (IPv6 saturates at 2^64-1).",
		}, []string{"pool", "family"}),
		inUse: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "controller", Name: "pool_addresses_in_use",
			Help: "Addresses of a pool held by Services, by pool and IP family.",
		}, []string{"pool", "family"}),
		allocations: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "controller", Name: "allocations_total",
			Help: "Services that were given new addresses.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "controller", Name: "allocation_failures_total",
			Help: "Services refused an address, by reason.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.addresses, m.inUse, m.allocations, m.failures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) pools(statuses []allocator.PoolStatus) {
	if m == nil {
		return
	}
	m.addresses.Reset()
	m.inUse.Reset()
	for _, s := range statuses {
		m.addresses.WithLabelValues(s.Pool, "IPv4").Set(float64(sum(s.AssignedIPv4, s.AvailableIPv4)))
		m.addresses.WithLabelValues(s.Pool, "IPv6").Set(float64(sum(s.AssignedIPv6, s.AvailableIPv6)))
		m.inUse.WithLabelValues(s.Pool, "IPv4").Set(float64(s.AssignedIPv4))
		m.inUse.WithLabelValues(s.Pool, "IPv6").Set(float64(s.AssignedIPv6))
	}
}

func sum(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

func (m *Metrics) allocated() {
	if m != nil {
		m.allocations.Inc()
	}
}

func (m *Metrics) failed(r allocator.Reason) {
	if m != nil {
		m.failures.WithLabelValues(string(r)).Inc()
	}
}
