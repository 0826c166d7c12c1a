package emulator

import (
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// RequestRecord is one request as the emulator saw it: Graph and token
// requests are recorded, admin API requests are not. Bodies are stored
// decompressed; token requests have their secrets replaced.
type RequestRecord struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Query  string    `json:"query,omitempty"`
	Status int       `json:"status"`
	Body   string    `json:"body,omitempty"`
	// ContentEncoding is how the body came, such as gzip.
	ContentEncoding string `json:"contentEncoding,omitempty"`
	RequestID       string `json:"requestId"`
	// RetryAfter is the Retry-After header of the answer, if any.
	RetryAfter string `json:"retryAfter,omitempty"`
}

// Request log bounds.
const (
	maxRequestLog     = 10000
	maxRecordedBody   = 8 << 10
	redactedParameter = "REDACTED"
)

func (e *Emulator) logRequest(rec RequestRecord) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.requests) >= maxRequestLog {
		// Drop the oldest tenth at once, so that a full log costs one copy
		// per thousand requests.
		n := copy(e.requests, e.requests[maxRequestLog/10:])
		e.requests = e.requests[:n]
	}
	e.requests = append(e.requests, rec)
}

// RouteStatus names one of RequestCounts: the route that took the
// requests, as its pattern (such as
// "POST /v1.0/users/{id}/presence/setPresence"; "/" for requests no route
// takes), and the status they were answered with.
type RouteStatus struct {
	Route  string
	Status int
}

// countRequest counts r, answered with status, under its route.
func (e *Emulator) countRequest(r *http.Request, status int) {
	_, route := e.mux.Handler(r)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts == nil {
		e.counts = map[RouteStatus]uint64{}
	}
	e.counts[RouteStatus{Route: route, Status: status}]++
}

// RequestCounts returns how many requests each route answered with each
// status since the emulator started, was reset or had its request log
// cleared. Requests the log records are counted, admin API requests are
// not. Unlike the log, the counts are never truncated, so they tell how
// many Graph writes a long run made.
func (e *Emulator) RequestCounts() map[RouteStatus]uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.counts)
}

// Requests returns a copy of the request log, oldest first (at most the
// last 10,000 requests; RequestCounts counts them all).
func (e *Emulator) Requests() []RequestRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]RequestRecord(nil), e.requests...)
}

// redactBody returns the body (or query) to record: a token request's form
// with its secret and assertion replaced, anything else as it came
// (bounded).
func redactBody(path string, body []byte) string {
	s := string(body)
	if s != "" && strings.HasSuffix(path, "/oauth2/v2.0/token") {
		form, err := url.ParseQuery(s)
		if err != nil {
			return "[unreadable token request]"
		}
		for _, secret := range []string{"client_secret", "client_assertion", "password", "assertion", "refresh_token"} {
			if form.Has(secret) {
				form.Set(secret, redactedParameter)
			}
		}
		s = form.Encode()
	}
	if len(s) > maxRecordedBody {
		s = s[:maxRecordedBody] + "...[truncated]"
	}
	return s
}
