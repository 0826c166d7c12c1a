package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

const (
	aliceID = bridgetest.AliceID
	bobID   = bridgetest.BobID
)

// testConfig is the example configuration made fit for tests: every server
// on 127.0.0.1:0, data in a temporary folder, quick retries and breaker.
func testConfig(t testing.TB) string {
	return bridgetest.Header + fmt.Sprintf(`nats:
  embedded: true
  store_dir: %q
  ack_wait: 5s
  publish_timeout: 1s
graph:
`, t.TempDir()) + bridgetest.Tenants() + `  timeout: 2s
  breaker: {failures: 3, open_timeout: 300ms}
  retry: {min_delay: 50ms, max_delay: 200ms}
` + bridgetest.Emulator(bridgetest.Alice, bridgetest.Bob) + `    admin: {writes: true}
directory:
  "ext:1001": alice@contoso.example
sources:
  - {name: demo, type: generic, token: demo-token}
  - {name: other, type: generic, token: other-token, identity: {domain: contoso.example}}
admin: {token: admin-token}
`
}

// startBridge runs a bridge from yaml and stops it when the test ends.
func startBridge(t testing.TB, yaml string) *bridge.Bridge {
	t.Helper()
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return bridgetest.Run(t, bridgetest.Parse(t, yaml), log)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// callEvent returns a canonical call event as JSON.
func callEvent(id, user, callID, state string, at time.Time) string {
	return fmt.Sprintf(`{"id":%q,"source":"demo","type":"call","user":%q,"occurredAt":%q,"callId":%q,"state":%q}`,
		id, user, at.UTC().Format(time.RFC3339Nano), callID, state)
}

type response struct {
	status int
	header http.Header
	body   map[string]any
}

func post(t testing.TB, b *bridge.Bridge, path, token, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+b.Addr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("answer %d is not a JSON object: %q", resp.StatusCode, raw)
	}
	return r
}

func postEvent(t testing.TB, b *bridge.Bridge, body string) response {
	t.Helper()
	return post(t, b, "/v1/events", "demo-token", "application/json", body)
}

