package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/admin"
	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/identity"
	"github.com/presence-bridge/presence-bridge/bridge/metrics"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/bridge/writer"
	"github.com/presence-bridge/presence-bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/outputs"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const (
	token   = "s3cret-admin-token"
	aliceID = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
)

var now = time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC)

type fixedClock struct{}

func (fixedClock) Now() time.Time { return now }

// deadLetters is an in-memory dead-letter stream.
type deadLetters struct {
	list     []eventlog.DeadLetter
	replayed []uint64
}

func (d *deadLetters) ListDeadLetters(_ context.Context, from uint64, limit int) ([]eventlog.DeadLetter, error) {
	var out []eventlog.DeadLetter
	for _, l := range d.list {
		if l.Seq >= from && len(out) < limit {
			out = append(out, l)
		}
	}
	return out, nil
}

func (d *deadLetters) ReplayDeadLetter(_ context.Context, seq uint64) error {
	for _, l := range d.list {
		if l.Seq == seq {
			d.replayed = append(d.replayed, seq)
			return nil
		}
	}
	return errors.New("no such dead letter")
}

func (d *deadLetters) PurgeDeadLetters(context.Context) (uint64, error) { return 0, nil }

// fixture is a status page over a real state store (on an in-process
// NATS server) holding Alice in a call, with fixed figures and history.
type fixture struct {
	server *httptest.Server
	dl     *deadLetters
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

// watchStatus and outputStatus are the Teams watch and outputs the
// fixture shows: one tenant stretched, one output failing with an error.
var (
	watchStatus = []metrics.WatchStatus{{Tenant: "contoso.example", Watched: 1200, CycleSeconds: 2.46, BudgetUsed: 37, Budget: 1000,
		Stretched: true, LastRead: now.Add(-time.Second), Reads: map[string]uint64{"ok": 400}}}
	outputStatus = []metrics.OutputStatus{
		{Name: "bus", Type: "nats", Healthy: true, Published: map[string]uint64{"teams": 40, "bridge": 3}, Skipped: 2},
		{Name: "pbx-feed", Type: "nats", Published: map[string]uint64{}, Failures: 12, Queued: 4, Lag: 95 * time.Second,
			LastError: "nats output pbx-feed: nats: no responders <available>", LastErrorAt: now.Add(-10 * time.Second)},
		{Name: "crm", Type: "webhook", Healthy: true, Published: map[string]uint64{"teams": 5}, Delivery: &outputs.Health{
			Deliveries: map[string]uint64{"delivered": 5, "retried": 3, "dead_lettered": 1}, Queued: 2, Oldest: 300 * time.Second, Disabled: true,
			LastError: "HTTP 410 Gone: endpoint disabled", LastErrorAt: now.Add(-5 * time.Second)}},
	}
)

// newFixtureWith is newFixture with its Deps changed by change (nil:
// unchanged).
func newFixtureWith(t *testing.T, change func(*admin.Deps)) *fixture {
	t.Helper()
	js, _ := natstest.Start(t)
	ctx := context.Background()
	rules := state.Rules{Call: &adapters.Pair{Availability: "Busy", Activity: "InACall"}, Priority: []string{"conference", "call", "meeting", "presence"}, MaxCallDuration: 4 * time.Hour}
	store, err := state.Open(ctx, js, state.Options{Rules: rules, Clock: fixedClock{}})
	if err != nil {
		t.Fatal(err)
	}
	err = store.Apply(ctx, "contoso.example", aliceID, adapters.Event{ID: "pbx-1:CA42:1", Source: "pbx-main", Type: "call", User: "alice@contoso.example", CallID: "CA42", State: "active", OccurredAt: now.Add(-5 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	gauge := func(name string, labels prometheus.Labels, v float64) {
		names := []string{}
		for k := range labels {
			names = append(names, k)
		}
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: name}, names)
		reg.MustRegister(g)
		g.With(labels).Set(v)
	}
	gauge("presence_bridge_breaker_state", prometheus.Labels{"tenant": "contoso.example"}, 2)
	gauge("presence_bridge_writer_backlog", prometheus.Labels{"tenant": "contoso.example"}, 12)
	gauge("presence_bridge_source_last_event_timestamp_seconds", prometheus.Labels{"source": "pbx-main"}, float64(now.Add(-time.Minute).Unix()))
	rejections := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "presence_bridge_webhook_rejections_total", Help: "r"}, []string{"source", "reason"})
	reg.MustRegister(rejections)
	rejections.WithLabelValues("pbx-main", "signature").Add(3)
	rejections.WithLabelValues("pbx-main", "too_large").Add(1)
	gauge("presence_bridge_source_running", prometheus.Labels{"source": "office-pbx"}, 1)
	entities := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "presence_bridge_source_entities", Help: "e"}, []string{"source", "state"})
	reg.MustRegister(entities)
	entities.WithLabelValues("office-pbx", "subscribed").Set(2)
	entities.WithLabelValues("office-pbx", "unsubscribed").Set(1)

	occurred := now.Add(-5 * time.Minute)
	entries := []history.Entry{
		{At: now.Add(-5 * time.Minute), Source: "pbx-main", ID: "pbx-1:CA42:1", Type: "call", State: "active", OccurredAt: &occurred, Outcome: "applied"},
		history.Decision(history.DecisionRefused, rules.Call, errors.New("set presence: graph answered 400 BadRequest <b>bold</b>"), now.Add(-4*time.Minute)),
		history.Sent(rules.Call, now.Add(-3*time.Minute)),
		history.TeamsChange("bridge", *rules.Call, []string{"pbx-main", "office-pbx"}, "C42", now.Add(-2*time.Minute)),
	}
	dl := &deadLetters{list: []eventlog.DeadLetter{
		{Seq: 7, Subject: "presence.events.pbx-main", Source: "pbx-main", Reason: "graph refused the change for user " + aliceID, GraphError: "graph answered 400 <script>alert(1)</script>", At: now.Add(-4 * time.Minute)},
		{Seq: 9, Subject: "presence.events.pbx-main", Source: "pbx-main", Reason: "unknown user", At: now.Add(-2 * time.Minute)},
	}}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	deps := admin.Deps{
		Token:       token,
		DeadLetters: dl,
		Resolve: func(_ context.Context, tenant, user string) (string, error) {
			switch {
			case tenant != "contoso.example":
				return "", admin.ErrUnknownTenant
			case user == "alice@contoso.example" || user == aliceID:
				return aliceID, nil
			case user == "graph-down@contoso.example":
				return "", errors.New("resolve graph-down@contoso.example: graph answered 503")
			}
			return "", identity.ErrUnknownUser
		},
		Stages:  func() (*state.Store, *writer.Pool, state.Rules) { return store, nil, rules },
		Tenants: []string{"contoso.example"},
		History: func(context.Context, string, string) ([]history.Entry, error) { return entries, nil },
		Sources: func() []admin.Source {
			return []admin.Source{{Name: "pbx-main", Type: "generic", Tenant: "contoso.example", Path: "/v1/hooks/pbx-main"}, {Name: "calendar", Type: "graphcalendar", Tenant: "contoso.example", Path: "/v1/hooks/calendar"},
				{Name: "office-pbx", Type: "sipdialog", Tenant: "contoso.example"}}
		},
		Metrics: reg,
		Watch:   func() []metrics.WatchStatus { return watchStatus },
		Outputs: func() []metrics.OutputStatus { return outputStatus },
		Now:     func() time.Time { return now },
	}
	if change != nil {
		change(&deps)
	}
	admin.Register(r, deps)
	f := &fixture{server: httptest.NewServer(r), dl: dl}
	t.Cleanup(f.server.Close)
	return f
}

