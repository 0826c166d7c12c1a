package graphclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidArgument is a call refused before any request: an empty user
// id, an expiration out of range.
var ErrInvalidArgument = errors.New("invalid argument")

// ErrInvalidExpiration is an expiration outside Graph's PT5M to PT4H. It
// wraps ErrInvalidArgument.
var ErrInvalidExpiration = fmt.Errorf("%w: expiration must be between 5m and 4h", ErrInvalidArgument)

// ErrPresenceUnavailable is a presence call in a cloud that has no presence
// API (China, operated by 21Vianet).
var ErrPresenceUnavailable = errors.New("presence is not available in this cloud")

// Limits on what an error keeps from an answer.
const (
	maxMessage = 512
	maxField   = 128
)

// Error is an error answer from Graph, typed.
type Error struct {
	// Op says what was being done, such as "set presence for <user id>".
	Op string
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is Graph's error code, such as TooManyRequests or Forbidden.
	Code string
	// Message is Graph's message, or the start of a body that was not
	// Graph's error JSON.
	Message string
	// RequestID and ClientRequestID identify the request to Microsoft
	// support; ClientRequestID is the one this client sent when Graph did
	// not echo one.
	RequestID, ClientRequestID string
	// RetryAfter is the wait asked for in a Retry-After header, or 0.
	RetryAfter time.Duration
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: graph answered %d", e.Op, e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	} else if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after " + e.RetryAfter.String() + ")")
	}
	if e.RequestID != "" {
		b.WriteString(" (request-id " + e.RequestID + ")")
	}
	return b.String()
}

// NetworkError is a Graph request that got no answer: refused, reset, timed
// out or cancelled.
type NetworkError struct {
	Op  string
	Err error
}

// Error implements error.
func (e *NetworkError) Error() string { return e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause, such as context.DeadlineExceeded.
func (e *NetworkError) Unwrap() error { return e.Err }

// graphErrorBody is Graph's error shape.
type graphErrorBody struct {
	Error *struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			RequestID       string `json:"request-id"`
			ClientRequestID string `json:"client-request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

// parseError builds an *Error from a non-2xx answer: Graph's error JSON when
// the body is that, else the start of the body as the message. Every string
// kept is valid UTF-8, on one line, bounded, and free of the scrub strings
// (the secret and the token).
func parseError(op string, status int, header http.Header, body []byte, now time.Time, scrub ...string) *Error {
	e := &Error{
		Op:              op,
		StatusCode:      status,
		RequestID:       clean(header.Get("request-id"), maxField, scrub),
		ClientRequestID: clean(header.Get("client-request-id"), maxField, scrub),
		RetryAfter:      ParseRetryAfter(header.Get("Retry-After"), now),
	}
	var parsed graphErrorBody
	if json.Unmarshal(body, &parsed) == nil && parsed.Error != nil && (parsed.Error.Code != "" || parsed.Error.Message != "") {
		e.Code = clean(parsed.Error.Code, maxField, scrub)
		e.Message = clean(parsed.Error.Message, maxMessage, scrub)
		if id := clean(parsed.Error.InnerError.RequestID, maxField, scrub); id != "" {
			e.RequestID = id
		}
		if id := clean(parsed.Error.InnerError.ClientRequestID, maxField, scrub); id != "" {
			e.ClientRequestID = id
		}
		return e
	}
	if len(body) > 4*maxMessage {
		body = body[:4*maxMessage]
	}
	e.Message = clean(string(body), maxMessage, scrub)
	return e
}

// clean makes s fit for an error string: secrets removed, valid UTF-8,
// control characters and runs of spaces turned into one space, at most max
// bytes (plus "...").
func clean(s string, max int, scrub []string) string {
	s = scrubAll(s, scrub)
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	s = scrubAll(s, scrub) // the secret may have been split by what was removed
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// scrubAll replaces each non-empty scrub string in s.
func scrubAll(s string, scrub []string) string {
	for _, secret := range scrub {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// MaxRetryAfter caps the wait ParseRetryAfter returns, so a bogus header
// can not pause a tenant for days.
const MaxRetryAfter = time.Hour

// ParseRetryAfter reads a Retry-After value: delay seconds, possibly
// fractional as Graph sends them ("2.128"), or an HTTP date. It returns 0
// when v is empty, invalid, negative or a date not after now, and at most
// MaxRetryAfter.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if isDecimal(v) {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || !(secs > 0) { // also rejects NaN
			return 0
		}
		if secs >= MaxRetryAfter.Seconds() {
			return MaxRetryAfter
		}
		return time.Duration(math.Round(secs * float64(time.Second)))
	}
	t, err := http.ParseTime(v)
	if err != nil || !t.After(now) {
		return 0
	}
	return min(t.Sub(now), MaxRetryAfter)
}

// isDecimal reports whether v is digits with at most one decimal point
// between digits.
func isDecimal(v string) bool {
	digits, dot := 0, -1
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && dot < 0 && digits > 0:
			dot = i
		default:
			return false
		}
	}
	return digits > 0 && dot != len(v)-1
}

// RetryAfter returns the wait Graph or the token endpoint asked for with
// err (a 429 or 503 with Retry-After), or 0.
func RetryAfter(err error) time.Duration {
	var gerr *Error
	if errors.As(err, &gerr) {
		return gerr.RetryAfter
	}
	var terr *TokenError
	if errors.As(err, &terr) {
		return terr.RetryAfter
	}
	return 0
}
