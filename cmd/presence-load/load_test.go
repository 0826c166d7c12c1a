package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/config"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"none", nil, 99, 0},
		{"one", ms(7), 50, 7 * time.Millisecond},
		{"one at p100", ms(7), 100, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 50, 50 * time.Millisecond},
		{"max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of ten is the largest", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

// exposition is what a bridge's /metrics page looks like around the
// processed counter.
const exposition = `# HELP presence_bridge_events_processed_total Events taken from JetStream, by outcome (applied, retry, dead_letter).
# TYPE presence_bridge_events_processed_total counter
presence_bridge_events_processed_total{outcome="applied"} 1.2e+06
presence_bridge_events_processed_total{outcome="dead_letter"} 3
presence_bridge_events_processed_total{outcome="retry"} 40
# HELP presence_bridge_http_requests_total HTTP requests answered, by route and status.
presence_bridge_http_requests_total{route="/v1/events",status="202"} 1.200003e+06
presence_bridge_events_processed_total_extra 99
go_goroutines 12
`

func TestSumByLabel(t *testing.T) {
	for _, tc := range []struct {
		name, text, metric, label string
		want                      map[string]float64
		wantErr                   string
	}{
		{name: "bridge page", text: exposition, metric: processedMetric, label: outcomeLabel,
			want: map[string]float64{"applied": 1.2e6, "dead_letter": 3, "retry": 40}},
		{name: "other metric", text: exposition, metric: "presence_bridge_http_requests_total", label: "status",
			want: map[string]float64{"202": 1200003}},
		{name: "absent", text: exposition, metric: "nope_total", label: "x", want: map[string]float64{}},
		{name: "no labels", text: "go_goroutines 12\n", metric: "go_goroutines", label: "x", want: map[string]float64{"": 12}},
		{name: "same label value summed", text: "m{a=\"x\",b=\"1\"} 2\nm{b=\"2\",a=\"x\"} 3 1700000000000\n", metric: "m", label: "a",
			want: map[string]float64{"x": 5}},
		{name: "escapes and spaces", text: `m{ a = "q\"u\\o\nte" , } 1` + "\n", metric: "m", label: "a",
			want: map[string]float64{"q\"u\\o\nte": 1}},
		{name: "comma and brace inside a value", text: `m{a="x,}y"} 4`, metric: "m", label: "a", want: map[string]float64{"x,}y": 4}},
		{name: "bad value", text: "m 1x\n", metric: "m", label: "a", wantErr: "line 1: bad value"},
		{name: "NaN", text: "m NaN\n", metric: "m", label: "a", wantErr: "bad value"},
		{name: "no value", text: "#\nm{a=\"b\"}\n", metric: "m", label: "a", wantErr: "line 2: want a value"},
		{name: "unterminated", text: `m{a="b} 1`, metric: "m", label: "a", wantErr: "unterminated"},
		{name: "unquoted", text: `m{a=b} 1`, metric: "m", label: "a", wantErr: "not quoted"},
		{name: "no equals", text: `m{a} 1`, metric: "m", label: "a", wantErr: "bad label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sumByLabel([]byte(tc.text), tc.metric, tc.label)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProcessedLeavesOutRetries(t *testing.T) {
	done, by, err := processed([]byte(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if done != 1.2e6+3 || by["retry"] != 40 {
		t.Errorf("processed = %v, %v; want 1200003 done and 40 retries", done, by)
	}
}

func FuzzSumByLabel(f *testing.F) {
	for _, s := range []string{exposition, `m{a="x\"y"} 1 2`, "m{", `m{a="`, "m 1e400", "m -Inf", "\n\n#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 1<<16 {
			return
		}
		for _, m := range []string{processedMetric, "m"} {
			sums, err := sumByLabel([]byte(text), m, "a")
			if err == nil && sums == nil {
				t.Fatal("nil sums without an error")
			}
		}
	})
}

// TestEventsAreValidCanonicalEvents decodes what the generator posts with
// the bridge's own decoder: every event valid, ids distinct, users spread,
// each user's calls walking ringing, active, ended.
func TestEventsAreValidCanonicalEvents(t *testing.T) {
	g := newGenerator(postOptions{source: "bench", domain: "x.example", users: 3}, "r1")
	ids := map[string]bool{}
	var user1 []string
	for i := range int64(12) {
		events, err := adapters.DecodeEvents(g.event(nil, i))
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		e := events[0]
		if ids[e.ID] {
			t.Errorf("event %d repeats id %s", i, e.ID)
		}
		ids[e.ID] = true
		if want := g.names[i%3]; e.User != want || e.Source != "bench" || e.Type != adapters.TypeCall {
			t.Errorf("event %d is %+v, want a call of %s from bench", i, e, want)
		}
		if i%3 == 1 {
			user1 = append(user1, e.CallID+" "+e.State)
		}
	}
	want := []string{"r1-1-0 ringing", "r1-1-0 active", "r1-1-0 ended", "r1-1-1 ringing"}
	if fmt.Sprint(user1) != fmt.Sprint(want) {
		t.Errorf("user 1's events are %v, want %v", user1, want)
	}
	req := g.request(nil, 0)
	if !bytes.HasPrefix(req, []byte("POST ")) || !bytes.Contains(req, []byte("Content-Length: ")) {
		t.Errorf("request %q", req)
	}
}

// startBare serves the bare handler on a loopback port for the test.
func startBare(t *testing.T, token string) (*bare, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := newBare(ctx, t.TempDir(), token)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: b.Handler()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		b.Close()
	})
	return b, "http://" + ln.Addr().String() + "/v1/events"
}

func TestBare(t *testing.T) {
	const token = "s3cret-token"
	b, url := startBare(t, token)
	valid := `{"id":"e1","source":"bench","type":"call","user":"user0001@contoso.example","occurredAt":"2026-01-02T03:04:05Z","callId":"c1","state":"ringing"}`
	for _, tc := range []struct {
		name, auth, body string
		want             int
	}{
		{"valid", "Bearer " + token, valid, http.StatusAccepted},
		{"the same id again", "Bearer " + token, valid, http.StatusAccepted},
		{"no token", "", valid, http.StatusUnauthorized},
		{"wrong token", "Bearer nope", valid, http.StatusUnauthorized},
		{"token without scheme", token, valid, http.StatusUnauthorized},
		{"not JSON", "Bearer " + token, `{"id":`, http.StatusBadRequest},
		{"invalid event", "Bearer " + token, `{"id":"e2","source":"bench","type":"call","occurredAt":"2026-01-02T03:04:05Z","callId":"c1","state":"dialing"}`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d (%s), want %d", resp.StatusCode, body.String(), tc.want)
			}
			if strings.Contains(body.String(), token) {
				t.Errorf("the answer %q shows the token", body.String())
			}
		})
	}
	// The two valid posts share a message id: JetStream stored one.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := b.js.Stream(ctx, bareStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("the stream holds %d messages, want 1", info.State.Msgs)
	}
}

