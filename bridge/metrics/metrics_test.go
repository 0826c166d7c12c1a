package metrics

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-bridge/presence-bridge/outputs"
)

// TestLabelsBoundedByConfiguration: names that are not configured are
// all counted as Other, however many there are.
func TestLabelsBoundedByConfiguration(t *testing.T) {
	m := New(Options{Sources: []string{"pbx"}, Tenants: []string{"contoso.example"}})
	for _, s := range []string{"pbx", "x1", "x2", "../../etc", ""} {
		m.WebhookRequest(s, 401, "token")
		m.EventSettled(s, "applied")
	}
	m.GraphRequest("fabrikam.example", "setPresence", 429, time.Millisecond)
	got := gather(t, m)
	if n := len(got["presence_bridge_webhook_rejections_total"]); n != 2 {
		t.Errorf("%d rejection series, want 2 (pbx and %s): %v", n, Other, got["presence_bridge_webhook_rejections_total"])
	}
	if v := got["presence_bridge_webhook_rejections_total"]["reason=token,source="+Other]; v != 4 {
		t.Errorf("%s counted %v rejections, want 4", Other, v)
	}
	if v := got["presence_bridge_graph_throttled_total"]["tenant="+Other]; v != 1 {
		t.Errorf("an unconfigured tenant's 429 counted %v times under %s, want 1", v, Other)
	}
	if s := m.Settled(); s != 5 {
		t.Errorf("Settled = %v, want 5", s)
	}
	m.GraphRefused("pbx")
	if s := m.Settled(); s != 5 {
		t.Errorf("a Graph refusal changed Settled to %v", s)
	}
}

// TestScrapeReadsState: the tenant gauges come from TenantState at scrape
// time, only the lease gauge for tenants held elsewhere, and what can not
// be read is left out rather than reported as zero.
func TestScrapeReadsState(t *testing.T) {
	m := New(Options{
		Tenants: []string{"a", "b"},
		TenantState: func() []Tenant {
			return []Tenant{{ID: "a", LeaseHeld: true, Breaker: BreakerOpen, BudgetRemaining: 7, Backlog: 3, Sessions: 2, ManualUsers: 1}, {ID: "b"}}
		},
		Consumer:    func(context.Context) (Consumer, error) { return Consumer{}, errors.New("nats down") },
		DeadLetters: func(context.Context) (uint64, error) { return 4, nil },
	})
	got := gather(t, m)
	want := map[string]map[string]float64{
		"presence_bridge_breaker_state":        {"tenant=a": 2},
		"presence_bridge_budget_remaining":     {"tenant=a": 7},
		"presence_bridge_writer_backlog":       {"tenant=a": 3},
		"presence_bridge_sessions":             {"tenant=a": 2},
		"presence_bridge_manual_status_users":  {"tenant=a": 1},
		"presence_bridge_lease_held":           {"tenant=a": 1, "tenant=b": 0},
		"presence_bridge_deadletters":          {"": 4},
		"presence_bridge_consumer_pending":     nil,
		"presence_bridge_consumer_ack_pending": nil,
	}
	for name, series := range want {
		if len(got[name]) != len(series) {
			t.Errorf("%s: %v, want %v", name, got[name], series)
			continue
		}
		for labels, v := range series {
			if g, ok := got[name][labels]; !ok || g != v {
				t.Errorf("%s{%s} = %v (present %v), want %v", name, labels, g, ok, v)
			}
		}
	}
}

