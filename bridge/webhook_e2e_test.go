package bridge_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
)

// The webhook output's secret in the end-to-end test.
const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// hookReceiver is a real HTTP receiver on 127.0.0.1 that verifies every
// request with the Standard Webhooks library, timestamp included, and
// keeps the changes it accepted.
type hookReceiver struct {
	srv    *httptest.Server
	refuse atomic.Bool // answer 400 while set
	mu     sync.Mutex
	got    []outputs.Change
	bad    atomic.Int64
}

func newHookReceiver(t *testing.T) *hookReceiver {
	wh, err := standardwebhooks.NewWebhook(hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		if err := wh.Verify(body, req.Header); err != nil {
			r.bad.Add(1)
			http.Error(w, `{"error":"bad signature"}`, http.StatusUnauthorized)
			return
		}
		var b struct {
			Type string         `json:"type"`
			Data outputs.Change `json:"data"`
		}
		if json.Unmarshal(body, &b) != nil || b.Type != "presence.teams.changed" {
			http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
			return
		}
		if r.refuse.Load() {
			http.Error(w, `{"error":"not now"}`, http.StatusBadRequest)
			return
		}
		b.Data.ID = req.Header.Get("webhook-id")
		r.mu.Lock()
		r.got = append(r.got, b.Data)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// last returns the newest change the receiver accepted for id.
func (r *hookReceiver) last(id string) (outputs.Change, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.got) - 1; i >= 0; i-- {
		if r.got[i].View.ID == id {
			return r.got[i], true
		}
	}
	return outputs.Change{}, false
}

// TestTeamsChangeReachesWebhook: a Teams change set through the emulator
// arrives at a webhook receiver, signed (the library verifies it); a
// change the receiver refuses (400) becomes a dead letter of source
// webhook-hook with the reason, and replaying it through the admin API
// delivers it.
func TestTeamsChangeReachesWebhook(t *testing.T) {
	r := newHookReceiver(t)
	b := startBridge(t, testConfig(t)+fmt.Sprintf(`watch: {enabled: true, interval: 200ms}
outputs:
  - name: hook
    type: webhook
    skip_sources: []
    webhook: {url: %q, secret: %s}
`, r.srv.URL+"/hooks/presence", hookSecret))

	if err := b.Emulator().SetTeamsSession(aliceID, "Busy", "InACall"); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "Alice's Teams call at the receiver", func() bool {
		c, ok := r.last(aliceID)
		return ok && c.Availability == "Busy" && c.Activity == "InACall"
	})
	c, _ := r.last(aliceID)
	if c.Origin != outputs.OriginTeams || c.User != "alice@contoso.example" || c.ID != outputs.ChangeID("contoso.example", aliceID, c.SequenceNumber) {
		t.Errorf("received %+v", c)
	}

	// Refused: a dead letter, listed by the admin API with its reason.
	r.refuse.Store(true)
	if err := b.Emulator().SetTeamsSession(aliceID, "DoNotDisturb", "Presenting"); err != nil {
		t.Fatal(err)
	}
	type letter struct {
		Seq    uint64
		Source string
		Reason string
	}
	var found letter
	testpoll.Until(t, "a webhook dead letter", func() bool {
		var list struct{ DeadLetters []letter }
		adminGet(t, b, "/v1/admin/deadletters", &list)
		for _, d := range list.DeadLetters {
			if d.Source == "webhook-hook" {
				found = d
				return true
			}
		}
		return false
	})
	if !strings.Contains(found.Reason, "HTTP 400: refused, not retried") {
		t.Errorf("dead letter reason %q", found.Reason)
	}
	r.refuse.Store(false)
	if res := post(t, b, "/v1/admin/deadletters/"+strconv.FormatUint(found.Seq, 10)+"/replay", "admin-token", "", ""); res.status != http.StatusOK {
		t.Fatalf("replay: %d %v", res.status, res.body)
	}
	testpoll.Until(t, "the replayed change at the receiver", func() bool {
		c, ok := r.last(aliceID)
		return ok && c.Availability == "DoNotDisturb"
	})
	if n := r.bad.Load(); n != 0 {
		t.Errorf("%d requests did not verify", n)
	}

	// The output's health is on /metrics, the outputs API and the status
	// page, and the secret is on none of them.
	metricsText := scrapeMetrics(t, b).text
	if !strings.Contains(metricsText, `presence_bridge_output_deliveries_total{outcome="dead_lettered",output="hook"} 1`) {
		t.Errorf("metrics lack the webhook's dead letter")
	}
	var api map[string]any
	adminGet(t, b, "/v1/admin/outputs", &api)
	apiText, _ := json.Marshal(api)
	var letters map[string]any
	adminGet(t, b, "/v1/admin/deadletters", &letters)
	lettersText, _ := json.Marshal(letters)
	page := statusPage(t, b)
	if !strings.Contains(page, "<td>hook</td><td>webhook</td>") || !strings.Contains(string(apiText), `"deliveries"`) {
		t.Errorf("the status page or the outputs API lacks the webhook output:\n%s\n%s", apiText, page)
	}
	for where, text := range map[string]string{"metrics": metricsText, "outputs API": string(apiText), "dead letters": string(lettersText), "status page": page} {
		if strings.Contains(text, hookSecret[len("whsec_"):]) {
			t.Errorf("the %s show the webhook secret", where)
		}
	}
}