// TestPostAgainstBare runs the load tool briefly against the bare handler:
// at full speed every request is answered 202 and timed; at a fixed rate
// exactly rate x duration requests are sent; with a wrong token nothing
// is accepted and the token is not in the report.
func TestPostAgainstBare(t *testing.T) {
	const token = "s3cret-token"
	_, url := startBare(t, token)
	opts := postOptions{url: url, token: token, source: "bench", domain: "contoso.example",
		duration: 100 * time.Millisecond, conns: 2, users: 10, applyWait: time.Minute}
	if err := opts.check(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := post(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.accepted < 2 || r.rejected+r.errors != 0 || int64(len(r.latencies)) != r.accepted || r.elapsed <= 0 {
		t.Errorf("full speed: %d accepted, %d rejected, %d errors (%s), %d latencies, elapsed %s",
			r.accepted, r.rejected, r.errors, r.firstErr, len(r.latencies), r.elapsed)
	}

	opts.rate = 200 // one every 5 ms: 20 in 100 ms, however late
	if r, err = post(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if r.accepted != 20 || r.rejected+r.errors != 0 {
		t.Errorf("at 200/s for 100 ms: %d accepted, %d rejected, %d errors (%s); want 20 accepted", r.accepted, r.rejected, r.errors, r.firstErr)
	}

	opts.rate, opts.token = 0, "wrong-"+token
	if r, err = post(ctx, opts); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.print(&out)
	if r.accepted != 0 || r.rejected == 0 || !strings.Contains(out.String(), "status 401") || strings.Contains(out.String(), token) {
		t.Errorf("with a wrong token: %d accepted, %d rejected; report %q", r.accepted, r.rejected, out.String())
	}
}

// TestWaitProcessed serves a /metrics page whose processed counter grows
// by 4 at each scrape: the run waits until it covers the accepted events
// (counted from the scrape before the load, retries left out) and fails
// when the bridge does not get there in time.
func TestWaitProcessed(t *testing.T) {
	var scrapes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := scrapes.Add(1)
		fmt.Fprintf(w, "presence_bridge_events_processed_total{outcome=\"applied\"} %d\n", 100+4*n)
		fmt.Fprintf(w, "presence_bridge_events_processed_total{outcome=\"retry\"} %d\n", 1000*n)
	}))
	defer srv.Close()
	ctx := context.Background()
	o := postOptions{metrics: srv.URL, applyWait: time.Minute}
	_, before, err := scrape(ctx, srv.Client(), srv.URL) // 104 applied
	if err != nil {
		t.Fatal(err)
	}
	r := result{accepted: 10}
	start := time.Now()
	if err := waitProcessed(ctx, srv.Client(), o, start, before, &r); err != nil {
		t.Fatal(err)
	}
	// 108, 112, 116: the third scrape after the baseline covers 10.
	if got := scrapes.Load(); got != 4 {
		t.Errorf("%d scrapes, want 4", got)
	}
	if r.done <= 0 || r.outcomes["applied"] != 12 || r.outcomes["retry"] != 3000 {
		t.Errorf("done %s, outcomes %v; want applied 12, retry 3000", r.done, r.outcomes)
	}

	o.applyWait = time.Nanosecond
	r = result{accepted: 1000}
	err = waitProcessed(ctx, srv.Client(), o, start, before, &r)
	if !errors.Is(err, errNotProcessed) || !strings.Contains(err.Error(), "of 1000 accepted events") {
		t.Errorf("err = %v, want the bridge to fall short", err)
	}
}