// TestLastEventOnlyMovesForward: an event seen again later (delivered
// after it was accepted) never moves a source's last event back.
func TestLastEventOnlyMovesForward(t *testing.T) {
	now := time.Unix(1_700_000_100, 0)
	m := New(Options{Sources: []string{"pbx"}, Now: func() time.Time { return now }})
	m.EventsAccepted("pbx", 0)
	if _, ok := gather(t, m)["presence_bridge_source_last_event_timestamp_seconds"]["source=pbx"]; ok {
		t.Fatal("no event accepted, yet a last event time")
	}
	m.EventsAccepted("pbx", 2)
	m.EventStored("pbx", now.Add(-time.Minute))
	if v := gather(t, m)["presence_bridge_source_last_event_timestamp_seconds"]["source=pbx"]; v != 1_700_000_100 {
		t.Errorf("last event %v after an older event, want 1700000100", v)
	}
	m.EventStored("pbx", now.Add(time.Minute))
	if v := gather(t, m)["presence_bridge_source_last_event_timestamp_seconds"]["source=pbx"]; v != 1_700_000_160 {
		t.Errorf("last event %v after a newer event, want 1700000160", v)
	}
}

// TestConnectOutSourcesReportNotRunning: a connect-out source shows as
// not running from the start, before any bridge took it, and a webhook
// source has no such series.
func TestConnectOutSourcesReportNotRunning(t *testing.T) {
	m := New(Options{Sources: []string{"hook", "pbx"}, ConnectOut: []string{"pbx"}})
	got := gather(t, m)["presence_bridge_source_running"]
	if v, ok := got["source=pbx"]; !ok || v != 0 || len(got) != 1 {
		t.Fatalf("source_running %v, want only pbx at 0", got)
	}
	m.SourceRunning("pbx", true)
	m.SourceEntities("pbx", 0, 3)
	got2 := gather(t, m)
	if v := got2["presence_bridge_source_running"]["source=pbx"]; v != 1 {
		t.Errorf("source_running %v after it started, want 1", v)
	}
	if v := got2["presence_bridge_source_entities"]["source=pbx,state=unsubscribed"]; v != 3 {
		t.Errorf("unsubscribed entities %v, want 3", v)
	}
}

// gather returns every sample's value by family and "k=v,..." labels
// (sorted by name, as the registry gives them).
func gather(t *testing.T, m *Metrics) map[string]map[string]float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, f := range families {
		series := map[string]float64{}
		for _, s := range f.GetMetric() {
			key := ""
			for i, l := range s.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetName() + "=" + l.GetValue()
			}
			switch {
			case s.Counter != nil:
				series[key] = s.GetCounter().GetValue()
			case s.Gauge != nil:
				series[key] = s.GetGauge().GetValue()
			}
		}
		out[f.GetName()] = series
	}
	return out
}

var _ prometheus.Collector = (*scraped)(nil)

