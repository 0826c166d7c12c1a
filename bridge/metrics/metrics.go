// Package metrics owns a bridge's Prometheus registry and collectors. The
// pipeline's stages do not import Prometheus: they are given plain hook
// functions (the methods of Metrics) and expose read-only snapshots that
// the collectors here read at scrape time.
//
// Tenant and source labels only ever take configured names (anything else
// is counted as Other), so no request can grow a label set.
package metrics

import (
	"context"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/presence-bridge/presence-bridge/internal/buildinfo"
)

// Other is the label value of a source or tenant that is not configured
// (no configured name can start with an underscore).
const Other = "_unknown"

// Breaker states as presence_bridge_breaker_state reports them.
const (
	BreakerClosed   = 0
	BreakerHalfOpen = 1
	BreakerOpen     = 2
)

// Tenant is one configured tenant's writer as seen at a scrape.
type Tenant struct {
	ID string
	// LeaseHeld says this bridge holds the tenant's writer lease; the
	// other fields are only meaningful when it does.
	LeaseHeld bool
	// Breaker is BreakerClosed, BreakerHalfOpen or BreakerOpen.
	Breaker         int
	BudgetRemaining int
	Backlog         int
	Sessions        int
	ManualUsers     int
}

// Consumer is the durable consumer's state as JetStream reports it.
type Consumer struct {
	// Pending is how many stored events have not been delivered yet;
	// AckPending how many were delivered and not settled.
	Pending, AckPending uint64
}

// Options configure Metrics.
type Options struct {
	// Version and Revision label presence_bridge_build_info; both default
	// to what the Go build recorded.
	Version, Revision string
	// Sources and Tenants are the configured names, the only label values
	// used.
	Sources, Tenants []string
	// ConnectOut names the configured sources that connect out (sipdialog,
	// caldav): presence_bridge_source_running reports 0 for each until
	// this bridge runs it, so that an alert sees a source no bridge runs.
	ConnectOut []string
	// TenantState, Consumer and DeadLetters are read at scrape time; each may
	// be nil, and an error leaves its metrics out of that scrape.
	TenantState func() []Tenant
	Consumer    func(ctx context.Context) (Consumer, error)
	DeadLetters func(ctx context.Context) (uint64, error)
	// Outputs are the configured outputs' names, the only output label
	// values used.
	Outputs []string
	// WatchState and OutputState are the Teams watchers' and the
	// outputs' snapshots (twoway.go), read at scrape time; either may be
	// nil.
	WatchState  func() []WatchStatus
	OutputState func() []OutputStatus
	// Now tells time; time.Now when nil.
	Now func() time.Time
}

// Metrics are one bridge's metrics.
type Metrics struct {
	opts     Options
	registry *prometheus.Registry
	sources  map[string]bool
	tenants  map[string]bool

	httpRequests  *prometheus.CounterVec
	webhooks      *prometheus.CounterVec
	rejections    *prometheus.CounterVec
	outcomes      *prometheus.CounterVec
	refusals      prometheus.Counter
	eventToGraph  prometheus.Histogram
	eventOutcome  *prometheus.CounterVec
	redelivered   *prometheus.CounterVec
	graphRequests *prometheus.CounterVec
	graphDuration *prometheus.HistogramVec
	throttled     *prometheus.CounterVec
	lastEvent     *prometheus.GaugeVec
	// lastEventAt is lastEvent's value by source, so that it only moves
	// forward (events are taken in at ingest and seen again on delivery).
	lastEventMu sync.Mutex
	lastEventAt map[string]float64
	// sourceRunning is 1 for each connect-out source this bridge runs;
	// sourceEntities counts the entities such a source watches or fails
	// to.
	sourceRunning  *prometheus.GaugeVec
	sourceEntities *prometheus.GaugeVec
}

