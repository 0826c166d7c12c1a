package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/metrics"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
)

// documentedMetrics are the metric families issue 11 (item 1) asks the
// bridge to export. A name the dashboard or the alerts use must be one the
// bridge exports, or one of these while that work is not merged.
var documentedMetrics = []string{
	"presence_bridge_build_info",
	"presence_bridge_webhook_requests_total",
	"presence_bridge_webhook_rejections_total",
	"presence_bridge_events_processed_total",
	"presence_bridge_event_to_graph_seconds",
	"presence_bridge_consumer_pending",
	"presence_bridge_consumer_redelivered_total",
	"presence_bridge_graph_requests_total",
	"presence_bridge_graph_request_duration_seconds",
	"presence_bridge_graph_throttled_total",
	"presence_bridge_breaker_state",
	"presence_bridge_budget_remaining",
	"presence_bridge_writer_backlog",
	"presence_bridge_sessions",
	"presence_bridge_manual_status_users",
	"presence_bridge_lease_held",
	"presence_bridge_deadletters",
	"presence_bridge_source_last_event_timestamp_seconds",
	"presence_bridge_source_running",
	"presence_bridge_source_entities",
}

// expression is one PromQL expression and where it was found.
type expression struct{ where, expr string }

// alertRules is the part of a Prometheus rule file the tests read.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readAlerts(t *testing.T) alertRules {
	t.Helper()
	data, err := os.ReadFile("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	return rules
}

// labelValues matches a Grafana variable query label_values(METRIC, label).
var labelValues = regexp.MustCompile(`^\s*label_values\(\s*([^,]*),`)

// expressions returns every PromQL expression of alerts.yaml and of the
// dashboard: the panels' targets and the variables' label_values metrics.
func expressions(t *testing.T) []expression {
	t.Helper()
	var exprs []expression
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, expression{"alerts.yaml " + r.Alert, r.Expr})
		}
	}
	data, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			exprs = append(exprs, expression{"dashboard panel " + p.Title, target.Expr})
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Fatalf("dashboard variable %s: want label_values(METRIC, label), got %v", v.Name, v.Query)
		}
		exprs = append(exprs, expression{"dashboard variable " + v.Name, m[1]})
	}
	return exprs
}

// TestAlertRules: the rule file has the alerts the issue asks for, each
// with a severity, a summary and an expression naming a metric.
func TestAlertRules(t *testing.T) {
	want := []string{
		"PresenceBridgeBreakerOpen", "PresenceBridgeBacklogGrowing", "PresenceBridgeBudgetExhausted",
		"PresenceBridgeDeadLettersRising", "PresenceBridgeNoLeaseHolder", "PresenceBridgeSourceSilent",
		"PresenceBridgeSourceNotRunning", "PresenceBridgeSourceUnsubscribed", "PresenceBridgeOutputFailing",
		"PresenceBridgeWebhookDisabled", "PresenceBridgeWebhookDeadLetters",
	}
	var got []string
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			got = append(got, r.Alert)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: want a severity label and a summary", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", r.Alert, err)
				}
			}
			if len(metricNames(r.Expr)) == 0 {
				t.Errorf("%s: %q names no metric", r.Alert, r.Expr)
			}
		}
	}
	for _, name := range want {
		if !slices.Contains(got, name) {
			t.Errorf("alerts.yaml has no %s", name)
		}
	}
}

// TestDashboardsUseExportedMetrics: every metric the dashboard and the
// alerts name is one a running bridge exports on /metrics after a scripted
// run (an applied event, a 429, a rejected webhook, a dead letter). Names
// that are neither exported nor in documentedMetrics fail the test; names
// only documented skip it, listing them, until the metrics of issue 11
// item 1 are merged.
func TestDashboardsUseExportedMetrics(t *testing.T) {
	exported := scrapeBridge(t).families
	for name := range twoWayFamilies(t) {
		if !exported[name] {
			t.Logf("%s comes from a Teams watcher's or an output's snapshot, which this bridge does not wire in yet", name)
			exported[name] = true
		}
	}
	documented := map[string]bool{}
	for _, name := range documentedMetrics {
		documented[name] = true
	}
	known := func(name string) bool { return exported[name] || documented[name] }
	missing := map[string]bool{}
	for _, e := range expressions(t) {
		names := metricNames(e.expr)
		if len(names) == 0 {
			t.Errorf("%s: %q names no metric", e.where, e.expr)
		}
		for _, name := range names {
			name = histogramFamily(name, known)
			switch {
			case exported[name]:
			case documented[name]:
				missing[name] = true
			default:
				t.Errorf("%s uses %s, which the bridge does not export", e.where, name)
			}
		}
	}
	if t.Failed() || len(missing) == 0 {
		return
	}
	t.Errorf("the bridge does not export these: %s", strings.Join(slices.Sorted(func(yield func(string) bool) {
		for name := range missing {
			if !yield(name) {
				return
			}
		}
	}), ", "))
}

