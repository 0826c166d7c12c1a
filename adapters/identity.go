package adapters

import (
	"strings"
)

// NormalizeIdentity puts the ways sources name a person into one form, so
// that directory keys match whatever a vendor sends:
//
//	"Alice@Contoso.Example"            → "alice@contoso.example"
//	"sip:alice@example.com;transport=tls" → "alice@example.com"
//	"sip:+1 555 123 4567@pbx;user=phone"  → "tel:+15551234567"
//	"tel:+1-555-123-4567", "+1 (555) 123-4567", "0015551234567" → "tel:+15551234567"
//	"EXT:1001"                         → "ext:1001"
//	"client:Alice"                     → "client:alice"
//
// Anything else is trimmed and lower-cased. Nested forms ("sip:tel:...")
// are unwrapped until nothing changes, so the result is stable.
func NormalizeIdentity(s string) string {
	for range len(s) + 2 {
		next := normalizeOnce(s)
		if next == s {
			break
		}
		s = next
	}
	return s
}

func normalizeOnce(s string) string {
	s = strings.TrimSpace(s)
	lower := strings.ToLower(s)
	if isGUID(lower) {
		return lower // an object id, even one of digits only
	}
	for _, prefix := range []string{"sips:", "sip:"} {
		if rest, ok := strings.CutPrefix(lower, prefix); ok {
			rest, _, _ = strings.Cut(rest, ";")
			rest, _, _ = strings.Cut(rest, "?")
			user, host, hasHost := strings.Cut(rest, "@")
			if phone, ok := phoneNumber(user); ok {
				return "tel:" + phone
			}
			if !hasHost {
				return user
			}
			return user + "@" + host
		}
	}
	if rest, ok := strings.CutPrefix(lower, "tel:"); ok {
		rest, _, _ = strings.Cut(rest, ";")
		if phone, ok := phoneNumber(rest); ok {
			return "tel:" + phone
		}
		return "tel:" + rest
	}
	if phone, ok := phoneNumber(lower); ok {
		return "tel:" + phone
	}
	return lower
}

// phoneNumber reads a dialled number written with spaces, dashes, dots or
// parentheses; "00" becomes "+". It reports false for anything that is not
// a number of at least three digits.
func phoneNumber(s string) (string, bool) {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", false
		}
	}
	n := b.String()
	if strings.HasPrefix(n, "00") {
		n = "+" + n[2:]
	}
	digits := strings.TrimPrefix(n, "+")
	if len(digits) < 3 || strings.Contains(digits, "+") {
		return "", false
	}
	return n, true
}

// IdentityHints complete the identities one source emits, for sources
// that leave out what the directory needs.
type IdentityHints struct {
	// CountryCode (digits, such as "1" or "49") turns national numbers
	// without a leading + into E.164: "tel:5551230001" → "tel:+15551230001".
	CountryCode string `yaml:"country_code"`
	// Domain turns bare user names into emails: "client:alice" and
	// "alice" → "alice@<domain>".
	Domain string `yaml:"domain"`
}

// Apply returns user completed by the hints, normalised.
func (h IdentityHints) Apply(user string) string {
	user = NormalizeIdentity(user)
	if rest, ok := strings.CutPrefix(user, "tel:"); ok && h.CountryCode != "" && !strings.HasPrefix(rest, "+") && len(rest) >= 7 {
		return "tel:+" + strings.TrimPrefix(h.CountryCode, "+") + strings.TrimPrefix(rest, "0")
	}
	if h.Domain != "" {
		name := strings.TrimPrefix(user, "client:")
		if name != "" && !strings.ContainsAny(name, ":@") && !isGUID(name) {
			return name + "@" + strings.ToLower(h.Domain)
		}
	}
	return user
}

// isGUID reports whether s looks like an Entra object id.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdef", r) {
				return false
			}
		}
	}
	return true
}
