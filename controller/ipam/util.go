package ipam

import (
	"math"
	"strings"

	ironlbv1beta1 "github.com/ironlb/ironlb/api/v1beta1"
)

// saturate converts an address count to the int64 of a pool's status,
// saturating: an IPv6 pool may hold more addresses than an int64 counts.
func saturate(n uint64) int64 {
	if n > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(n)
}

func equalPoolStatus(a, b *ironlbv1beta1.IPAddressPoolStatus) bool {
	if a.AssignedIPv4 != b.AssignedIPv4 || a.AssignedIPv6 != b.AssignedIPv6 ||
		a.AvailableIPv4 != b.AvailableIPv4 || a.AvailableIPv6 != b.AvailableIPv6 ||
		len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		if !sameCondition(a.Conditions[i], b.Conditions[i]) {
			return false
		}
	}
	return true
}

// joinSentences joins error messages into one condition message.
func joinSentences(msgs []string) string {
	return strings.Join(msgs, "; ")
}

// splitKey splits a "namespace/name" key.
func splitKey(key string) (namespace, name string) {
	ns, n, ok := strings.Cut(key, "/")
	if !ok {
		return "", key
	}
	return ns, n
}
