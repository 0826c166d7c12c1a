package metrics

import (
	"regexp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-bridge/presence-bridge/outputs"
)

// WatchStatus is one tenant's Teams watcher as seen at a scrape (on the
// bridge holding the tenant's lease).
type WatchStatus struct {
	Tenant string
	// Watched is how many people are watched.
	Watched int
	// CycleSeconds is how long reading everyone once takes.
	CycleSeconds float64
	// BudgetUsed read requests of Budget were made in the current window.
	BudgetUsed, Budget int
	// Stretched says the budget can not read everyone every interval, so
	// the cycle is longer.
	Stretched bool
	// LastRead is when the last read request was answered.
	LastRead time.Time
	// Reads counts read requests by outcome (ok, throttled, failed, ...).
	Reads map[string]uint64
}

// OutputStatus is one output as seen at a scrape; its fields are those
// of publish.Stats, which converts to it.
type OutputStatus struct {
	Name, Type                 string
	Published                  map[string]uint64
	Skipped, Dropped, Failures uint64
	Queued                     int
	Lag                        time.Duration
	Healthy                    bool
	LastError                  string
	LastErrorAt                time.Time
	// Delivery is set for outputs that deliver on their own (webhook).
	Delivery  *outputs.Health
	Responses map[string]uint64
}

// responseClasses are the classes of a sip output's answers, a fixed set
// so that the series are bounded.
var responseClasses = []string{"1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "none"}

// maxReadOutcomes is how many series of reads one tenant has at most:
// the first outcomes by name, the rest summed under "other".
const maxReadOutcomes = 8

var outcomeName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

var (
	watchReadsDesc      = prometheus.NewDesc("presence_bridge_watch_reads_total", "getPresencesByUserId requests of the tenant's Teams watcher, by outcome.", []string{"tenant", "outcome"}, nil)
	watchBudgetUsed     = prometheus.NewDesc("presence_bridge_watch_read_budget_used", "Read requests made in the current read-budget window.", []string{"tenant"}, nil)
	watchBudget         = prometheus.NewDesc("presence_bridge_watch_read_budget", "Read requests the tenant's read budget allows per window (watch.read_budget).", []string{"tenant"}, nil)
	watchCycleDesc      = prometheus.NewDesc("presence_bridge_watch_cycle_seconds", "How long the watcher takes to read every watched person once.", []string{"tenant"}, nil)
	watchPeopleDesc     = prometheus.NewDesc("presence_bridge_watch_people", "People the tenant's Teams watcher reads.", []string{"tenant"}, nil)
	watchStretchedDesc  = prometheus.NewDesc("presence_bridge_watch_stretched", "1 when the read budget can not read everyone every watch.interval and the cycle is stretched.", []string{"tenant"}, nil)
	watchLastReadDesc   = prometheus.NewDesc("presence_bridge_watch_last_read_timestamp_seconds", "When the watcher's last read was answered, Unix time.", []string{"tenant"}, nil)
	publishedDesc       = prometheus.NewDesc("presence_bridge_changes_published_total", "Teams presence changes an output delivered, by output and origin (teams, bridge).", []string{"output", "origin"}, nil)
	skippedDesc         = prometheus.NewDesc("presence_bridge_changes_skipped_total", "Changes an output's filter (tenants, skip_sources) kept from it.", []string{"output"}, nil)
	droppedDesc         = prometheus.NewDesc("presence_bridge_changes_dropped_total", "Queued changes given up because the output's queue was full.", []string{"output"}, nil)
	outputFailuresDesc  = prometheus.NewDesc("presence_bridge_output_failures_total", "Deliveries to an output that failed (each retry counts).", []string{"output"}, nil)
	outputQueuedDesc    = prometheus.NewDesc("presence_bridge_output_queued", "People whose newest change waits for the output.", []string{"output"}, nil)
	outputLagDesc       = prometheus.NewDesc("presence_bridge_output_lag_seconds", "How long the change first in the output's queue has waited.", []string{"output"}, nil)
	outputHealthyDesc   = prometheus.NewDesc("presence_bridge_output_healthy", "0 from an output's failed delivery to its next success, 1 otherwise.", []string{"output"}, nil)
	deliveriesDesc      = prometheus.NewDesc("presence_bridge_output_deliveries_total", "Tries of an output that delivers on its own (webhook), by outcome: delivered, retried, dead_lettered, dropped.", []string{"output", "outcome"}, nil)
	outputPendingDesc   = prometheus.NewDesc("presence_bridge_output_pending", "People whose change waits in the output's own queue (webhook: kept in JetStream).", []string{"output"}, nil)
	oldestDesc          = prometheus.NewDesc("presence_bridge_output_oldest_pending_seconds", "How long the change waiting longest in the output's own queue has waited.", []string{"output"}, nil)
	disabledDesc        = prometheus.NewDesc("presence_bridge_output_disabled", "1 when the endpoint disabled the output (webhook: 410 Gone) until the bridge restarts.", []string{"output"}, nil)
	sipPublicationsDesc = prometheus.NewDesc("presence_bridge_sip_publications_total", "PUBLISH requests a sip output sent, by the class of the answer (2xx, 4xx, 5xx, 6xx, none for no answer).", []string{"output", "class"}, nil)
)

// deliveryOutcomes are the outcomes of presence_bridge_output_deliveries_total.
var deliveryOutcomes = []string{"delivered", "retried", "dead_lettered", "dropped"}

// twoWay reads the watchers' and outputs' snapshots at scrape time. Only
// configured tenants and outputs are reported, so the label values are
// bounded by the configuration.
type twoWay struct{ m *Metrics }

func (twoWay) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{watchReadsDesc, watchBudgetUsed, watchBudget, watchCycleDesc, watchPeopleDesc, watchStretchedDesc,
		watchLastReadDesc, publishedDesc, skippedDesc, droppedDesc, outputFailuresDesc, outputQueuedDesc, outputLagDesc, outputHealthyDesc,
		deliveriesDesc, outputPendingDesc, oldestDesc, disabledDesc, sipPublicationsDesc} {
		ch <- d
	}
}