// TestBenchConfig checks that the committed bench configuration, filled
// in as e2e does, is a valid bridge configuration whose emulator knows
// every bench user, and that with the users spread over tenants each
// tenant has its own emulator tenant, users, default budget and source,
// and the load generator posts each user's events with their tenant's
// source and token.
func TestBenchConfig(t *testing.T) {
	for _, tc := range []struct {
		name           string
		users, tenants int
		perTenant      []int // users in each tenant
	}{
		{"one tenant", 1000, 1, []int{1000}},
		{"five tenants", 1000, 5, []int{200, 200, 200, 200, 200}},
		{"uneven", 10, 3, []int{4, 3, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			data, err := benchConfig("bridge.yaml", 18080, filepath.Join(dir, "nats"), tc.users, tc.tenants, false, "")
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(data, dir)
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			if cfg.HTTP.Listen != "127.0.0.1:18080" || !cfg.NATS.Embedded || cfg.NATS.Listen != "" || !cfg.Graph.Emulator.Enabled {
				t.Errorf("http.listen %q, nats embedded %v listen %q, emulator %v", cfg.HTTP.Listen, cfg.NATS.Embedded, cfg.NATS.Listen, cfg.Graph.Emulator.Enabled)
			}
			if _, err := os.Stat(filepath.Join(dir, "nats")); err == nil {
				t.Error("parsing created the store")
			}
			if got := cfg.Graph.Emulator.Throttle.Limit; got != 10000 {
				t.Errorf("emulator throttle %d per window, want Graph's 10000 (per tenant)", got)
			}
			if len(cfg.Graph.Tenants) != tc.tenants || len(cfg.Graph.Emulator.Tenants) != tc.tenants || len(cfg.Sources) != tc.tenants {
				t.Fatalf("%d tenants, %d emulator tenants, %d sources; want %d each",
					len(cfg.Graph.Tenants), len(cfg.Graph.Emulator.Tenants), len(cfg.Sources), tc.tenants)
			}
			// Where each user is, by the emulator; which source and token
			// post for each tenant, by the bridge.
			tenantOf := map[string]string{}
			tokens := map[string]bool{}
			for k, tenant := range cfg.Graph.Tenants {
				em := cfg.Graph.Emulator.Tenants[k]
				if em.ID != tenant.ID || tenant.Budget != cfg.Graph.Tenants[0].Budget || len(em.Apps) != 1 || em.Apps[0].ClientID != tenant.ClientID {
					t.Errorf("tenant %d: %q budget %d, emulator tenant %q apps %+v", k, tenant.ID, tenant.Budget, em.ID, em.Apps)
				}
				if len(em.Users) != tc.perTenant[k] {
					t.Errorf("tenant %s has %d users, want %d", tenant.ID, len(em.Users), tc.perTenant[k])
				}
				for _, u := range em.Users {
					tenantOf[u.UserPrincipalName] = tenant.ID
				}
				s := cfg.Sources[k]
				if s.Tenant != tenant.ID || s.Type != "generic" || tokens[s.Token] {
					t.Errorf("source %d: %q of tenant %q, type %q, token shared %v", k, s.Name, s.Tenant, s.Type, tokens[s.Token])
				}
				tokens[s.Token] = true
			}
			if len(tenantOf) != tc.users {
				t.Errorf("%d distinct users in the emulator, want %d", len(tenantOf), tc.users)
			}
			g := newGenerator(postOptions{token: benchToken, source: "bench", domain: "contoso.example", users: tc.users, tenants: tc.tenants}, "r1")
			g.host, g.path = "127.0.0.1:18080", "/v1/events"
			for i := range int64(2 * tc.users) {
				req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(g.request(nil, i))))
				if err != nil {
					t.Fatal(err)
				}
				events, err := adapters.DecodeEvents(g.event(nil, i))
				if err != nil {
					t.Fatal(err)
				}
				e := events[0]
				tenant, known := tenantOf[e.User]
				k := slices.IndexFunc(cfg.Sources, func(s config.Source) bool { return s.Name == e.Source })
				if !known || k < 0 || cfg.Sources[k].Tenant != tenant || req.Header.Get("Authorization") != "Bearer "+cfg.Sources[k].Token {
					t.Fatalf("event %d: user %s (tenant %q, known %v) from source %q with %q", i, e.User, tenant, known, e.Source, req.Header.Get("Authorization"))
				}
			}
		})
	}
}