// twoWayFamilies are the families the metrics package makes of the Teams
// watchers' and the outputs' snapshots, given one of each (issue 21),
// the output one that delivers on its own (a webhook, issue 22).
func twoWayFamilies(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New(metrics.Options{
		Tenants: []string{"t"}, Outputs: []string{"o", "p"},
		WatchState: func() []metrics.WatchStatus {
			return []metrics.WatchStatus{{Tenant: "t", LastRead: time.Now(), Reads: map[string]uint64{"ok": 1}}}
		},
		OutputState: func() []metrics.OutputStatus {
			return []metrics.OutputStatus{{Name: "o", Delivery: &outputs.Health{}}, {Name: "p", Type: "sip"}}
		},
	})
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "presence_bridge_watch_") || strings.HasPrefix(f.GetName(), "presence_bridge_changes_") || strings.HasPrefix(f.GetName(), "presence_bridge_output_") ||
			strings.HasPrefix(f.GetName(), "presence_bridge_sip_") {
			names[f.GetName()] = true
		}
	}
	if len(names) != 19 {
		t.Fatalf("the watch and output families are %v, want 19", names)
	}
	return names
}

// histogramFamily maps a histogram's series (_bucket, _sum, _count) to its
// family when the family is known.
func histogramFamily(name string, known func(string) bool) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && !known(name) && known(base) {
			return base
		}
	}
	return name
}

const (
	aliceID = bridgetest.AliceID
	token   = "demo-token"
	admin   = "admin-token"
)

// scraped is a bridge's /metrics answer: the families it lists and the
// label sets of each family's samples.
type scraped struct {
	families map[string]bool
	series   map[string][]series
}

// series is one sample: its labels and value.
type series struct {
	labels map[string]string
	value  float64
}

