// Package emulator is a local stand-in for Microsoft Graph's presence API
// and the identity platform's token endpoint, faithful enough for the
// bridge's tests and demos: application sessions with Graph's aggregation,
// timeouts and expiration, throttling, Graph's error shapes, and an admin
// API under /_emulator/ to inspect state and inject faults.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Clock tells the time; tests use a FakeClock.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// FakeClock is a Clock that moves only when told to.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a FakeClock set to t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{now: t} }

// Now returns the fake time.
func (c *FakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Advance moves the fake time forward by d.
func (c *FakeClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// Option changes how an Emulator is built.
type Option func(*Emulator)

// WithClock sets the clock.
func WithClock(c Clock) Option { return func(e *Emulator) { e.clock = c } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Emulator) { e.log = l } }

// Emulator is a running (or ready to run) Graph emulator.
type Emulator struct {
	cfg   Config
	clock Clock
	log   *slog.Logger
	mux   *http.ServeMux

	mu       sync.Mutex
	users    map[string]*userState // by object id
	upns     map[string]string     // lower-case UPN or mail → object id
	apps     map[string]App        // tenant/client id → app
	tenants  map[string]bool
	tokens   map[string]tokenInfo
	windows  map[string]*window // tenant/client id → throttle window
	faults   faults
	requests []RequestRecord
	nextID   uint64

	listener net.Listener
	server   *http.Server
}

// RequestRecord is one request as the emulator saw it.
type RequestRecord struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
	Body   string    `json:"body,omitempty"`
}

// maxRequestLog bounds the request log.
const maxRequestLog = 10000

// New returns an Emulator for cfg.
func New(cfg Config, opts ...Option) (*Emulator, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("emulator config: %w", err)
	}
	e := &Emulator{cfg: cfg, clock: systemClock{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		o(e)
	}
	e.reset()
	e.routes()
	return e, nil
}

// reset forgets all presence, tokens, faults and the request log, and
// seeds the configured tenants, apps and users.
func (e *Emulator) reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.users, e.upns, e.apps = map[string]*userState{}, map[string]string{}, map[string]App{}
	e.tenants, e.tokens, e.windows = map[string]bool{}, map[string]tokenInfo{}, map[string]*window{}
	e.faults, e.requests = faults{}, nil
	for _, t := range e.cfg.Tenants {
		e.tenants[strings.ToLower(t.ID)] = true
		for _, a := range t.Apps {
			e.apps[strings.ToLower(t.ID)+"/"+a.ClientID] = a
		}
		for _, u := range t.Users {
			id := strings.ToLower(u.ID)
			e.users[id] = &userState{user: u, tenant: strings.ToLower(t.ID), sessions: map[string]*session{}}
			e.upns[strings.ToLower(u.UserPrincipalName)] = id
			if u.Mail != "" {
				e.upns[strings.ToLower(u.Mail)] = id
			}
		}
	}
}

// Reset returns the emulator to its configured start.
func (e *Emulator) Reset() { e.reset() }

// Start listens on the configured address and serves until Close.
func (e *Emulator) Start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", e.cfg.Listen)
	if err != nil {
		return fmt.Errorf("emulator listen: %w", err)
	}
	e.listener = ln
	e.server = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := e.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("emulator server", "err", err)
		}
	}()
	return nil
}

// Addr returns the address served on, once started.
func (e *Emulator) Addr() string {
	if e.listener == nil {
		return ""
	}
	return e.listener.Addr().String()
}

// GraphURL returns the base URL of the emulated Graph v1.0 endpoint.
func (e *Emulator) GraphURL() string { return "http://" + e.Addr() + "/v1.0" }

// Close stops serving.
func (e *Emulator) Close() error {
	if e.server == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := e.server.Shutdown(ctx); err != nil {
		return e.server.Close()
	}
	return nil
}

// ServeHTTP serves the emulated Graph, token endpoint and admin API.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	body, err := readBody(r)
	if err != nil {
		writeGraphError(rec, r, http.StatusBadRequest, "BadRequest", err.Error(), e.clock.Now())
	} else {
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		e.mux.ServeHTTP(rec, r)
	}
	if !strings.HasPrefix(r.URL.Path, "/_emulator/") {
		e.logRequest(RequestRecord{Time: e.clock.Now(), Method: r.Method, Path: r.URL.Path, Status: rec.status, Body: redactBody(string(body))})
	}
}

func (e *Emulator) logRequest(rec RequestRecord) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.requests) >= maxRequestLog {
		e.requests = e.requests[1:]
	}
	e.requests = append(e.requests, rec)
}

// Requests returns a copy of the request log, oldest first.
func (e *Emulator) Requests() []RequestRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]RequestRecord(nil), e.requests...)
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// redactBody keeps client secrets out of the request log.
func redactBody(body string) string {
	if strings.Contains(body, "client_secret=") {
		return "[token request]"
	}
	return body
}
