package config

import (
	"errors"
	"fmt"
)

// Kind is the kind of an ironlb API object, as Kubernetes spells it.
type Kind string

// The kinds of object a Config is built from.
const (
	KindIPAddressPool    Kind = "IPAddressPool"
	KindL2Advertisement  Kind = "L2Advertisement"
	KindBGPPeer          Kind = "BGPPeer"
	KindBGPAdvertisement Kind = "BGPAdvertisement"
	KindCommunity        Kind = "Community"
)

// ObjectRef names one API object in ironlb's namespace.
type ObjectRef struct {
	Kind Kind
	Name string
}

// String returns the reference as `IPAddressPool "blue"`.
func (r ObjectRef) String() string {
	return fmt.Sprintf("%s %q", r.Kind, r.Name)
}

// FieldError is one problem with one field of one object. Its text reads
// `IPAddressPool "blue": spec.addresses[1]: <what is wrong>`, fit for the
// object's status condition and for the user who has to fix it.
type FieldError struct {
	// Kind is the kind of the object at fault.
	Kind Kind
	// Name is the name of the object at fault.
	Name string
	// Field is the path of the field at fault, such as "spec.addresses[1]".
	Field string
	// Err says what is wrong with the field.
	Err error
}

// Error returns the object, the field and the problem.
func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.Object(), e.Field, e.Err)
}

// Unwrap returns the problem, for errors.Is and errors.As.
func (e *FieldError) Unwrap() error {
	return e.Err
}

// Object returns the object at fault.
func (e *FieldError) Object() ObjectRef {
	return ObjectRef{Kind: e.Kind, Name: e.Name}
}

// FieldErrors returns every FieldError in err, in order, looking through
// errors joined by errors.Join and wrapped with %w. New returns its problems
// this way, so that a caller can report each on its object: group them by
// Object.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// ObjectErrors returns the FieldErrors in err grouped by the object at
// fault, each group in the order FieldErrors returns them.
func ObjectErrors(err error) map[ObjectRef][]*FieldError {
	out := make(map[ObjectRef][]*FieldError)
	for _, fe := range FieldErrors(err) {
		out[fe.Object()] = append(out[fe.Object()], fe)
	}
	return out
}

// errorf returns a FieldError for the object and field.
func errorf(kind Kind, name, field, format string, args ...any) *FieldError {
	return &FieldError{Kind: kind, Name: name, Field: field, Err: fmt.Errorf(format, args...)}
}

// joinFieldErrors joins errs, or returns nil if there are none.
func joinFieldErrors(errs []*FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}
