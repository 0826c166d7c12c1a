package graph

import (
	"net/http"
	"strings"
	"time"
)

// Observer is told of every HTTP request a tenant's client makes: the
// operation (see Operation), the status code (0 when no answer came) and
// how long the answer took.
type Observer func(tenant, operation string, code int, d time.Duration)

// Option changes how New builds the clients.
type Option func(*options)

type options struct{ observe Observer }

// WithObserver has every Graph request reported to o.
func WithObserver(o Observer) Option { return func(opts *options) { opts.observe = o } }

// observed is an http.RoundTripper that reports each request.
type observed struct {
	tenant  string
	next    http.RoundTripper
	observe Observer
}

func (o *observed) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := o.next.RoundTrip(req)
	code := 0
	if err == nil {
		code = resp.StatusCode
	}
	o.observe(o.tenant, Operation(req), code, time.Since(start))
	return resp, err
}

// CloseIdleConnections passes on to the wrapped transport, so that the
// client's CloseIdleConnections still works.
func (o *observed) CloseIdleConnections() {
	if c, ok := o.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Operation names a Graph request by what it does, from a small fixed set
// (never from the user or id in its path): token, setPresence,
// clearPresence, setStatusMessage, getPresence, getPresencesByUserId, getUser,
// calendar or other.
func Operation(req *http.Request) string {
	path := strings.TrimSuffix(req.URL.Path, "/")
	last := path[strings.LastIndexByte(path, '/')+1:]
	switch {
	case strings.HasSuffix(path, "/oauth2/v2.0/token"):
		return "token"
	case last == "setPresence" || last == "clearPresence" || last == "setStatusMessage" || last == "getPresencesByUserId":
		return last
	case last == "presence":
		return "getPresence"
	case strings.Contains(path, "/events") || strings.Contains(path, "/calendar"):
		return "calendar"
	}
	if i := strings.LastIndex(path, "/users/"); i >= 0 && !strings.Contains(path[i+len("/users/"):], "/") {
		return "getUser"
	}
	return "other"
}
