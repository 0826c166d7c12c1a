// Package ingest is the bridge's HTTP front: the canonical events endpoint,
// one webhook endpoint per configured source adapter, health and readiness.
// An event is answered 2xx only once JetStream has stored it.
package ingest

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
	"github.com/presence-bridge/presence-bridge/bridge/internal/logthrottle"
)

// Publisher stores events durably; it returns once they are stored.
type Publisher interface {
	Publish(ctx context.Context, events []adapters.Event) error
}

// Source is one configured source as the HTTP front sees it.
type Source struct {
	Name string
	// Token is the bearer token accepted on POST /v1/events for this
	// source's events; empty means the source can not use that endpoint.
	Token string
	// Path is the source's webhook path and Adapter decodes what arrives
	// there; a nil Adapter serves no webhook.
	Path    string
	Adapter adapters.Adapter
}

// Options configure the router.
type Options struct {
	Publisher Publisher
	Sources   []Source
	// Live, when set, is served instead of Sources, so that a reload can
	// swap the sources' credentials and adapters (see SourceSet).
	Live      *SourceSet
	BodyLimit int64
	// Ready reports whether the bridge can take events (JetStream up).
	Ready func(ctx context.Context) error
	// Down, when set, reports why events can not be stored right now (the
	// NATS connection is known to be lost), or nil. While it does, events
	// are answered 503 at once instead of after the publish timeout.
	Down func() error
	// MaxFutureSkew bounds how far ahead of now an event's occurredAt may
	// be on /v1/events (webhook adapters bound it themselves); zero means
	// adapters.DefaultMaxFutureSkew.
	MaxFutureSkew time.Duration
	// RetryAfter is what 503 answers advise.
	RetryAfter time.Duration
	// DuplicateWindow is how long JetStream recognises a retried event id
	// (nats.duplicate_window); 503 answers quote it.
	DuplicateWindow time.Duration
	Log             *slog.Logger
	// Count, when set, counts each answered request by route and status.
	Count func(route string, status int)
	// Observe, when set, is told of every answered request to a source's
	// endpoints (its webhook, or /v1/events with its token): the source
	// (UnknownSource when the bearer token matched none), the status, and
	// for a 4xx answer why the request was rejected (see rejectionReason).
	Observe func(source string, status int, reason string)
	// Accepted, when set, is told how many of a source's events were just
	// stored.
	Accepted func(source string, n int)
}

// UnknownSource names the source of a request to /v1/events whose bearer
// token matched no source.
const UnknownSource = "unknown"

