package nats

import (
	"errors"
	"fmt"
	"strings"
)

// Token encodes s (a tenant id or domain, a UPN, an object id) as one
// subject token that is also a valid KV key: ASCII letters, digits, '-'
// and '_' stand for themselves; every other byte, '=' included, becomes
// '=' and its two upper-case hex digits. So "contoso.example" is
// "contoso=2Eexample" and "alice@contoso.example" is
// "alice=40contoso=2Eexample". s must not be empty (an empty token is not
// a subject); Token("") is "".
func Token(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := range len(s) {
		c := s[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "=%02X", c)
	}
	return b.String()
}

// ParseToken returns what Token encoded. It accepts only what Token
// writes, so that each string has exactly one token.
func ParseToken(tok string) (string, error) {
	if tok == "" {
		return "", errors.New("empty token")
	}
	var b strings.Builder
	b.Grow(len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case plain(c):
			b.WriteByte(c)
		case c == '=' && i+2 < len(tok) && upperHex(tok[i+1]) && upperHex(tok[i+2]):
			v := unhex(tok[i+1])<<4 | unhex(tok[i+2])
			if plain(v) {
				return "", fmt.Errorf("token %q escapes %q, which stands for itself", tok, v)
			}
			b.WriteByte(v)
			i += 2
		default:
			return "", fmt.Errorf("token %q has %q at %d: only letters, digits, '-', '_' and =XX escapes", tok, c, i)
		}
	}
	return b.String(), nil
}

func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

func upperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}