// labelValues returns the values label takes in family's samples.
func (s scraped) labelValues(family, label string) []string {
	var out []string
	for _, smp := range s.series[family] {
		if v, ok := smp.labels[label]; ok && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// scrapeBridge runs a bridge with its embedded NATS and Graph emulator, a
// webhook source and a sipdialog source whose PBX never answers, drives it
// through a short script and returns what its /metrics lists once the
// sipdialog source reports its entities.
func scrapeBridge(t *testing.T) scraped {
	t.Helper()
	cfg, err := config.Parse([]byte(bridgetest.Header+fmt.Sprintf("nats: {embedded: true, store_dir: %q, ack_wait: 5s}\n", t.TempDir())+
		"graph:\n"+bridgetest.Tenants()+"  unknown_user_ttl: 1m\n  retry: {min_delay: 50ms, max_delay: 200ms}\n"+
		bridgetest.Emulator(bridgetest.Alice)+fmt.Sprintf(`directory:
  "ext:1001": alice@contoso.example
sources:
  - {name: demo, type: generic, token: %s}
  - name: office-pbx
    type: sipdialog
    sipdialog:
      pbx: %s
      listen: 127.0.0.1:0
      request_timeout: 1s
      backoff: {min: 100ms, max: 1s}
      entities: [{entity: "1001"}, {entity: "1002"}]
presence: {lease_ttl: 3s}
admin: {token: %s}
`, token, silentPBX(t), admin)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := bridgetest.Run(t, cfg, nil)
	base := "http://" + b.Addr()
	request := func(method, path, bearer, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp.StatusCode, data
	}
	event := func(id, user string) string {
		return fmt.Sprintf(`{"id":%q,"source":"demo","type":"call","user":%q,"occurredAt":%q,"callId":"c1","state":"active"}`,
			id, user, time.Now().UTC().Format(time.RFC3339Nano))
	}

	b.Emulator().ForceThrottle(1, 100*time.Millisecond)
	if code, body := request(http.MethodPost, "/v1/events", token, event("m1", "ext:1001")); code != http.StatusAccepted {
		t.Fatalf("event: %d %s", code, body)
	}
	if code, _ := request(http.MethodPost, "/v1/events", "wrong-token", event("m2", "ext:1001")); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d, want 401", code)
	}
	if code, body := request(http.MethodPost, "/v1/events", token, event("m3", "nobody@contoso.example")); code != http.StatusAccepted {
		t.Fatalf("event for an unknown user: %d %s", code, body)
	}
	testpoll.UntilOK(t, "alice in a call", func() error {
		if p, _ := b.Emulator().Presence(aliceID); p.Activity != "InACall" {
			return fmt.Errorf("alice is %s/%s", p.Availability, p.Activity)
		}
		return nil
	})
	testpoll.UntilOK(t, "a dead letter", func() error {
		code, body := request(http.MethodGet, "/v1/admin/deadletters", admin, "")
		var list struct{ DeadLetters []json.RawMessage }
		if err := json.Unmarshal(body, &list); err != nil || code != http.StatusOK || len(list.DeadLetters) == 0 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})

	var s scraped
	testpoll.UntilOK(t, "the sipdialog source's entities on /metrics", func() error {
		code, body := request(http.MethodGet, "/metrics", "", "")
		if code != http.StatusOK {
			return fmt.Errorf("/metrics: %d", code)
		}
		s = parseMetrics(string(body))
		if !s.families["presence_bridge_source_entities"] {
			return fmt.Errorf("no presence_bridge_source_entities yet")
		}
		return nil
	})
	if !s.families["presence_bridge_events_processed_total"] {
		t.Fatal("/metrics lists no presence_bridge_events_processed_total")
	}
	return s
}

// parseMetrics reads the Prometheus text format: the families its TYPE
// lines name and each sample's labels.
func parseMetrics(text string) scraped {
	s := scraped{families: map[string]bool{}, series: map[string][]series{}}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)`)
	pair := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			s.families[f[2]] = true
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		labels := map[string]string{}
		for _, p := range pair.FindAllStringSubmatch(m[2], -1) {
			labels[p[1]] = p[2]
		}
		v, _ := strconv.ParseFloat(m[3], 64)
		s.series[m[1]] = append(s.series[m[1]], series{labels, v})
	}
	return s
}

// silentPBX returns a loopback UDP address where nothing answers SIP: a
// socket that reads and drops every datagram until the test ends.
func silentPBX(t *testing.T) string {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := conn.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return conn.LocalAddr().String()
}

// TestDashboardSeesConnectOutSources: on a running bridge with a webhook
// source and a sipdialog source whose PBX never answers, the dashboard's
// $source variable lists both, the connect-out source's running gauge is
// exported for the not-running alert, and its entities show none
// subscribed, which the unsubscribed alert selects.
func TestDashboardSeesConnectOutSources(t *testing.T) {
	s := scrapeBridge(t)
	var variable string
	for _, e := range expressions(t) {
		if e.where == "dashboard variable source" {
			variable = e.expr
		}
	}
	names := metricNames(variable)
	if len(names) != 1 {
		t.Fatalf("the $source variable reads %q, want one metric", variable)
	}
	if got := s.labelValues(names[0], "source"); !slices.Equal(got, []string{"demo", "office-pbx"}) {
		t.Errorf("the $source variable (%s) lists %q; want every configured source, demo and office-pbx", names[0], got)
	}
	if got := s.labelValues("presence_bridge_source_running", "source"); !slices.Equal(got, []string{"office-pbx"}) {
		t.Errorf("presence_bridge_source_running has sources %q, want the connect-out source office-pbx", got)
	}
	states := map[string]float64{}
	for _, smp := range s.series["presence_bridge_source_entities"] {
		if smp.labels["source"] == "office-pbx" {
			states[smp.labels["state"]] = smp.value
		}
	}
	if v, ok := states["subscribed"]; !ok || v != 0 || states["unsubscribed"] != 2 {
		t.Errorf("office-pbx's entities by state: %v, want 0 subscribed and 2 unsubscribed", states)
	}
	// Each alert on connect-out sources reads the metric that shows the
	// failure.
	want := map[string]string{
		"PresenceBridgeSourceNotRunning":   "presence_bridge_source_running",
		"PresenceBridgeSourceUnsubscribed": "presence_bridge_source_entities",
	}
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			if metric, ok := want[r.Alert]; ok {
				if !slices.Contains(metricNames(r.Expr), metric) {
					t.Errorf("%s reads %q, not %s", r.Alert, r.Expr, metric)
				}
				delete(want, r.Alert)
			}
		}
	}
	for alert := range want {
		t.Errorf("alerts.yaml has no %s", alert)
	}
}