// TestTwoWayFamilies: the watch and output families come from the
// snapshots at scrape time, by configured tenant and output only.
func TestTwoWayFamilies(t *testing.T) {
	last := time.Unix(1_700_000_000, 0)
	m := New(Options{
		Tenants: []string{"a"},
		Outputs: []string{"bus", "crm"},
		WatchState: func() []WatchStatus {
			return []WatchStatus{
				{Tenant: "a", Watched: 1200, CycleSeconds: 2.5, BudgetUsed: 40, Budget: 1000, Stretched: true, LastRead: last,
					Reads: map[string]uint64{"ok": 30, "throttled": 2, "Weird Outcome!": 1}},
				{Tenant: "not-configured", Watched: 5},
			}
		},
		OutputState: func() []OutputStatus {
			return []OutputStatus{
				{Name: "bus", Published: map[string]uint64{"teams": 7, "bridge": 1}, Skipped: 3, Dropped: 1, Failures: 4, Queued: 2, Lag: 1500 * time.Millisecond},
				{Name: "unknown-output", Queued: 9},
				{Name: "crm", Type: "webhook", Healthy: true, Published: map[string]uint64{"teams": 5}, Delivery: &outputs.Health{
					Deliveries: map[string]uint64{"delivered": 5, "retried": 3, "dead_lettered": 1}, Queued: 2, Oldest: 300 * time.Second, Disabled: true,
					LastError: "HTTP 410 Gone: endpoint disabled"}},
			}
		},
	})
	got := gather(t, m)
	want := map[string]map[string]float64{
		"presence_bridge_watch_reads_total":                 {"outcome=ok,tenant=a": 30, "outcome=throttled,tenant=a": 2, "outcome=other,tenant=a": 1},
		"presence_bridge_watch_read_budget_used":            {"tenant=a": 40},
		"presence_bridge_watch_read_budget":                 {"tenant=a": 1000},
		"presence_bridge_watch_cycle_seconds":               {"tenant=a": 2.5},
		"presence_bridge_watch_people":                      {"tenant=a": 1200},
		"presence_bridge_watch_stretched":                   {"tenant=a": 1},
		"presence_bridge_watch_last_read_timestamp_seconds": {"tenant=a": 1_700_000_000},
		"presence_bridge_changes_published_total":           {"origin=bridge,output=bus": 1, "origin=teams,output=bus": 7, "origin=bridge,output=crm": 0, "origin=teams,output=crm": 5},
		"presence_bridge_changes_skipped_total":             {"output=bus": 3, "output=crm": 0},
		"presence_bridge_changes_dropped_total":             {"output=bus": 1, "output=crm": 0},
		"presence_bridge_output_failures_total":             {"output=bus": 4, "output=crm": 0},
		"presence_bridge_output_queued":                     {"output=bus": 2, "output=crm": 0},
		"presence_bridge_output_lag_seconds":                {"output=bus": 1.5, "output=crm": 0},
		"presence_bridge_output_healthy":                    {"output=bus": 0, "output=crm": 0},
		"presence_bridge_output_deliveries_total": {"outcome=delivered,output=crm": 5, "outcome=retried,output=crm": 3,
			"outcome=dead_lettered,output=crm": 1, "outcome=dropped,output=crm": 0},
		"presence_bridge_output_pending":                {"output=crm": 2},
		"presence_bridge_output_oldest_pending_seconds": {"output=crm": 300},
		"presence_bridge_output_disabled":               {"output=crm": 1},
	}
	for name, series := range want {
		if len(got[name]) != len(series) {
			t.Errorf("%s: %v, want %v", name, got[name], series)
			continue
		}
		for labels, v := range series {
			if g, ok := got[name][labels]; !ok || g != v {
				t.Errorf("%s{%s} = %v (present %v), want %v", name, labels, g, ok, v)
			}
		}
	}
}

// TestSIPPublications: a sip output's PUBLISH answers by class, a fixed
// set of series; other outputs have none.
func TestSIPPublications(t *testing.T) {
	m := New(Options{
		Outputs: []string{"phones", "bus"},
		OutputState: func() []OutputStatus {
			return []OutputStatus{
				{Name: "phones", Type: "sip", Responses: map[string]uint64{"2xx": 5, "4xx": 1, "5xx": 2, "9xx": 7}},
				{Name: "bus", Type: "nats"},
			}
		},
	})
	got := gather(t, m)["presence_bridge_sip_publications_total"]
	want := map[string]float64{"class=1xx,output=phones": 0, "class=2xx,output=phones": 5, "class=3xx,output=phones": 0, "class=4xx,output=phones": 1,
		"class=5xx,output=phones": 2, "class=6xx,output=phones": 0, "class=none,output=phones": 0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("presence_bridge_sip_publications_total %v, want %v", got, want)
	}
}

// TestReadOutcomesBounded: however many outcomes a watcher reports, a
// tenant has at most maxReadOutcomes series, and nothing is lost.
func TestReadOutcomesBounded(t *testing.T) {
	reads := map[string]uint64{}
	for i := range 50 {
		reads[fmt.Sprintf("outcome_%02d", i)] = 1
	}
	got := readOutcomes(reads)
	var sum uint64
	for _, n := range got {
		sum += n
	}
	if len(got) > maxReadOutcomes || sum != 50 {
		t.Errorf("%d outcomes summing to %d, want at most %d summing to 50", len(got), sum, maxReadOutcomes)
	}
}