// presenceOf reads a user's aggregated presence from the emulator over
// HTTP, as a person trying the demo would.
func presenceOf(t testing.TB, b *bridge.Bridge, userID string) (string, string) {
	t.Helper()
	resp, err := http.Get("http://" + b.Emulator().Addr() + "/_emulator/presences/" + userID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct{ Availability, Activity string }
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	return p.Availability, p.Activity
}

// patience is the least any test waits for a condition: a busy machine
// can stall the bridge for seconds, and a wait costs time only when the
// condition never comes.
const patience = 30 * time.Second

// waitPresence polls until the user's presence is want; within, the
// wait a test expects, is raised to testpoll.Deadline.
func waitPresence(t testing.TB, b *bridge.Bridge, userID, want string, within time.Duration) {
	t.Helper()
	testpoll.WithinOK(t, max(within, testpoll.Deadline), "presence of "+userID+" to be "+want, func() error {
		if a, act := presenceOf(t, b, userID); a+"/"+act != want {
			return fmt.Errorf("it is %s/%s", a, act)
		}
		return nil
	})
}

func TestEndToEndCall(t *testing.T) {
	b := startBridge(t, testConfig(t))
	now := time.Now()
	r := postEvent(t, b, callEvent("e1", "alice@contoso.example", "c1", "active", now))
	if r.status != http.StatusAccepted || r.body["accepted"] != float64(1) {
		t.Fatalf("post active: %d %v", r.status, r.body)
	}
	waitPresence(t, b, aliceID, "Busy/InACall", time.Second)

	r = postEvent(t, b, callEvent("e2", "alice@contoso.example", "c1", "ended", now.Add(time.Second)))
	if r.status != http.StatusAccepted {
		t.Fatalf("post ended: %d %v", r.status, r.body)
	}
	waitPresence(t, b, aliceID, "Offline/Offline", time.Second)
}

// TestSameSecondEvents is the README's demo: curl stamps both events with
// the same second, and the call must still end.
func TestSameSecondEvents(t *testing.T) {
	b := startBridge(t, testConfig(t))
	now := time.Now().UTC().Truncate(time.Second)
	postEvent(t, b, callEvent("s1", "alice@contoso.example", "c1", "active", now))
	waitPresence(t, b, aliceID, "Busy/InACall", 2*time.Second)
	postEvent(t, b, callEvent("s2", "alice@contoso.example", "c1", "ended", now))
	waitPresence(t, b, aliceID, "Offline/Offline", 2*time.Second)
}

func TestEndToEndDirectoryKeyAndConference(t *testing.T) {
	b := startBridge(t, testConfig(t))
	body := `{"id":"e1","source":"demo","type":"call","user":"EXT:1001","occurredAt":"` + time.Now().UTC().Format(time.RFC3339) + `","callId":"c9","state":"active","conference":true}`
	if r := postEvent(t, b, body); r.status != http.StatusAccepted {
		t.Fatalf("post: %d %v", r.status, r.body)
	}
	waitPresence(t, b, aliceID, "Busy/InAConferenceCall", 2*time.Second)
}

// TestIdentityHints: a source whose people are bare names gets its
// configured domain, so "client:Alice" is alice@contoso.example.
func TestIdentityHints(t *testing.T) {
	b := startBridge(t, testConfig(t))
	body := strings.Replace(callEvent("h1", "client:Alice", "c1", "active", time.Now()), `"demo"`, `"other"`, 1)
	if r := post(t, b, "/v1/events", "other-token", "application/json", body); r.status != http.StatusAccepted {
		t.Fatalf("post: %d %v", r.status, r.body)
	}
	waitPresence(t, b, aliceID, "Busy/InACall", 2*time.Second)
}

func TestDuplicateProcessedOnce(t *testing.T) {
	b := startBridge(t, testConfig(t))
	body := callEvent("dup-1", "bob@contoso.example", "c1", "active", time.Now())
	for i := range 3 {
		if r := postEvent(t, b, body); r.status != http.StatusAccepted {
			t.Fatalf("post %d: %d %v", i, r.status, r.body)
		}
	}
	waitPresence(t, b, bobID, "Busy/InACall", 2*time.Second)
	// A later, different event proves the worker has gone past the
	// duplicates before counting.
	postEvent(t, b, callEvent("dup-2", "alice@contoso.example", "c2", "active", time.Now()))
	waitPresence(t, b, aliceID, "Busy/InACall", 2*time.Second)
	if n := countRequests(b, "/users/"+bobID+"/presence/setPresence"); n != 1 {
		t.Fatalf("setPresence for bob reached Graph %d times, want 1", n)
	}
}

// countRequests counts the emulator's logged requests whose path ends with
// suffix.
func countRequests(b *bridge.Bridge, suffix string) int {
	n := 0
	for _, r := range b.Emulator().Requests() {
		if strings.HasSuffix(r.Path, suffix) {
			n++
		}
	}
	return n
}

func TestBadInput(t *testing.T) {
	b := startBridge(t, testConfig(t))
	valid := callEvent("e1", "alice@contoso.example", "c1", "active", time.Now())
	tests := []struct {
		name        string
		token       string
		contentType string
		body        string
		status      int
		code        string
		message     string // a part of the message
	}{
		{"malformed JSON", "demo-token", "application/json", `{"id":`, 400, "invalid_event", "malformed JSON"},
		{"missing fields", "demo-token", "application/json", `{"id":"e1","source":"demo"}`, 400, "invalid_event", "occurredAt: required"},
		{"unknown field", "demo-token", "application/json", strings.Replace(valid, `"state"`, `"mood":"happy","state"`, 1), 400, "invalid_event", "mood: unknown field"},
		{"unknown type", "demo-token", "application/json", strings.Replace(valid, `"type":"call"`, `"type":"telegram"`, 1), 400, "invalid_event", "type: must be one of"},
		{"unknown state", "demo-token", "application/json", strings.Replace(valid, `"active"`, `"exploded"`, 1), 400, "invalid_event", "state: must be one of"},
		{"no token", "", "application/json", valid, 401, "unauthorized", "bearer token"},
		{"bad token", "nope", "application/json", valid, 401, "unauthorized", "bearer token"},
		{"token of another source", "other-token", "application/json", valid, 403, "wrong_source", "belongs to source other"},
		{"oversized body", "demo-token", "application/json", `{"id":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "body_too_large", "larger than"},
		{"wrong content type", "demo-token", "text/plain", valid, 415, "unsupported_media_type", "application/json"},
		{"no content type", "demo-token", "", valid, 415, "unsupported_media_type", "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, b, "/v1/events", tt.token, tt.contentType, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (%v)", r.status, tt.status, r.body)
			}
			e, _ := r.body["error"].(map[string]any)
			if e["code"] != tt.code || !strings.Contains(fmt.Sprint(e["message"]), tt.message) {
				t.Fatalf("error %v, want code %q and message containing %q", e, tt.code, tt.message)
			}
		})
	}
	t.Run("unknown endpoint", func(t *testing.T) {
		if r := post(t, b, "/v1/nothing", "demo-token", "application/json", valid); r.status != 404 {
			t.Fatalf("status %d", r.status)
		}
	})
}

// TestJetStreamDownAnswers503: with JetStream gone, ingest answers 503
// with Retry-After and tells the sender to retry with the same ids, and
// /readyz answers 503 saying why.
func TestJetStreamDownAnswers503(t *testing.T) {
	b := startBridge(t, testConfig(t))
	b.Queue().EmbeddedServer().DisableJetStream()
	r := postEvent(t, b, callEvent("e1", "alice@contoso.example", "c1", "active", time.Now()))
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503 (%v)", r.status, r.body)
	}
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	e, _ := r.body["error"].(map[string]any)
	if message := fmt.Sprint(e["message"]); e["code"] != "queue_unavailable" || !strings.Contains(message, "same ids") {
		t.Fatalf("error %v, want queue_unavailable telling to retry with the same ids", e)
	}
	r = getAnswer(t, b, "/readyz")
	e, _ = r.body["error"].(map[string]any)
	if r.status != http.StatusServiceUnavailable || e["code"] != "not_ready" || !strings.Contains(fmt.Sprint(e["message"]), "PRESENCE_EVENTS") {
		t.Fatalf("readyz while JetStream is down: %d %v, want 503 naming the stream", r.status, r.body)
	}
}

func TestHealthAndReady(t *testing.T) {
	b := startBridge(t, testConfig(t))
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get("http://" + b.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	if r := getAnswer(t, b, "/readyz"); r.body["status"] != "ready" {
		t.Fatalf("readyz body %v", r.body)
	}
	if err := b.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after Start with the embedded server: %v", err)
	}
}

// getAnswer fetches path from the bridge and decodes its JSON answer.
func getAnswer(t testing.TB, b *bridge.Bridge, path string) response {
	t.Helper()
	resp, err := http.Get("http://" + b.Addr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s answered %d, not a JSON object: %q", path, resp.StatusCode, raw)
	}
	return r
}
