package admin

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The metric families the status page reads. The page shows what the
// bridge's registry holds; a family it lacks shows as "—".
const (
	metricBreaker     = "presence_bridge_breaker_state"
	metricBudget      = "presence_bridge_budget_remaining"
	metricBacklog     = "presence_bridge_writer_backlog"
	metricSessions    = "presence_bridge_sessions"
	metricManual      = "presence_bridge_manual_status_users"
	metricLastEvent   = "presence_bridge_source_last_event_timestamp_seconds"
	metricRejections  = "presence_bridge_webhook_rejections_total"
	metricDeadLetters = "presence_bridge_deadletters"
	metricRunning     = "presence_bridge_source_running"
	metricEntities    = "presence_bridge_source_entities"
)

// samples are a registry's gauge and counter values, by family and then
// by the label the page groups by (tenant or source).
type samples map[string]map[string][]sample

type sample struct {
	labels map[string]string
	value  float64
}

// gather reads g, keeping the families the page shows; a nil g or a
// failed gather gives no samples.
func gather(g prometheus.Gatherer) samples {
	out := samples{}
	if g == nil {
		return out
	}
	families, _ := g.Gather() // a partial result is still worth showing
	for _, f := range families {
		key := ""
		switch f.GetName() {
		case metricBreaker, metricBudget, metricBacklog, metricSessions, metricManual:
			key = "tenant"
		case metricLastEvent, metricRejections, metricRunning, metricEntities:
			key = "source"
		case metricDeadLetters:
		default:
			continue
		}
		byKey := map[string][]sample{}
		for _, m := range f.GetMetric() {
			s := sample{labels: map[string]string{}, value: value(m)}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			byKey[s.labels[key]] = append(byKey[s.labels[key]], s)
		}
		out[f.GetName()] = byKey
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// one returns the value of family for key, and whether there is one.
func (s samples) one(family, key string) (float64, bool) {
	list := s[family][key]
	if len(list) == 0 {
		return 0, false
	}
	return list[0].value, true
}

// number formats family's value for key, "—" when there is none.
func (s samples) number(family, key string) string {
	v, ok := s.one(family, key)
	if !ok {
		return "—"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// breaker names the breaker state gauge's value (gobreaker's order:
// closed, half-open, open).
func (s samples) breaker(tenant string) string {
	v, ok := s.one(metricBreaker, tenant)
	if !ok {
		return "—"
	}
	switch v {
	case 0:
		return "closed"
	case 1:
		return "half-open"
	case 2:
		return "open"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// lastEvent is when source last sent an event, zero when unknown.
func (s samples) lastEvent(source string) time.Time {
	v, ok := s.one(metricLastEvent, source)
	if !ok || v <= 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(v*1e9)).UTC()
}

// rejections are source's rejected webhooks by reason.
func (s samples) rejections(source string) map[string]uint64 {
	out := map[string]uint64{}
	for _, sm := range s[metricRejections][source] {
		if sm.value > 0 {
			out[sm.labels["reason"]] += uint64(sm.value)
		}
	}
	return out
}

// runsOn says where a connect-out source runs: "this bridge", "another
// bridge (or none)", or "" for a source that takes webhooks (it has no
// running gauge).
func (s samples) runsOn(source string) string {
	v, ok := s.one(metricRunning, source)
	switch {
	case !ok:
		return ""
	case v > 0:
		return "this bridge"
	}
	return "another bridge (or none)"
}

// entities are how many of the entities a connect-out source run here
// watches, of how many; ok is false when it reports none.
func (s samples) entities(source string) (subscribed, total int, ok bool) {
	for _, sm := range s[metricEntities][source] {
		ok = true
		total += int(sm.value)
		if sm.labels["state"] == "subscribed" {
			subscribed += int(sm.value)
		}
	}
	return subscribed, total, ok
}
