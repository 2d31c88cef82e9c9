package config

import (
	"slices"
	"strings"
	"testing"
)

func TestParseCommunity(t *testing.T) {
	tests := []struct {
		in           string
		want         Community
		wantString   string
		wantStandard uint32
		wantLarge    [3]uint32
	}{
		{"65535:65282", StandardCommunity(65535, 65282), "65535:65282", 0xffffff02, [3]uint32{}},
		{"0:0", StandardCommunity(0, 0), "0:0", 0, [3]uint32{}},
		{"64512:100", StandardCommunity(64512, 100), "64512:100", 64512<<16 | 100, [3]uint32{}},
		{"065535:00001", StandardCommunity(65535, 1), "65535:1", 0xffff0001, [3]uint32{}},
		{"large:1:2:3", LargeCommunity(1, 2, 3), "large:1:2:3", 0, [3]uint32{1, 2, 3}},
		{"large:4294967295:4294967295:4294967295", LargeCommunity(1<<32-1, 1<<32-1, 1<<32-1), "large:4294967295:4294967295:4294967295", 0, [3]uint32{1<<32 - 1, 1<<32 - 1, 1<<32 - 1}},
		{"large:0:0:0", LargeCommunity(0, 0, 0), "large:0:0:0", 0, [3]uint32{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseCommunity(tt.in)
			if err != nil {
				t.Fatalf("ParseCommunity(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseCommunity(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.wantString {
				t.Errorf("String() = %q, want %q", s, tt.wantString)
			}
			if got.IsLarge() != strings.HasPrefix(tt.in, "large:") {
				t.Errorf("IsLarge() = %t for %q", got.IsLarge(), tt.in)
			}
			if s := got.Standard(); s != tt.wantStandard {
				t.Errorf("Standard() = %#x, want %#x", s, tt.wantStandard)
			}
			if g, l1, l2 := got.Large(); [3]uint32{g, l1, l2} != tt.wantLarge {
				t.Errorf("Large() = %d, %d, %d, want %v", g, l1, l2, tt.wantLarge)
			}
		})
	}
}

func TestParseCommunityErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"", `invalid community ""`},
		{"65535", "want two numbers such as 65535:65282"},
		{"65536:1", `"65536" is not a number from 0 to 65535`},
		{"1:65536", `"65536" is not a number from 0 to 65535`},
		{"-1:1", `"-1" is not a number`},
		{"+1:1", `"+1" is not a number`},
		{"1:2:3", "want two numbers"},
		{" 1:2", `" 1" is not a number`},
		{"no-export", "want two numbers"},
		{"large:1:2", "want three numbers such as large:64512:1:2"},
		{"large:1:2:3:4", "want three numbers"},
		{"large:1:2:4294967296", `"4294967296" is not a number from 0 to 4294967295`},
		{"large:a:2:3", `"a" is not a number`},
		{"LARGE:1:2:3", "want two numbers"},
		{"large:", "want three numbers"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseCommunity(tt.in)
			if err == nil {
				t.Fatalf("ParseCommunity(%q) = %v, want an error containing %q", tt.in, got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseCommunity(%q) error %q does not contain %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestCommunityCompare(t *testing.T) {
	got := []Community{
		LargeCommunity(1, 2, 4), StandardCommunity(2, 1), LargeCommunity(1, 2, 3),
		StandardCommunity(1, 65535), LargeCommunity(0, 9, 9), StandardCommunity(1, 2),
	}
	want := []Community{
		StandardCommunity(1, 2), StandardCommunity(1, 65535), StandardCommunity(2, 1),
		LargeCommunity(0, 9, 9), LargeCommunity(1, 2, 3), LargeCommunity(1, 2, 4),
	}
	slices.SortFunc(got, Community.Compare)
	if !slices.Equal(got, want) {
		t.Errorf("sorted = %v, want %v", got, want)
	}
	if n := LargeCommunity(0, 0, 0).Compare(StandardCommunity(0, 0)); n != 1 {
		t.Errorf("large:0:0:0 compared to 0:0 = %d, want 1", n)
	}
}

// FuzzParseCommunity checks that ParseCommunity never panics and that what
// it accepts round-trips through String.
func FuzzParseCommunity(f *testing.F) {
	for _, s := range []string{
		"65535:65282", "0:0", "65536:0", "large:1:2:3", "large:4294967295:0:4294967296",
		"large:", "large::::", ":", "1:", ":1", "-1:1", "1:2:3", "large:1:2", "0x10:1",
		"00000000000000000000001:1", "no-export", "large:1:2:3:", "١:٢",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCommunity(s)
		if err != nil {
			return
		}
		again, err := ParseCommunity(c.String())
		if err != nil {
			t.Fatalf("ParseCommunity(%q) = %v, whose String does not parse: %v", s, c, err)
		}
		if again != c {
			t.Fatalf("ParseCommunity(%q) = %v, but its String parses as %v", s, c, again)
		}
		if c.IsLarge() != strings.HasPrefix(s, largePrefix) {
			t.Fatalf("ParseCommunity(%q).IsLarge() = %t", s, c.IsLarge())
		}
		if !c.IsLarge() && (c.parts[0] > 0xffff || c.parts[1] > 0xffff || c.parts[2] != 0) {
			t.Fatalf("ParseCommunity(%q) = %#v: a standard community holds two 16-bit numbers", s, c)
		}
	})
}
