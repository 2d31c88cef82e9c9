package allocator

import (
	"errors"
	"fmt"
	"strings"
)

// Reason says in one word why the allocator refused a request. Its value is
// a status condition's reason, such as "PoolExhausted".
type Reason string

// The reasons a request is refused.
const (
	// NoMatchingPool means no pool can serve the request: there is no pool
	// the Service may use, the pool it asks for does not exist or does not
	// serve it, an address it asks for lies in no pool it may use, or no
	// pool it may use has addresses of a family it needs. Changing the
	// pools or the request fixes it.
	NoMatchingPool Reason = "NoMatchingPool"
	// PoolExhausted means the pools that could serve the request have no
	// free address of a family it needs.
	PoolExhausted Reason = "PoolExhausted"
	// RequestedIPInUse means an address the Service asks for, or claims on
	// Assign, is held by another Service it may not share it with.
	RequestedIPInUse Reason = "RequestedIPInUse"
	// InvalidRequest means the request contradicts itself or the pools'
	// rules whatever the pools hold: an address of a family the Service
	// does not use, two addresses of one family or in two pools, an address
	// outside the pool it asks for, or one ending in .0 or .255 in a pool
	// that avoids them.
	InvalidRequest Reason = "InvalidRequest"
)

// Error is why the allocator refused a request. Allocate, Assign and
// Reload return only errors of this type; callers branch on Reason, which
// ReasonOf extracts, rather than on sentinel values.
type Error struct {
	// Reason says in one word why.
	Reason Reason
	// Message says what is wrong and what the user can change, in the
	// Service owner's words, fit for the Service's condition and events:
	// `pool "lan" has no free IPv4 address: add addresses to it or free
	// some`.
	Message string
}

// Error returns the message.
func (e *Error) Error() string {
	return e.Message
}

// ReasonOf returns the Reason of the *Error in err's chain, if there is one.
func ReasonOf(err error) (Reason, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason, true
	}
	return "", false
}

// errorf returns an *Error with the reason and a formatted message.
func errorf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Message: fmt.Sprintf(format, args...)}
}

// quoteList returns names quoted and joined: `"a"`, `"a" and "b"`, `"a",
// "b" and "c"`.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) <= 1 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

// pools returns "pool" followed by the quoted name, or "pools" followed by
// the quoted names.
func pools(names []string) string {
	if len(names) == 1 {
		return "pool " + quoteList(names)
	}
	return "pools " + quoteList(names)
}
