// Package emulator is a local stand-in for Microsoft Graph's presence API
// and the Microsoft identity platform's token endpoint.
//
// It is faithful where clients notice: client-credentials tokens with
// roles, Graph's permission checks and error shapes, application presence
// sessions with Graph's aggregation, inactivity timeout and expiration,
// user-preferred presence, per-application throttling with Retry-After,
// gzip request bodies and percent-encoded paths. An admin API under
// /_emulator/ (and the same controls as Go methods) shows each user's
// sessions, simulates Teams clients and manual statuses, seeds calendar
// events, injects latency, failures, throttling and outages, and moves a
// test clock. Everything time-dependent is computed from a Clock when a
// request arrives, so tests drive it with a FakeClock.
package emulator

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Option changes how New builds an Emulator.
type Option func(*Emulator)

// WithClock makes the emulator tell time by c. Without it the emulator
// uses the real time, or, when admin.test_clock is on, the real time plus
// an offset that POST /_emulator/clock/advance can grow.
func WithClock(c Clock) Option { return func(e *Emulator) { e.clock = c } }

// WithLogger sets the logger; by default nothing is logged.
func WithLogger(l *slog.Logger) Option { return func(e *Emulator) { e.log = l } }

// Emulator is the emulated Graph presence service and token endpoint. It is
// an http.Handler; Start serves it on the configured address.
type Emulator struct {
	cfg   Config
	clock Clock
	log   *slog.Logger
	mux   *http.ServeMux

	mu           sync.Mutex
	users        map[string]*userState  // by lower-case object id
	upns         map[string]string      // lower-case UPN or mail → lower-case object id
	groups       map[string]*groupState // by lower-case object id
	apps         map[string]App         // lower-case tenant + "/" + client id → app
	tenants      map[string]bool        // lower-case tenant ids
	signKey      []byte                 // signs access tokens; Reset replaces it
	throttle     *limiter               // the presence actions' budget (throttle)
	readThrottle *limiter               // the presence reads' budget (read_throttle)
	faults       faults
	requests     []RequestRecord
	seq          uint64 // the sequence number counter, never reset
	// counts counts what requests records, by route and status, without
	// ever dropping any.
	counts map[RouteStatus]uint64
	// subs are the change notification subscriptions.
	subs subscriptions

	server serverState
}

// New returns an Emulator for cfg, after applying defaults and validating
// it.
func New(cfg Config, opts ...Option) (*Emulator, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("emulator config: %w", err)
	}
	e := &Emulator{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(e)
	}
	if e.clock == nil {
		e.clock = systemClock{}
		if cfg.Admin.TestClock {
			e.clock = &offsetClock{}
		}
	}
	e.Reset()
	e.routes()
	return e, nil
}

// Reset returns the emulator to its configured start: no sessions,
// preferred presences or calendar events, every issued token invalid,
// throttling windows, faults and the request log cleared.
func (e *Emulator) Reset() {
	now := e.clock.Now()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.users, e.upns, e.apps, e.tenants = map[string]*userState{}, map[string]string{}, map[string]App{}, map[string]bool{}
	e.groups = map[string]*groupState{}
	e.signKey = key
	e.throttle = newLimiter(e.cfg.Throttle)
	e.readThrottle = newLimiter(e.cfg.ReadThrottle)
	e.faults = faults{}
	e.requests, e.counts = nil, nil
	e.subs = subscriptions{byID: map[string]*Subscription{}}
	for _, t := range e.cfg.Tenants {
		tenant := strings.ToLower(t.ID)
		e.tenants[tenant] = true
		for _, a := range t.Apps {
			e.apps[tenant+"/"+a.ClientID] = a
		}
		for _, u := range t.Users {
			id := strings.ToLower(u.ID)
			e.users[id] = newUserState(u, tenant, &e.seq, now)
			e.upns[strings.ToLower(u.UserPrincipalName)] = id
			if u.Mail != "" {
				e.upns[strings.ToLower(u.Mail)] = id
			}
		}
		for _, g := range t.Groups {
			e.groups[strings.ToLower(g.ID)] = &groupState{group: Group{ID: g.ID, DisplayName: g.DisplayName}, tenant: tenant, members: map[string]bool{}}
		}
	}
	for _, t := range e.cfg.Tenants { // members once every group exists (Validate checked them)
		for _, g := range t.Groups {
			gs := e.groups[strings.ToLower(g.ID)]
			for _, m := range g.Members {
				gs.add(strings.ToLower(m))
			}
		}
	}
}

// Now returns the emulator's time.
func (e *Emulator) Now() time.Time { return e.clock.Now() }

// isGraphPath tells whether a path is one of Graph's (as opposed to the
// token endpoint or the admin API).
func isGraphPath(path string) bool {
	return strings.HasPrefix(path, "/v1.0/") || strings.HasPrefix(path, "/beta/") || path == "/v1.0" || path == "/beta"
}

// ServeHTTP serves the emulated Graph API, the token endpoint and the admin
// API. Every request gets a request-id header; Graph requests pass through
// the injected latency and outage first; every request except the admin
// API's is written to the request log.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	started := time.Now()
	body, err := readBody(r)
	encoding := r.Header.Get("Content-Encoding")
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.Header.Del("Content-Encoding")
	m := requestMeta{id: newID(), clientRequestID: r.Header.Get("client-request-id"), now: e.clock.Now(), body: body}
	if m.clientRequestID == "" {
		m.clientRequestID = m.id
	}
	w.Header().Set("request-id", m.id)
	w.Header().Set("client-request-id", m.clientRequestID)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	r = withMeta(r, m)
	admin := strings.HasPrefix(r.URL.Path, "/_emulator/")

	switch {
	case errors.Is(err, errBodyTooLarge):
		writeError(rec, r, &apiError{status: http.StatusRequestEntityTooLarge, code: "RequestEntityTooLarge", message: "The request body is too large."})
	case err != nil:
		writeError(rec, r, badRequest("BadRequest", "The request body could not be read: %v.", err))
	case isGraphPath(r.URL.Path) && !e.delay(r):
		writeError(rec, r, &apiError{status: http.StatusServiceUnavailable, code: "serviceNotAvailable", message: "The request was cancelled while delayed."})
	default:
		if outage := isGraphPath(r.URL.Path) && e.inOutage(m.now); outage {
			writeError(rec, r, &apiError{status: http.StatusServiceUnavailable, code: "serviceNotAvailable",
				message: "The service is temporarily unavailable. Please retry later.", retryAfter: "1"})
		} else {
			e.mux.ServeHTTP(rec, r)
		}
	}
	if admin {
		return
	}
	e.countRequest(r, rec.status)
	e.logRequest(RequestRecord{
		Time: m.now, Method: r.Method, Path: r.URL.Path, Query: redactBody(r.URL.Path, []byte(r.URL.RawQuery)), Status: rec.status,
		Body: redactBody(r.URL.Path, body), ContentEncoding: encoding, RequestID: m.id,
		RetryAfter: rec.Header().Get("Retry-After"),
	})
	e.log.Debug("graph emulator request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
		"request_id", m.id, "duration", time.Since(started))
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

// WriteHeader records status and passes it on.
func (r *statusRecorder) WriteHeader(status int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

// Write passes b on, recording an implicit 200.
func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}
