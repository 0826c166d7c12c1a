package lookup

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of what a lookup request may carry.
const (
	// MaxUser bounds a user key, and a tenant, in bytes.
	MaxUser = 256
	// MaxWait bounds ?wait=.
	MaxWait = 60 * time.Second
	// MaxIfNoneMatch bounds the If-None-Match header in bytes.
	MaxIfNoneMatch = 256
	// DefaultLimit and MaxLimit are GET /v1/presence's ?limit=.
	DefaultLimit = 100
	MaxLimit     = 1000
)

// ParseUser checks a user key (a UPN, an object id or a directory key)
// as given in a request, and returns it without surrounding spaces.
func ParseUser(s string) (string, error) {
	if len(s) > MaxUser {
		return "", fmt.Errorf("longer than %d bytes", MaxUser)
	}
	if !utf8.ValidString(s) {
		return "", errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "", fmt.Errorf("contains the control character %U", r)
		}
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty")
	}
	return s, nil
}

// ParseWait parses ?wait=: a Go duration from zero up to MaxWait; empty
// means zero.
func ParseWait(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a duration such as 30s")
	}
	if d < 0 {
		return 0, errors.New("negative")
	}
	if d > MaxWait {
		return 0, fmt.Errorf("over %s", MaxWait)
	}
	return d, nil
}

// ParseLimit parses ?limit=: 1 to MaxLimit; empty means DefaultLimit.
func ParseLimit(s string) (int, error) {
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, fmt.Errorf("not a whole number from 1 to %d", MaxLimit)
	}
	return n, nil
}

// Match is a parsed If-None-Match header.
type Match struct {
	// Any is "*": every current view matches.
	Any bool
	// Tags are the opaque parts of the entity tags, without quotes or W/
	// (If-None-Match compares weakly).
	Tags []string
}

// Matches reports whether etag (quoted, as ETag returns it) is one m
// names.
func (m Match) Matches(etag string) bool {
	if m.Any {
		return true
	}
	opaque := strings.Trim(etag, `"`)
	for _, t := range m.Tags {
		if t == opaque {
			return true
		}
	}
	return false
}

// Empty reports whether the header was absent.
func (m Match) Empty() bool { return !m.Any && len(m.Tags) == 0 }

// ParseIfNoneMatch parses an If-None-Match header (RFC 9110 13.1.2): "*"
// or a comma-separated list of entity tags, each "opaque" or W/"opaque".
// An empty header is an empty Match.
func ParseIfNoneMatch(h string) (Match, error) {
	if len(h) > MaxIfNoneMatch {
		return Match{}, fmt.Errorf("longer than %d bytes", MaxIfNoneMatch)
	}
	h = strings.Trim(h, " \t")
	if h == "" {
		return Match{}, nil
	}
	if h == "*" {
		return Match{Any: true}, nil
	}
	var m Match
	for part := range strings.SplitSeq(h, ",") {
		part = strings.Trim(part, " \t")
		if part == "" {
			continue // RFC 9110 5.6.1: empty list elements are ignored
		}
		part = strings.TrimPrefix(part, "W/")
		if len(part) < 2 || part[0] != '"' || part[len(part)-1] != '"' {
			return Match{}, fmt.Errorf("%q is not a quoted entity tag", part)
		}
		opaque := part[1 : len(part)-1]
		for i := 0; i < len(opaque); i++ {
			// etagc = %x21 / %x23-7E / obs-text
			if c := opaque[i]; c < 0x21 || c == '"' || c == 0x7f {
				return Match{}, fmt.Errorf("entity tag %q holds a character it may not", part)
			}
		}
		m.Tags = append(m.Tags, opaque)
	}
	if len(m.Tags) == 0 {
		return Match{}, errors.New("no entity tag")
	}
	return m, nil
}