func (w twoWay) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if f := w.m.opts.WatchState; f != nil {
		seen := map[string]bool{}
		for _, s := range f() {
			if !w.m.tenants[s.Tenant] || seen[s.Tenant] {
				continue
			}
			seen[s.Tenant] = true
			for outcome, n := range readOutcomes(s.Reads) {
				counter(watchReadsDesc, n, s.Tenant, outcome)
			}
			gauge(watchBudgetUsed, float64(s.BudgetUsed), s.Tenant)
			gauge(watchBudget, float64(s.Budget), s.Tenant)
			gauge(watchCycleDesc, s.CycleSeconds, s.Tenant)
			gauge(watchPeopleDesc, float64(s.Watched), s.Tenant)
			gauge(watchStretchedDesc, b2f(s.Stretched), s.Tenant)
			if !s.LastRead.IsZero() {
				gauge(watchLastReadDesc, float64(s.LastRead.UnixNano())/1e9, s.Tenant)
			}
		}
	}
	if f := w.m.opts.OutputState; f != nil {
		seen := map[string]bool{}
		for _, s := range f() {
			if !slices.Contains(w.m.opts.Outputs, s.Name) || seen[s.Name] {
				continue
			}
			seen[s.Name] = true
			for _, origin := range []string{"bridge", "teams"} {
				counter(publishedDesc, s.Published[origin], s.Name, origin)
			}
			counter(skippedDesc, s.Skipped, s.Name)
			counter(droppedDesc, s.Dropped, s.Name)
			counter(outputFailuresDesc, s.Failures, s.Name)
			gauge(outputQueuedDesc, float64(s.Queued), s.Name)
			gauge(outputLagDesc, s.Lag.Seconds(), s.Name)
			healthy := s.Healthy
			if d := s.Delivery; d != nil {
				healthy = healthy && d.Healthy
				for _, outcome := range deliveryOutcomes {
					counter(deliveriesDesc, d.Deliveries[outcome], s.Name, outcome)
				}
				gauge(outputPendingDesc, float64(d.Queued), s.Name)
				gauge(oldestDesc, d.Oldest.Seconds(), s.Name)
				gauge(disabledDesc, b2f(d.Disabled), s.Name)
			}
			gauge(outputHealthyDesc, b2f(healthy), s.Name)
			if s.Type == "sip" {
				for _, class := range responseClasses {
					counter(sipPublicationsDesc, s.Responses[class], s.Name, class)
				}
			}
		}
	}
}

// readOutcomes returns reads by outcome in at most maxReadOutcomes
// series: the first outcomes in sorted order that look like outcome
// names, and "other" for the rest.
func readOutcomes(reads map[string]uint64) map[string]uint64 {
	names := make([]string, 0, len(reads))
	for k := range reads {
		names = append(names, k)
	}
	slices.Sort(names)
	out := map[string]uint64{}
	named := 0
	for _, k := range names {
		if k != "other" && outcomeName.MatchString(k) && named < maxReadOutcomes-1 {
			out[k] = reads[k]
			named++
		} else {
			out["other"] += reads[k]
		}
	}
	return out
}
