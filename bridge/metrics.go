package bridge

import (
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the bridge's Prometheus metrics, on a registry of its own so
// that several bridges can run in one process (tests).
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	outcomes *prometheus.CounterVec
	// sourceRunning is 1 for each connect-out source this bridge runs;
	// sourceEntities counts the entities such a source watches or fails
	// to.
	sourceRunning  *prometheus.GaugeVec
	sourceEntities *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presence_bridge_http_requests_total",
			Help: "HTTP requests answered, by route and status.",
		}, []string{"route", "status"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presence_bridge_events_processed_total",
			Help: "Events taken from JetStream, by outcome (applied, retry, dead_letter).",
		}, []string{"outcome"}),
		sourceRunning: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "presence_bridge_source_running",
			Help: "1 for each connect-out source (sipdialog, caldav) this bridge runs, 0 for one it does not.",
		}, []string{"source"}),
		sourceEntities: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "presence_bridge_source_entities",
			Help: "Entities (extensions) a sipdialog source run by this bridge watches (state subscribed) or cannot (state unsubscribed).",
		}, []string{"source", "state"}),
	}
	m.registry.MustRegister(m.requests, m.outcomes, m.sourceRunning, m.sourceEntities,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) httpRequest(route string, status int) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
}

func (m *metrics) workerOutcome(outcome string) { m.outcomes.WithLabelValues(outcome).Inc() }

func (m *metrics) register(r *gin.Engine) {
	h := promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
	r.GET("/metrics", gin.WrapH(h))
}
