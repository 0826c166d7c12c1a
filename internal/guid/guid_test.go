package guid

import (
	"strings"
	"testing"
)

// TestParse: a lowercase canonical GUID is kept and given back the same;
// anything else is not a GUID.
func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"3a7c0000-0000-4000-8000-00000000002a", true},
		{"ffffffff-ffff-ffff-ffff-ffffffffffff", true},
		{"3A7C0000-0000-4000-8000-00000000002A", false}, // upper case would not come back the same
		{"3a7c0000x0000-4000-8000-00000000002a", false},
		{"3a7c0000-0000-4000-8000-00000000002g", false},
		{"3a7c0000-0000-4000-8000-00000000002", false},
		{"u1", false},
		{"", false},
	}
	for _, tt := range tests {
		g, ok := Parse(tt.in)
		if ok != tt.want {
			t.Errorf("Parse(%q) = %v, want %v", tt.in, ok, tt.want)
		}
		if ok && g.String() != tt.in {
			t.Errorf("Parse(%q).String() = %q", tt.in, g.String())
		}
	}
}

// FuzzParse: a string parses as a GUID exactly when it is one in
// lowercase canonical form, which String gives back; GUIDs order as
// their canonical forms do.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"3a7c0000-0000-4000-8000-00000000002a", "3A7C0000-0000-4000-8000-00000000002A", "", "not-a-guid",
		"00000000-0000-4000-8000-00000000000g", "000000000000-4000-8000-0000000000001"} {
		f.Add(s, "ffffffff-0000-4000-8000-000000000000")
	}
	f.Fuzz(func(t *testing.T, s, other string) {
		g, ok := Parse(s)
		if ok != canonical(s) {
			t.Fatalf("Parse(%q) = %t", s, ok)
		}
		if !ok {
			return
		}
		if g.String() != s || g.CompareString(s) != 0 {
			t.Fatalf("Parse(%q) gives back %q", s, g.String())
		}
		if g.CompareString(other) != strings.Compare(s, other) {
			t.Fatalf("%q against %q: %d, want %d", s, other, g.CompareString(other), strings.Compare(s, other))
		}
		if h, ok := Parse(other); ok && Compare(g, h) != strings.Compare(s, other) {
			t.Fatalf("Compare(%q, %q) = %d", s, other, Compare(g, h))
		}
	})
}

// canonical reports whether s is a GUID in lowercase canonical form.
func canonical(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !strings.ContainsRune("0123456789abcdef", c):
			return false
		}
	}
	return true
}
