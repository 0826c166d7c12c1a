package nats

import (
	"strings"
	"testing"
)

// TestToken: dotted domains and UPNs become one token each, made only of
// characters valid in a subject token and a KV key, and decode back.
func TestToken(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"contoso.example", "contoso=2Eexample"},
		{"alice.smith@contoso.example", "alice=2Esmith=40contoso=2Eexample"},
		{"4ae1f0d6-0000-4000-8000-000000000001", "4ae1f0d6-0000-4000-8000-000000000001"},
		{"a=b", "a=3Db"},
		{"*", "=2A"},
		{">", "=3E"},
		{"x y\tz", "x=20y=09z"},
		{"é", "=C3=A9"},
		{"UPPER_lower-1", "UPPER_lower-1"},
	} {
		got := Token(c.in)
		if got != c.want {
			t.Errorf("Token(%q) = %q, want %q", c.in, got, c.want)
		}
		if back, err := ParseToken(got); back != c.in || err != nil {
			t.Errorf("ParseToken(%q) = %q, %v", got, back, err)
		}
	}
}

// TestParseTokenRefuses: only what Token writes is a token.
func TestParseTokenRefuses(t *testing.T) {
	for _, tok := range []string{"", "a.b", "=2e", "=4", "=", "=41", "a b", "a@b", "=ZZ"} {
		if s, err := ParseToken(tok); err == nil {
			t.Errorf("ParseToken(%q) = %q, want an error", tok, s)
		}
	}
}

// validToken reports whether tok is one NATS subject token and a valid KV
// key: no dot, no wildcard, nothing outside [-_=a-zA-Z0-9].
func validToken(tok string) bool {
	return tok != "" && strings.Trim(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=") == ""
}

// FuzzToken: every non-empty string is one valid token that decodes to
// it; every token that decodes is the one its string encodes to.
func FuzzToken(f *testing.F) {
	for _, s := range []string{"contoso.example", "alice@contoso.example", "*", ">", "=41", "\xff", "a.b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s != "" {
			tok := Token(s)
			if !validToken(tok) {
				t.Fatalf("Token(%q) = %q is not a valid token", s, tok)
			}
			if back, err := ParseToken(tok); back != s || err != nil {
				t.Fatalf("ParseToken(Token(%q)) = %q, %v", s, back, err)
			}
		}
		if back, err := ParseToken(s); err == nil && Token(back) != s {
			t.Fatalf("ParseToken(%q) = %q, which encodes to %q", s, back, Token(back))
		}
	})
}