func TestPrintTable(t *testing.T) {
	lat := func(d time.Duration) []time.Duration { return []time.Duration{d} }
	full := func(accepted int64, done time.Duration) result {
		return result{accepted: accepted, elapsed: 10 * time.Second, done: done}
	}
	at := func(p99 time.Duration) result { return result{rate: 2000, accepted: 1, latencies: lat(p99)} }
	for _, tc := range []struct {
		name   string
		runs   [5]result
		want   bool
		missed string
	}{
		{"every target met", [5]result{full(100000, 0), full(90000, 15*time.Second), at(time.Millisecond), at(3 * time.Millisecond), full(90000, 15*time.Second)}, true, ""},
		{"ingest below 85%", [5]result{full(100000, 0), full(90000, 10*time.Second), at(time.Millisecond), at(time.Millisecond), full(80000, 10*time.Second)}, false, "accepted/s, ingest alone"},
		{"applied below 50%", [5]result{full(100000, 0), full(90000, 30*time.Second), at(time.Millisecond), at(time.Millisecond), full(90000, 30*time.Second)}, false, "accepted and applied/s"},
		{"p99 above 3x", [5]result{full(100000, 0), full(90000, 10*time.Second), at(time.Millisecond), at(4 * time.Millisecond), full(90000, 10*time.Second)}, false, "p99 latency"},
		{"refused requests", [5]result{full(100000, 0), {accepted: 90000, rejected: 1, elapsed: 10 * time.Second, done: 10 * time.Second}, at(time.Millisecond), at(time.Millisecond), {accepted: 90000, rejected: 1, elapsed: 10 * time.Second, done: 10 * time.Second}}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if got := printTable(&out, 2000, tc.runs); got != tc.want {
				t.Errorf("printTable = %v, want %v\n%s", got, tc.want, out.String())
			}
			for _, line := range strings.Split(out.String(), "\n") {
				if strings.HasSuffix(line, "MISSED") != (tc.missed != "" && strings.HasPrefix(line, tc.missed)) {
					t.Errorf("line %q (want MISSED only on %q)", line, tc.missed)
				}
			}
		})
	}
}