// NewRouter returns the HTTP handler.
func NewRouter(opts Options) *gin.Engine {
	if opts.Count == nil {
		opts.Count = func(string, int) {}
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 5 * time.Second
	}
	if opts.Observe == nil {
		opts.Observe = func(string, int, string) {}
	}
	if opts.Accepted == nil {
		opts.Accepted = func(string, int) {}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	if opts.Live == nil {
		opts.Live = NewSourceSet(opts.Sources)
	}
	h := &handler{opts: opts, rejections: logthrottle.New(rejectionLogEvery)}
	r.Use(h.recover, h.count)
	r.NoRoute(func(c *gin.Context) { writeError(c, http.StatusNotFound, "not_found", "no such endpoint", nil) })
	r.NoMethod(func(c *gin.Context) {
		writeError(c, http.StatusMethodNotAllowed, "method_not_allowed", "method "+c.Request.Method+" is not allowed here", nil)
	})
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", h.ready)
	r.POST("/v1/events", h.events)
	for _, s := range opts.Live.Sources() {
		if s.Adapter == nil {
			continue
		}
		hook := &hookHandler{handler: h, source: s}
		r.POST(s.Path, hook.serve)
		r.GET(s.Path, hook.serve) // handshakes (Graph validationToken) and Twilio GET callbacks
	}
	return r
}

type handler struct {
	opts Options

	// Failed publishes are logged once per failedLogEvery with a count,
	// so an outage does not flood the log.
	failedMu     sync.Mutex
	failedLogged time.Time
	failedCount  int

	// rejections keeps a flood of identical rejections to one line per
	// rejectionLogEvery.
	rejections *logthrottle.Throttle
}

// failedLogEvery is how often, at most, failed publishes are logged.
const failedLogEvery = 10 * time.Second

func (h *handler) ready(c *gin.Context) {
	if err := h.opts.Ready(c.Request.Context()); err != nil {
		c.Header("Retry-After", retryAfterSeconds(h.opts.RetryAfter))
		writeError(c, http.StatusServiceUnavailable, "not_ready", err.Error(), nil)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// events serves POST /v1/events: one canonical event or {"events":[...]},
// authenticated by the bearer token of the source the events name.
func (h *handler) events(c *gin.Context) {
	source, ok := h.sourceByToken(c.GetHeader("Authorization"))
	name := source.Name
	if !ok {
		name = UnknownSource
	}
	defer h.observe(c, name, true)
	if !ok {
		c.Header("WWW-Authenticate", `Bearer realm="presence-bridge"`)
		writeError(c, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token", nil)
		return
	}
	if !isJSON(c.GetHeader("Content-Type")) {
		writeError(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json", nil)
		return
	}
	body, err := adapters.ReadBody(c.Request, h.opts.BodyLimit)
	if err != nil {
		writeRequestError(c, err)
		return
	}
	events, err := adapters.DecodeEvents(body)
	if err != nil {
		writeRequestError(c, adapters.Invalid(err))
		return
	}
	for i, e := range events {
		if e.Source != source.Name {
			writeError(c, http.StatusForbidden, "wrong_source", "the token belongs to source "+source.Name+" but the event names "+e.Source, []adapters.FieldError{{Field: fieldPath(len(events), i, "source"), Problem: "not the token's source"}})
			return
		}
	}
	if err := adapters.CheckFuture(events, time.Now(), h.opts.MaxFutureSkew); err != nil {
		writeRequestError(c, err)
		return
	}
	h.publish(c, events, nil)
}

// publish stores events and answers: 202 (or the adapter's own answer)
// after the PubAck, 503 with Retry-After when JetStream can not take them.
//
// A 503 for a full JetStream means the events were refused (in a batch,
// those before the refusal may be stored). Any other 503 (a timeout, a
// reconnect) means they may or may not be stored, and may still be applied
// later. Either way the sender retries with the same ids; the duplicate
// window makes that safe.
func (h *handler) publish(c *gin.Context, events []adapters.Event, responder adapters.Responder) {
	if len(events) > 0 {
		if h.opts.Down != nil {
			if err := h.opts.Down(); err != nil {
				h.unavailable(c, len(events), err)
				return
			}
		}
		if err := h.opts.Publisher.Publish(c.Request.Context(), events); err != nil {
			h.publishFailed(c, len(events), err)
			return
		}
		h.opts.Accepted(events[0].Source, len(events))
		if h.opts.Log.Enabled(c.Request.Context(), slog.LevelDebug) {
			for _, e := range events {
				h.opts.Log.Debug("event accepted", "source", e.Source, "event_id", e.ID, "type", e.Type)
			}
		}
	}
	if responder != nil {
		responder.Respond(c.Writer, len(events))
		return
	}
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	c.JSON(http.StatusAccepted, acceptedBody{Accepted: len(events), IDs: ids})
}

// acceptedBody is the 202 answer: how many events were stored, and their
// ids in the order given.
type acceptedBody struct {
	Accepted int      `json:"accepted"`
	IDs      []string `json:"ids"`
}

// publishFailed answers 503 for events that could not be stored.
func (h *handler) publishFailed(c *gin.Context, count int, err error) {
	c.Header("Retry-After", retryAfterSeconds(h.opts.RetryAfter))
	retry := "retry them with the same ids after Retry-After; JetStream recognises a repeated id within the duplicate window (nats.duplicate_window, " + h.opts.DuplicateWindow.String() + ")"
	if errors.Is(err, eventlog.ErrFull) {
		// The queue logs when JetStream fills up and when it has room
		// again; a line per refused request would flood the log.
		writeError(c, http.StatusServiceUnavailable, "queue_full",
			err.Error()+". The events were not stored (in a batch, some may have been); "+retry+".", nil)
		return
	}
	h.logFailed(count, err)
	writeError(c, http.StatusServiceUnavailable, "queue_unavailable",
		"the events may or may not be stored, and may still be applied later ("+err.Error()+"); "+retry+", which makes the retry safe.", nil)
}

// unavailable answers 503 at once for events that were not offered to
// JetStream because the connection is known to be lost: nothing was
// stored.
func (h *handler) unavailable(c *gin.Context, count int, err error) {
	c.Header("Retry-After", retryAfterSeconds(h.opts.RetryAfter))
	h.logFailed(count, err)
	writeError(c, http.StatusServiceUnavailable, "queue_unavailable",
		"the events were not stored ("+err.Error()+"); retry them with the same ids after Retry-After.", nil)
}

// logFailed logs a failed publish, or counts it when one was logged less
// than failedLogEvery ago.
func (h *handler) logFailed(count int, err error) {
	h.failedMu.Lock()
	defer h.failedMu.Unlock()
	h.failedCount++
	if now := time.Now(); now.Sub(h.failedLogged) >= failedLogEvery {
		h.opts.Log.Warn("events not stored", "count", count, "err", err, "failed_requests", h.failedCount)
		h.failedLogged, h.failedCount = now, 0
	}
}

func (h *handler) sourceByToken(header string) (Source, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return Source{}, false
	}
	found, match := Source{}, false
	for _, s := range h.opts.Live.Sources() {
		// Compare against every token so the time taken does not tell which
		// source matched.
		if s.Token != "" && subtle.ConstantTimeCompare([]byte(s.Token), []byte(token)) == 1 {
			found, match = s, true
		}
	}
	return found, match
}

type hookHandler struct {
	*handler
	source Source
}

func (h *hookHandler) serve(c *gin.Context) {
	h, ok := h.current()
	if !ok {
		writeError(c, http.StatusNotFound, "not_found", "no such endpoint", nil)
		return
	}
	defer h.observe(c, h.source.Name, false)
	if hs, ok := h.source.Adapter.(adapters.Handshaker); ok && hs.Handshake(c.Writer, c.Request) {
		return
	}
	events, err := h.source.Adapter.Decode(c.Request)
	if err != nil {
		writeRequestError(c, err)
		return
	}
	responder, _ := h.source.Adapter.(adapters.Responder)
	h.publish(c, events, responder)
}

// SourceSet holds the sources a router serves. Replace swaps them at once:
// a request sees the old set or the new one, and one in flight finishes
// with the set it began with, so a reload drops no event.
type SourceSet struct{ p atomic.Pointer[[]Source] }

// NewSourceSet returns a set holding sources.
func NewSourceSet(sources []Source) *SourceSet {
	s := &SourceSet{}
	s.Replace(sources)
	return s
}

// Replace swaps the set's sources for sources. Webhook routes are made
// when the router is built: a source whose path is new is served on
// /v1/events at once, on its own path only after a restart.
func (s *SourceSet) Replace(sources []Source) {
	sources = append([]Source(nil), sources...)
	s.p.Store(&sources)
}

// Sources returns the current sources; callers must not modify them.
func (s *SourceSet) Sources() []Source { return *s.p.Load() }

// current returns the hook for the source now served on this hook's path,
// or false when a reload removed it.
func (h *hookHandler) current() (*hookHandler, bool) {
	for _, s := range h.opts.Live.Sources() {
		if s.Path == h.source.Path && s.Adapter != nil {
			return &hookHandler{handler: h.handler, source: s}, true
		}
	}
	return nil, false
}

func (h *handler) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			h.opts.Log.Error("handler panic", "path", c.Request.URL.Path, "panic", v)
			writeError(c, http.StatusInternalServerError, "internal", "internal error", nil)
			c.Abort()
		}
	}()
	c.Next()
}

func (h *handler) count(c *gin.Context) {
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	h.opts.Count(route, c.Writer.Status())
}

// errorBody is every error answer's JSON shape.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string                `json:"code"`
	Message string                `json:"message"`
	Fields  []adapters.FieldError `json:"fields,omitempty"`
}

func writeError(c *gin.Context, status int, code, message string, fields []adapters.FieldError) {
	c.Set(errorKey, errorDetail{Code: code, Message: message, Fields: fields})
	c.AbortWithStatusJSON(status, errorBody{Error: errorDetail{Code: code, Message: message, Fields: fields}})
}

func writeRequestError(c *gin.Context, err error) {
	var reqErr *adapters.RequestError
	if errors.As(err, &reqErr) {
		writeError(c, reqErr.Status, reqErr.Code, reqErr.Message, reqErr.Fields)
		return
	}
	writeError(c, http.StatusBadRequest, "invalid_request", err.Error(), nil)
}

// isJSON reports whether a Content-Type header names application/json,
// with or without parameters; the common exact spelling needs no parsing.
func isJSON(contentType string) bool {
	if contentType == "application/json" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

func fieldPath(n, i int, field string) string {
	if n == 1 {
		return field
	}
	return "events[" + strconv.Itoa(i) + "]." + field
}

func retryAfterSeconds(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}