// New returns the metrics with their registry.
func New(opts Options) *Metrics {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Metrics{opts: opts, registry: prometheus.NewRegistry(), sources: set(opts.Sources), tenants: set(opts.Tenants),
		lastEventAt: map[string]float64{}}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presence_bridge_http_requests_total", Help: "HTTP requests answered, by route and status.",
	}, []string{"route", "status"})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presence_bridge_webhook_requests_total", Help: "Requests to a source's endpoints (its webhook, or /v1/events with its token), by source and status.",
	}, []string{"source", "status"})
	m.rejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presence_bridge_webhook_rejections_total", Help: "Requests to a source's endpoints answered 4xx, by source and reason (signature, token, invalid, too_large, unsupported_media_type, wrong_source).",
	}, []string{"source", "reason"})
	m.outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presence_bridge_events_processed_total", Help: "Events settled, by source and outcome (applied, retry, dead_letter); a change Graph refuses for good counts as dead_letter as well.",
	}, []string{"source", "outcome"})
	m.refusals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "presence_bridge_graph_refusals_total", Help: "Changes Graph refused for good and the writers dead-lettered.",
	})
	m.eventToGraph = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "presence_bridge_event_to_graph_seconds",
		Help:    "Time from the bridge accepting an event (stored in JetStream, answered 202) to Graph answering the call that carried its effect; every event that reached Graph, coalesced ones each with its own wait.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	})
	m.eventOutcome = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presence_bridge_event_to_graph_outcomes_total",
		Help: "Events applied or dead-lettered, by what became of them: graph (reached Graph; timed in event_to_graph_seconds), no_call (the session was already right), graph_refused, older, duplicate, unknown_user, refused.",
	}, []string{"outcome"})
	m.redelivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presence_bridge_consumer_redelivered_total", Help: "Events JetStream delivered again (after a retry, a full lane or an ack timeout), by source.",
	}, []string{"source"})
	m.graphRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presence_bridge_graph_requests_total", Help: "HTTP requests to Graph and its token endpoint, by tenant, operation and status code (\"error\" when no answer came).",
	}, []string{"tenant", "operation", "code"})
	m.graphDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "presence_bridge_graph_request_duration_seconds", Help: "Time Graph took to answer, by tenant and operation.",
		Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"tenant", "operation"})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presence_bridge_graph_throttled_total", Help: "Graph requests answered 429, by tenant.",
	}, []string{"tenant"})
	m.lastEvent = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "presence_bridge_source_last_event_timestamp_seconds", Help: "When the source's last event was stored in JetStream (webhooks, connect-out sources and bus publishers alike), Unix time.",
	}, []string{"source"})
	m.sourceRunning = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "presence_bridge_source_running",
		Help: "1 for each connect-out source (sipdialog, caldav) this bridge runs, 0 for one it does not.",
	}, []string{"source"})
	m.sourceEntities = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "presence_bridge_source_entities",
		Help: "Entities (extensions) a sipdialog source run by this bridge watches (state subscribed) or cannot (state unsubscribed).",
	}, []string{"source", "state"})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "presence_bridge_build_info", Help: "Always 1; the labels say which build runs.",
	}, []string{"version", "revision", "goversion"})
	version, revision := buildinfo.Resolve(opts.Version, opts.Revision)
	build.WithLabelValues(version, revision, runtime.Version()).Set(1)

	m.registry.MustRegister(m.httpRequests, m.webhooks, m.rejections, m.outcomes, m.refusals, m.eventToGraph, m.eventOutcome,
		m.redelivered, m.graphRequests, m.graphDuration, m.throttled, m.lastEvent, m.sourceRunning, m.sourceEntities, build,
		&scraped{m: m}, twoWay{m: m}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every configured label exists from the start, so that rates and
	// alerts see a zero rather than nothing.
	for _, s := range opts.Sources {
		for _, o := range []string{"applied", "retry", "dead_letter"} {
			m.outcomes.WithLabelValues(s, o)
		}
		m.redelivered.WithLabelValues(s)
	}
	for _, t := range opts.Tenants {
		m.throttled.WithLabelValues(t)
	}
	for _, s := range opts.ConnectOut {
		m.sourceRunning.WithLabelValues(m.Source(s)).Set(0)
	}
	for _, o := range EventOutcomes {
		m.eventOutcome.WithLabelValues(o)
	}
	return m
}

func set(names []string) map[string]bool {
	s := make(map[string]bool, len(names))
	for _, n := range names {
		s[n] = true
	}
	return s
}

// Source returns s when it is a configured source, Other otherwise.
func (m *Metrics) Source(s string) string {
	if m.sources[s] {
		return s
	}
	return Other
}