// TestParseGraphLatency reads the bridge's end-to-end histogram: p50 and
// p99 interpolated within their buckets, the share within a goal, every
// event's fate.
func TestParseGraphLatency(t *testing.T) {
	page := `# TYPE presence_bridge_event_to_graph_seconds histogram
presence_bridge_event_to_graph_seconds_bucket{le="0.01"} 50
presence_bridge_event_to_graph_seconds_bucket{le="0.05"} 90
presence_bridge_event_to_graph_seconds_bucket{le="0.25"} 100
presence_bridge_event_to_graph_seconds_bucket{le="+Inf"} 100
presence_bridge_event_to_graph_seconds_sum 2.5
presence_bridge_event_to_graph_seconds_count 100
presence_bridge_event_to_graph_outcomes_total{outcome="graph"} 100
presence_bridge_event_to_graph_outcomes_total{outcome="no_call"} 40
presence_bridge_event_to_graph_outcomes_total{outcome="older"} 2
`
	g, err := parseGraphLatency([]byte(page))
	if err != nil {
		t.Fatal(err)
	}
	if g.timed != 100 || g.settled() != 142 {
		t.Fatalf("timed %v settled %v, want 100 and 142", g.timed, g.settled())
	}
	for _, tc := range []struct {
		name      string
		got, want time.Duration
	}{
		{"p50", g.p50, 10 * time.Millisecond},
		{"p99", g.p99, 230 * time.Millisecond}, // 90 at 50 ms, 100 at 250 ms: rank 99 is 9/10 of the way
	} {
		if d := tc.got - tc.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("%s = %s, want %s", tc.name, tc.got, tc.want)
		}
	}
	for _, tc := range []struct {
		goal  time.Duration
		share float64
		ok    bool
	}{{50 * time.Millisecond, 0.9, true}, {250 * time.Millisecond, 1, true}, {70 * time.Millisecond, 0, false}} {
		if share, ok := g.within(tc.goal); share != tc.share || ok != tc.ok {
			t.Errorf("within(%s) = %v %v, want %v %v", tc.goal, share, ok, tc.share, tc.ok)
		}
	}
	if _, err := parseGraphLatency([]byte(`presence_bridge_event_to_graph_seconds_bucket{le="soon"} 1` + "\n")); err == nil {
		t.Fatal("a bucket bound that is not a number was read")
	}
}

// TestBenchConfigGraphApart checks the configuration e2e writes with the
// Graph emulator in a process of its own: the bridge's emulator is off,
// every tenant points at the one apart, and that one (presence-bridge
// emulator reading the same file) listens there and knows every tenant.
func TestBenchConfigGraphApart(t *testing.T) {
	dir := t.TempDir()
	data, err := benchConfig("bridge.yaml", 18080, filepath.Join(dir, "nats"), 10, 3, false, "127.0.0.1:18081")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data, dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if cfg.Graph.Emulator.Enabled {
		t.Error("the bridge's own emulator is on")
	}
	for _, tenant := range cfg.Graph.Tenants {
		if tenant.GraphURL != "http://127.0.0.1:18081/v1.0" || tenant.LoginURL != "http://127.0.0.1:18081" {
			t.Errorf("tenant %s: graph_url %q login_url %q", tenant.ID, tenant.GraphURL, tenant.LoginURL)
		}
	}
	if em := cfg.Graph.Emulator; em.Listen != "127.0.0.1:18081" || len(em.Tenants) != 3 {
		t.Errorf("emulator listen %q, %d tenants", em.Listen, len(em.Tenants))
	}
}

// TestPer1000: CPU per 1,000 events between two readings, and 0 when a
// reading is unknown or there were no events.
func TestPer1000(t *testing.T) {
	for _, tc := range []struct {
		before, after time.Duration
		n             int64
		want          time.Duration
	}{
		{time.Second, 3 * time.Second, 20000, 100 * time.Millisecond},
		{0, 3 * time.Second, 20000, 0},
		{time.Second, 0, 20000, 0},
		{time.Second, 3 * time.Second, 0, 0},
	} {
		if got := per1000(tc.before, tc.after, tc.n); got != tc.want {
			t.Errorf("per1000(%s, %s, %d) = %s, want %s", tc.before, tc.after, tc.n, got, tc.want)
		}
	}
}
