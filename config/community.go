package config

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// largePrefix starts the text form of a large community.
const largePrefix = "large:"

// Community is a BGP community value: a standard community (RFC 1997), two
// 16-bit numbers written "65535:65282", or a large community (RFC 8092),
// three 32-bit numbers written "large:64512:1:2". The zero Community is the
// standard community "0:0".
type Community struct {
	large bool
	// parts holds the AS number and value of a standard community in its
	// first two elements, and the global administrator and the two local
	// data parts of a large community.
	parts [3]uint32
}

// StandardCommunity returns the standard community asn:value.
func StandardCommunity(asn, value uint16) Community {
	return Community{parts: [3]uint32{uint32(asn), uint32(value)}}
}

// LargeCommunity returns the large community large:global:local1:local2.
func LargeCommunity(global, local1, local2 uint32) Community {
	return Community{large: true, parts: [3]uint32{global, local1, local2}}
}

// ParseCommunity parses a community value: "65535:65282" for a standard
// community, "large:64512:1:2" for a large one. Numbers are decimal.
func ParseCommunity(s string) (Community, error) {
	if rest, ok := strings.CutPrefix(s, largePrefix); ok {
		fields := strings.Split(rest, ":")
		if len(fields) != 3 {
			return Community{}, fmt.Errorf("invalid large community %q: want three numbers such as large:64512:1:2", s)
		}
		var c Community
		c.large = true
		for i, f := range fields {
			n, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return Community{}, fmt.Errorf("invalid large community %q: %q is not a number from 0 to 4294967295", s, f)
			}
			c.parts[i] = uint32(n)
		}
		return c, nil
	}
	fields := strings.Split(s, ":")
	if len(fields) != 2 {
		return Community{}, fmt.Errorf("invalid community %q: want two numbers such as 65535:65282, or three after \"large:\" such as large:64512:1:2", s)
	}
	var c Community
	for i, f := range fields {
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil {
			return Community{}, fmt.Errorf("invalid community %q: %q is not a number from 0 to 65535", s, f)
		}
		c.parts[i] = uint32(n)
	}
	return c, nil
}

// String returns the community as ParseCommunity reads it.
func (c Community) String() string {
	if c.large {
		return fmt.Sprintf("%s%d:%d:%d", largePrefix, c.parts[0], c.parts[1], c.parts[2])
	}
	return fmt.Sprintf("%d:%d", c.parts[0], c.parts[1])
}

// IsLarge reports whether c is a large community.
func (c Community) IsLarge() bool {
	return c.large
}

// Standard returns a standard community as BGP carries it, the AS number in
// the high 16 bits and the value in the low 16 bits; it returns 0 for a
// large community.
func (c Community) Standard() uint32 {
	if c.large {
		return 0
	}
	return c.parts[0]<<16 | c.parts[1]
}

// Large returns the three parts of a large community; it returns zeros for
// a standard community.
func (c Community) Large() (global, local1, local2 uint32) {
	if !c.large {
		return 0, 0, 0
	}
	return c.parts[0], c.parts[1], c.parts[2]
}

// Compare orders communities: standard ones first, then by their numbers.
// It returns -1, 0 or +1 like cmp.Compare.
func (c Community) Compare(o Community) int {
	if c.large != o.large {
		if c.large {
			return 1
		}
		return -1
	}
	for i := range c.parts {
		if n := cmp.Compare(c.parts[i], o.parts[i]); n != 0 {
			return n
		}
	}
	return 0
}

// CommunityAlias is a name given to a community value by a Community object.
type CommunityAlias struct {
	// Name is the alias, as BGPAdvertisement.spec.communities uses it.
	Name string
	// Value is the community the alias stands for.
	Value Community
	// Object is the name of the Community object that defines the alias.
	Object string
}