func (m *Metrics) tenant(t string) string {
	if m.tenants[t] {
		return t
	}
	return Other
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Registry returns the registry, for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// HTTPRequest counts an answered HTTP request by route and status.
func (m *Metrics) HTTPRequest(route string, status int) {
	m.httpRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
}

// WebhookRequest counts a request to one of source's endpoints, and a
// rejection when reason is set.
func (m *Metrics) WebhookRequest(source string, status int, reason string) {
	source = m.Source(source)
	m.webhooks.WithLabelValues(source, strconv.Itoa(status)).Inc()
	if reason != "" {
		m.rejections.WithLabelValues(source, reason).Inc()
	}
}

// EventsAccepted records that events of source were stored just now.
func (m *Metrics) EventsAccepted(source string, n int) {
	if n > 0 {
		m.EventStored(source, m.opts.Now())
	}
}

// EventStored records that an event of source was stored at, unless a
// later one was recorded already.
func (m *Metrics) EventStored(source string, at time.Time) {
	source = m.Source(source)
	v := float64(at.UnixNano()) / 1e9
	m.lastEventMu.Lock()
	defer m.lastEventMu.Unlock()
	if v > m.lastEventAt[source] {
		m.lastEventAt[source] = v
		m.lastEvent.WithLabelValues(source).Set(v)
	}
}

// EventSettled counts an event the apply stage settled, by outcome.
func (m *Metrics) EventSettled(source, outcome string) {
	m.outcomes.WithLabelValues(m.Source(source), outcome).Inc()
}

// GraphRefused counts a change Graph refused for good, made for an event
// of source ("" when unknown), as a dead letter.
func (m *Metrics) GraphRefused(source string) {
	m.refusals.Inc()
	m.outcomes.WithLabelValues(m.Source(source), "dead_letter").Inc()
}

// Redelivered counts an event of source delivered again.
func (m *Metrics) Redelivered(source string) { m.redelivered.WithLabelValues(m.Source(source)).Inc() }

// EventToGraph observes the time from an event's acceptance to Graph's
// answer to the call that carried its effect.
func (m *Metrics) EventToGraph(d time.Duration) { m.eventToGraph.Observe(max(d, 0).Seconds()) }

// EventOutcomes are the values of event_to_graph_outcomes_total's label.
var EventOutcomes = []string{"graph", "no_call", "graph_refused", "older", "duplicate", "unknown_user", "refused"}

// EventOutcome counts what became of an event (one of EventOutcomes).
func (m *Metrics) EventOutcome(outcome string) { m.eventOutcome.WithLabelValues(outcome).Inc() }

// GraphRequest counts one HTTP request to Graph; code is the HTTP status,
// 0 when no answer came.
func (m *Metrics) GraphRequest(tenant, operation string, code int, d time.Duration) {
	tenant = m.tenant(tenant)
	c := "error"
	if code > 0 {
		c = strconv.Itoa(code)
	}
	m.graphRequests.WithLabelValues(tenant, operation, c).Inc()
	m.graphDuration.WithLabelValues(tenant, operation).Observe(d.Seconds())
	if code == http.StatusTooManyRequests {
		m.throttled.WithLabelValues(tenant).Inc()
	}
}

// Settled returns how many events the apply stage settled, whatever the
// outcome (Graph refusals left out); for tests.
func (m *Metrics) Settled() float64 {
	n := -value(m.refusals)
	ch := make(chan prometheus.Metric, 64)
	go func() { m.outcomes.Collect(ch); close(ch) }()
	for c := range ch {
		n += value(c)
	}
	return n
}

// Outcome returns how many events the apply stage settled with outcome,
// across sources; for tests.
func (m *Metrics) Outcome(outcome string) float64 {
	var n float64
	ch := make(chan prometheus.Metric, 64)
	go func() { m.outcomes.Collect(ch); close(ch) }()
	for c := range ch {
		var d dto.Metric
		if c.Write(&d) != nil {
			continue
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == "outcome" && l.GetValue() == outcome {
				n += d.GetCounter().GetValue()
			}
		}
	}
	return n
}

func value(c prometheus.Metric) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}

// SourceRunning records whether this bridge runs the connect-out source.
func (m *Metrics) SourceRunning(source string, on bool) {
	m.sourceRunning.WithLabelValues(m.Source(source)).Set(b2f(on))
}

// SourceEntities records how many of a connect-out source's entities are
// watched (live) of total; total < 0 forgets the source's entities.
func (m *Metrics) SourceEntities(source string, live, total int) {
	source = m.Source(source)
	if total < 0 {
		m.sourceEntities.DeletePartialMatch(prometheus.Labels{"source": source})
		return
	}
	m.sourceEntities.WithLabelValues(source, "subscribed").Set(float64(live))
	m.sourceEntities.WithLabelValues(source, "unsubscribed").Set(float64(total - live))
}
