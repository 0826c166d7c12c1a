package guid

import "testing"

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

// FuzzParse: whatever Parse accepts comes back the same.
func FuzzParse(f *testing.F) {
	f.Add("3a7c0000-0000-4000-8000-00000000002a")
	f.Add("3A7C0000-0000-4000-8000-00000000002A")
	f.Fuzz(func(t *testing.T, s string) {
		if g, ok := Parse(s); ok && g.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, g.String())
		}
	})
}
