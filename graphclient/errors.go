package graphclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Error is an error answer from Graph, typed.
type Error struct {
	Op              string
	StatusCode      int
	Code            string
	Message         string
	RequestID       string
	ClientRequestID string
	RetryAfter      time.Duration
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: graph answered %d", e.Op, e.StatusCode)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RequestID != "" {
		msg += " (request-id " + e.RequestID + ")"
	}
	return msg
}

// NetworkError is a request that got no answer: refused, reset, timed out.
type NetworkError struct {
	Op  string
	Err error
}

func (e *NetworkError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *NetworkError) Unwrap() error { return e.Err }

// TokenError is a failure to get an access token.
type TokenError struct {
	Tenant     string
	StatusCode int
	Code       string // such as invalid_client
	AADSTS     string // such as AADSTS7000215
	Err        error
}

func (e *TokenError) Error() string {
	msg := "get token for tenant " + e.Tenant
	switch {
	case e.StatusCode != 0:
		msg += fmt.Sprintf(": identity platform answered %d %s", e.StatusCode, e.Code)
		if e.AADSTS != "" {
			msg += " (" + e.AADSTS + ")"
		}
	case e.Err != nil:
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *TokenError) Unwrap() error { return e.Err }

// tokenError turns an oauth2 failure into a TokenError that carries the
// identity platform's error code but never its raw body or the secret.
func tokenError(tenant string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		te := &TokenError{Tenant: tenant, StatusCode: re.Response.StatusCode, Code: re.ErrorCode}
		if i := strings.Index(re.ErrorDescription, "AADSTS"); i >= 0 {
			code := re.ErrorDescription[i:]
			if j := strings.IndexAny(code, ": "); j > 0 {
				code = code[:j]
			}
			te.AADSTS = code
		}
		return te
	}
	return &TokenError{Tenant: tenant, Err: redactURLError(err)}
}

// redactURLError keeps the failed URL's path but drops its query, where
// secrets could travel.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, perr := url.Parse(ue.URL)
		if perr == nil {
			u.RawQuery, u.User = "", nil
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
	}
	return err
}

// graphErrorBody is Graph's error shape.
type graphErrorBody struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			RequestID       string `json:"request-id"`
			ClientRequestID string `json:"client-request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

// parseError builds an *Error from a non-2xx answer.
func parseError(op string, resp *http.Response, body []byte) *Error {
	e := &Error{Op: op, StatusCode: resp.StatusCode, RequestID: resp.Header.Get("request-id"), RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var parsed graphErrorBody
	if json.Unmarshal(body, &parsed) == nil && parsed.Error.Code != "" {
		e.Code, e.Message = parsed.Error.Code, parsed.Error.Message
		if parsed.Error.InnerError.RequestID != "" {
			e.RequestID = parsed.Error.InnerError.RequestID
		}
		e.ClientRequestID = parsed.Error.InnerError.ClientRequestID
	} else {
		text := strings.TrimSpace(string(body))
		if len(text) > 200 {
			text = text[:200]
		}
		e.Message = text
	}
	return e
}

// ParseRetryAfter reads a Retry-After value: seconds (possibly fractional,
// such as "2.128") or an HTTP date. It returns 0 when absent or invalid.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if !(secs > 0 && secs <= 24*3600) { // also rejects NaN
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Class says how a caller should treat an error.
type Class int

// Classes of errors.
const (
	// OK is no error.
	OK Class = iota
	// Retryable errors may pass: 5xx, 408, timeouts, network errors.
	Retryable
	// Throttled is a 429; wait for RetryAfter.
	Throttled
	// Permanent errors will not pass by waiting: other 4xx.
	Permanent
)

// Classify is the one place where Graph errors are sorted.
func Classify(err error) Class {
	if err == nil {
		return OK
	}
	var gerr *Error
	if errors.As(err, &gerr) {
		switch {
		case gerr.StatusCode == http.StatusTooManyRequests:
			return Throttled
		case gerr.StatusCode >= 500, gerr.StatusCode == http.StatusRequestTimeout:
			return Retryable
		default:
			return Permanent
		}
	}
	if errors.Is(err, ErrInvalidExpiration) {
		return Permanent
	}
	// Network errors, timeouts and token failures are retried: a wrong
	// secret is an outage to fix in the configuration, not a reason to
	// drop events.
	return Retryable
}

// RetryAfter returns the wait Graph asked for with err, or 0.
func RetryAfter(err error) time.Duration {
	var gerr *Error
	if errors.As(err, &gerr) {
		return gerr.RetryAfter
	}
	return 0
}