// statusPage logs in to b's status page and returns it.
func statusPage(t *testing.T, b *bridge.Bridge) string {
	t.Helper()
	base := "http://" + b.Addr()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login, err := noRedirect.PostForm(base+"/login", url.Values{"token": {"admin-token"}})
	if err != nil {
		t.Fatal(err)
	}
	login.Body.Close()
	if len(login.Cookies()) != 1 {
		t.Fatalf("login: %d %v", login.StatusCode, login.Cookies())
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
	req.AddCookie(login.Cookies()[0])
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status page: %d %s", resp.StatusCode, page)
	}
	return string(page)
}

// BenchmarkWatchChangeToWebhook: 1,000 people watched at `interval: 2s`
// with the default read budget; after the first sighting of everyone,
// 100 Teams changes per second are made in the emulator (SetTeamsSession,
// each a different person) for watchChangeSeconds. It reports the time
// from a change in the emulator to its arrival, signed and verified, at
// a webhook receiver on 127.0.0.1 (p50, p99, max). It fails if a change
// never arrives or a request does not verify.
func BenchmarkWatchChangeToWebhook(b *testing.B) {
	const people, perSecond = 1_000, 100
	seconds := watchChangeSeconds
	wh, err := standardwebhooks.NewWebhook(hookSecret)
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	count, bad := 0, 0
	var pending map[string]time.Time
	var latencies []time.Duration
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		at := time.Now()
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		var ev struct{ Data outputs.Change }
		err := wh.Verify(body, req.Header)
		if err == nil {
			err = json.Unmarshal(body, &ev)
		}
		mu.Lock()
		defer mu.Unlock()
		count++
		if err != nil {
			bad++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if made, ok := pending[ev.Data.View.ID]; ok {
			delete(pending, ev.Data.View.ID)
			latencies = append(latencies, at.Sub(made))
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	cfg := strings.Replace(watchConfig(b, people), "  - {name: bus, type: nats, skip_sources: []}\n",
		fmt.Sprintf("  - {name: hook, type: webhook, skip_sources: [], webhook: {url: %q, secret: %s}}\n", srv.URL, hookSecret), 1)
	br := startBridge(b, cfg)
	em := br.Emulator()
	testpoll.Within(b, 5*time.Minute, "the first sighting of everyone at the receiver", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return count >= people
	})
	mu.Lock()
	pending = map[string]time.Time{}
	mu.Unlock()

	b.ResetTimer()
	changes := 0
	for run := range b.N {
		changes += paceTeamsChanges(b, em, run*seconds*perSecond, seconds, perSecond, people, func(who int, _ bool) {
			mu.Lock()
			pending[watchUser(who)] = time.Now()
			mu.Unlock()
		})
		testpoll.Within(b, 30*time.Second, "every change at the receiver", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(pending) == 0
		})
	}
	b.StopTimer()
	mu.Lock()
	lat := slices.Clone(latencies)
	mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.50), "p50-ms")
	b.ReportMetric(percentile(lat, 0.99), "p99-ms")
	b.ReportMetric(percentile(lat, 1), "max-ms")
	b.ReportMetric(float64(changes), "changes")
	if bad > 0 {
		b.Errorf("%d requests did not verify", bad)
	}
}
