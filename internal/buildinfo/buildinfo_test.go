package buildinfo

import "testing"

func TestResolveKeepsStampedValues(t *testing.T) {
	v, rev := Resolve("v1.2.3", "abc123def456")
	if v != "v1.2.3" || rev != "abc123def456" {
		t.Fatalf("Resolve = %q, %q; want the stamped values", v, rev)
	}
}

func TestResolveFillsTheRest(t *testing.T) {
	// A test binary has build information but no VCS stamp: the version
	// is Go's "(devel)" or empty, the revision unknown; never empty.
	v, rev := Resolve("", "")
	if v == "" || rev == "" {
		t.Fatalf("Resolve = %q, %q; want both filled", v, rev)
	}
	if _, rev := Resolve("v1", ""); rev == "" {
		t.Fatal("revision left empty")
	}
}