// client follows no redirects, so tests see them.
var client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (f *fixture) do(t *testing.T, method, path string, form url.Values, cookie *http.Cookie) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.server.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(raw), token) || strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), ";"), token) {
		t.Fatalf("%s %s shows the admin token", method, path)
	}
	return resp, string(raw)
}

// login posts the token and returns the session cookie.
func (f *fixture) login(t *testing.T) *http.Cookie {
	t.Helper()
	resp, _ := f.do(t, http.MethodPost, "/login", url.Values{"token": {token}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, c := range resp.Cookies() {
		if c.Name == "presence_bridge_session" {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Value == "" {
				t.Fatalf("session cookie %+v", c)
			}
			return c
		}
	}
	t.Fatal("login set no session cookie")
	return nil
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

func TestPageLogin(t *testing.T) {
	f := newFixture(t)
	resp, body := f.do(t, http.MethodGet, "/", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `<form method="post" action="/login"`) || strings.Contains(body, `id="tenants"`) {
		t.Fatalf("logged out: %d, want only the login form:\n%s", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	resp, body = f.do(t, http.MethodPost, "/login", url.Values{"token": {"wrong"}}, nil)
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 || !strings.Contains(body, "not the admin token") {
		t.Fatalf("wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	forged := &http.Cookie{Name: "presence_bridge_session", Value: strings.Repeat("0", 64)}
	if _, body := f.do(t, http.MethodGet, "/", nil, forged); strings.Contains(body, `id="tenants"`) {
		t.Fatal("a forged cookie shows the page")
	}
	cookie := f.login(t)
	if _, body = f.do(t, http.MethodGet, "/", nil, cookie); !strings.Contains(body, `id="tenants"`) {
		t.Fatalf("logged in, no status page:\n%s", body)
	}
	csrf := csrfField.FindStringSubmatch(body)
	resp, _ = f.do(t, http.MethodPost, "/logout", url.Values{"csrf": {csrf[1]}}, cookie)
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Fatalf("logout: %d %v", resp.StatusCode, resp.Cookies())
	}
}

// The status page as a whole, against a golden file (the CSRF field,
// random per process, masked).
func TestPageGolden(t *testing.T) {
	f := newFixture(t)
	cookie := f.login(t)
	resp, body := f.do(t, http.MethodGet, "/?tenant=contoso.example&user=alice%40contoso.example&notice=Dead+letter+3+replayed.", nil, cookie)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	got := csrfField.ReplaceAllString(body, `name="csrf" value="CSRF"`)
	golden := "testdata/status.html"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("status page differs from %s (go test -run TestPageGolden -update to accept):\n%s", golden, got)
	}
}

// What the page must show, checked piece by piece.
func TestPageStructure(t *testing.T) {
	f := newFixture(t)
	cookie := f.login(t)
	_, body := f.do(t, http.MethodGet, "/?tenant=contoso.example&user="+aliceID, nil, cookie)
	for _, want := range []string{
		`<td>contoso.example</td><td>another bridge (or none)</td><td>open</td><td class="num">—</td><td class="num">12</td>`,
		`<td>pbx-main</td><td>generic</td><td>contoso.example</td><td><code>/v1/hooks/pbx-main</code></td><td>2026-12-03 09:29:00Z</td>`,
		`signature: 3, too_large: 1`,
		`<td>pbx-main</td><td>generic</td><td>contoso.example</td><td><code>/v1/hooks/pbx-main</code></td><td>2026-12-03 09:29:00Z</td>
<td><span class="muted">webhook</span></td>
<td>—</td>`,
		`<td>office-pbx</td><td>sipdialog</td><td>contoso.example</td><td><code></code></td><td>—</td>
<td>this bridge</td>
<td><span class="bad">2 of 3 subscribed</span></td>`,
		`<td>calendar</td>`, `none</td>`,
		`action="/deadletters/7/replay"`, `action="/deadletters/9/replay"`,
		`graph answered 400 &lt;script&gt;alert(1)&lt;/script&gt;`,
		"<td><code>" + aliceID + "</code></td>\n<td>Busy/InACall</td>\n<td>nothing yet</td>\n<td>none under way</td>",
		`<td>pbx-main</td><td>active</td><td>2026-12-03 09:30:00Z</td><td>2026-12-03 13:30:00Z</td>`,
		`writer: refused`, `BadRequest &lt;b&gt;bold&lt;/b&gt;`, `writer: set`,
		`<td>Teams: Busy/InACall</td><td>origin bridge (pbx-main, office-pbx)</td><td></td><td></td><td></td><td><span class="muted">sequenceNumber C42</span></td>`,
		`<td>pbx-main / <code>pbx-1:CA42:1</code></td><td>call active</td><td>2026-12-03 09:25:00Z</td><td>applied</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Error("page carries a script")
	}
	forms := regexp.MustCompile(`<form[^>]*method="post"[^>]*>(.*?)</form>`).FindAllStringSubmatch(body, -1)
	if len(forms) != 3 { // logout and two replays
		t.Fatalf("%d post forms, want 3", len(forms))
	}
	for _, form := range forms {
		if !csrfField.MatchString(form[1]) {
			t.Errorf("post form without a CSRF field: %s", form[0])
		}
	}
	for user, want := range map[string]string{
		"nobody@contoso.example":     "unknown user",
		"graph-down@contoso.example": "can not be resolved now",
	} {
		_, body := f.do(t, http.MethodGet, "/?tenant=contoso.example&user="+url.QueryEscape(user), nil, cookie)
		if !strings.Contains(body, `class="error" role="alert"`) || !strings.Contains(body, want) {
			t.Errorf("lookup of %s does not say %q", user, want)
		}
	}
}

// Replay buttons post with the session and the CSRF field; without
// either nothing is replayed.
func TestPageReplayNeedsSessionAndCSRF(t *testing.T) {
	f := newFixture(t)
	cookie := f.login(t)
	_, body := f.do(t, http.MethodGet, "/", nil, cookie)
	csrf := csrfField.FindStringSubmatch(body)[1]
	for _, tc := range []struct {
		name   string
		form   url.Values
		cookie *http.Cookie
	}{
		{"no session", url.Values{"csrf": {csrf}}, nil},
		{"no csrf", url.Values{}, cookie},
		{"wrong csrf", url.Values{"csrf": {strings.Repeat("a", 64)}}, cookie},
		{"the token instead of a session", url.Values{"csrf": {csrf}, "token": {token}}, nil},
	} {
		resp, _ := f.do(t, http.MethodPost, "/deadletters/7/replay", tc.form, tc.cookie)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, resp.StatusCode)
		}
	}
	if len(f.dl.replayed) != 0 {
		t.Fatalf("replayed %v without session and CSRF", f.dl.replayed)
	}
	resp, _ := f.do(t, http.MethodPost, "/deadletters/7/replay", url.Values{"csrf": {csrf}}, cookie)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "replayed") {
		t.Fatalf("replay: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if len(f.dl.replayed) != 1 || f.dl.replayed[0] != 7 {
		t.Fatalf("replayed %v, want [7]", f.dl.replayed)
	}
	resp, _ = f.do(t, http.MethodPost, "/deadletters/8/replay", url.Values{"csrf": {csrf}}, cookie)
	if loc := resp.Header.Get("Location"); !strings.Contains(loc, "not+replayed") {
		t.Fatalf("replay of a missing dead letter redirects to %q", loc)
	}
}

func TestPageOffWithoutToken(t *testing.T) {
	r := gin.New()
	admin.Register(r, admin.Deps{})
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		path := map[string]string{http.MethodGet: "/", http.MethodPost: "/login"}[method]
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader("token=")))
		if w.Code != http.StatusNotFound {
			t.Errorf("%s %s without admin.token: %d", method, path, w.Code)
		}
	}
}

// Dead letters come twenty to a page, with a link to the next.
func TestPageDeadLetterPaging(t *testing.T) {
	f := newFixture(t)
	for seq := uint64(10); seq < 33; seq++ {
		f.dl.list = append(f.dl.list, eventlog.DeadLetter{Seq: seq, Reason: "unknown user", At: now})
	}
	cookie := f.login(t)
	_, body := f.do(t, http.MethodGet, "/", nil, cookie)
	if n := strings.Count(body, `/replay"`); n != 20 {
		t.Fatalf("%d replay buttons on the first page, want 20", n)
	}
	if !strings.Contains(body, `href="/?from=28#deadletters"`) {
		t.Fatal("no link to the next page, from 28")
	}
	_, body = f.do(t, http.MethodGet, "/?from=28", nil, cookie)
	if n := strings.Count(body, `/replay"`); n != 5 || strings.Contains(body, "#deadletters\">More") {
		t.Fatalf("%d replay buttons on the last page, want 5 and no link", n)
	}
}

// TestWrongTokensHeldBack: after ten wrong admin tokens from one address,
// to the API and the login form alike, that address is refused with 429,
// a Retry-After and a JSON body naming the problem, even with the right
// token; nothing the guessing client sent shows in the answers.
func TestWrongTokensHeldBack(t *testing.T) {
	f := newFixture(t)
	for i := range 10 {
		var status int
		if i%2 == 0 {
			resp, _ := f.do(t, http.MethodPost, "/login", url.Values{"token": {fmt.Sprintf("guess-%d", i)}}, nil)
			status = resp.StatusCode
		} else {
			req, _ := http.NewRequest(http.MethodGet, f.server.URL+"/v1/admin/tenants", nil)
			req.Header.Set("Authorization", fmt.Sprintf("Bearer guess-%d", i))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			status = resp.StatusCode
		}
		if status != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i+1, status)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, f.server.URL+"/v1/admin/tenants", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after ten wrong tokens: %d, Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(string(raw), `"too_many_attempts"`) {
		t.Fatalf("429 body %s names no problem", raw)
	}
	page, body := f.do(t, http.MethodPost, "/login", url.Values{"token": {token}}, nil)
	if page.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many wrong tokens") {
		t.Fatalf("login after ten wrong tokens: %d", page.StatusCode)
	}
	if strings.Contains(body, "guess-") {
		t.Fatal("the login page shows a guessed token")
	}
}

// The Teams watch and Outputs sections show the snapshots, and are left
// out when the bridge gives none.
func TestPageTwoWaySections(t *testing.T) {
	f := newFixture(t)
	_, body := f.do(t, http.MethodGet, "/", nil, f.login(t))
	for _, want := range []string{
		`<h2 id="watch">Teams watch</h2>`,
		"<tr><td>contoso.example</td><td class=\"num\">1200</td><td class=\"num\">2.5 s</td><td class=\"num\">37 of 1000</td><td>2026-12-03 09:29:59Z</td>\n<td><span class=\"bad\">yes",
		`<h2 id="outputs">Outputs</h2>`,
		`<tr><td>bus</td><td>nats</td><td>healthy</td><td>bridge 3, teams 40</td><td class="num">0</td><td class="num">0.0 s</td>`,
		`<tr><td>pbx-feed</td><td>nats</td><td><span class="bad">failing</span></td><td>none</td><td class="num">4</td><td class="num">95.0 s</td>`,
		`<code>nats output pbx-feed: nats: no responders &lt;available&gt;</code> at 2026-12-03 09:29:50Z`,
		`<tr><td>crm</td><td>webhook</td><td><span class="bad">disabled (410 Gone)</span><br><span class="muted">delivered 5, retried 3, dead letters 1, dropped 0; 2 pending, oldest 300 s</span></td>`,
		`<code>HTTP 410 Gone: endpoint disabled</code> at 2026-12-03 09:29:55Z`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	hidden := newFixtureWith(t, func(d *admin.Deps) { d.Watch, d.Outputs = nil, nil })
	_, body = hidden.do(t, http.MethodGet, "/", nil, hidden.login(t))
	if strings.Contains(body, `id="watch"`) || strings.Contains(body, `id="outputs"`) {
		t.Error("sections shown without their snapshots")
	}
}

// GET /v1/admin/outputs lists the outputs with their health, behind the
// admin token; without outputs it is an empty list.
func TestOutputsEndpoint(t *testing.T) {
	get := func(f *fixture, auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, f.server.URL+"/v1/admin/outputs", nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	f := newFixture(t)
	if code, body := get(f, "wrong"); code != http.StatusUnauthorized || !strings.Contains(body, `"unauthorized"`) {
		t.Errorf("wrong token: %d %s", code, body)
	}
	code, body := get(f, token)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var got struct{ Outputs []admin.OutputView }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	at, hookAt := now.Add(-10*time.Second), now.Add(-5*time.Second)
	want := []admin.OutputView{
		{Name: "bus", Type: "nats", Healthy: true, Published: map[string]uint64{"teams": 40, "bridge": 3}, Skipped: 2},
		{Name: "pbx-feed", Type: "nats", Published: map[string]uint64{}, Failures: 12, Queued: 4, LagSeconds: 95,
			LastError: "nats output pbx-feed: nats: no responders <available>", LastErrorAt: &at},
		{Name: "crm", Type: "webhook", Published: map[string]uint64{"teams": 5}, LastError: "HTTP 410 Gone: endpoint disabled", LastErrorAt: &hookAt,
			Deliveries: map[string]uint64{"delivered": 5, "retried": 3, "dead_lettered": 1}, Pending: 2, OldestSeconds: 300, Disabled: true},
	}
	if !reflect.DeepEqual(got.Outputs, want) {
		t.Errorf("outputs %+v\nwant %+v", got.Outputs, want)
	}
	for _, key := range []string{`"healthy":false`, `"lagSeconds":95`, `"lastErrorAt":"2026-12-03T09:29:50Z"`} {
		if !strings.Contains(body, key) {
			t.Errorf("answer lacks %s: %s", key, body)
		}
	}
	none := newFixtureWith(t, func(d *admin.Deps) { d.Outputs = nil })
	if code, body := get(none, token); code != http.StatusOK || body != `{"outputs":[]}` {
		t.Errorf("without outputs: %d %s", code, body)
	}
}
