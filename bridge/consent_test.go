package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// lineCounter counts the log messages that contain a text.
type lineCounter struct {
	mu   sync.Mutex
	msgs []string
}

func (l *lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *lineCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *lineCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lineCounter) WithGroup(string) slog.Handler      { return l }

func (l *lineCounter) count(text string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, text) {
			n++
		}
	}
	return n
}

// emulatorAdmin sends an admin request to the bridge's emulator over HTTP.
func emulatorAdmin(t *testing.T, b *bridge.Bridge, method, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+b.Emulator().Addr()+"/_emulator/faults", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s /_emulator/faults: %d", method, resp.StatusCode)
	}
}

// TestMissingConsentPausesTenant: Graph answers every presence write with
// 403 Forbidden and no message, as it does when the application lacks
// Presence.ReadWrite.All or admin consent. 50 users' calls cost a
// handful of requests, nothing is dead-lettered, the reason is logged
// once; once the permission is granted every user converges.
func TestMissingConsentPausesTenant(t *testing.T) {
	const users = 50
	var seeded strings.Builder
	for u := range users {
		fmt.Fprintf(&seeded, "          - {id: %s, user_principal_name: consent%d@contoso.example}\n", consentUser(u), u)
	}
	yaml := testConfig(t)
	yaml = strings.Replace(yaml, "    admin: {writes: true}", seeded.String()+"    admin: {writes: true}", 1)
	yaml = strings.Replace(yaml, "  retry: {min_delay: 50ms, max_delay: 200ms}", "  retry: {min_delay: 50ms, max_delay: 200ms}\n  refusal_probe: {first: 300ms, max: 1s}", 1)
	cfg, err := config.Parse([]byte(yaml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logs := &lineCounter{}
	b, err := bridge.New(cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Stop(ctx)
	})
	emulatorAdmin(t, b, http.MethodPost, `{"failRate": 1, "failRateStatus": 403, "seed": 1}`)

	events := make([]json.RawMessage, users)
	for u := range users {
		events[u] = json.RawMessage(callEvent(fmt.Sprintf("consent-%d", u), consentUser(u), "c1", "active", time.Now()))
	}
	body, _ := json.Marshal(map[string]any{"events": events})
	if r := postEvent(t, b, string(body)); r.status != http.StatusAccepted {
		t.Fatalf("batch: %d %v", r.status, r.body)
	}
	// Wait for the refusal and three probes after it (300 ms, 600 ms,
	// then 1 s apart).
	testpoll.Until(t, "the refusal and three probes logged", func() bool {
		return logs.count("graph refuses the tenant") > 0 && logs.count("graph still refuses the tenant") >= 3
	})
	// A writer sends at most 8 calls before the first refusal comes back.
	if n := len(presenceCalls(b.Emulator().Requests())); n > 8+5 {
		t.Fatalf("%d presence requests to a tenant Graph refuses", n)
	}
	if n := logs.count("graph refuses the tenant"); n != 1 {
		t.Fatalf("the refusal was logged %d times, want once", n)
	}
	if n := deadLetters(t, b); n != 0 {
		t.Fatalf("%d dead letters for a tenant-wide refusal", n)
	}

	if v := tenantView(t, b); !v.Writing || !strings.Contains(v.Refused, "403") || v.RefusedUntil == nil {
		t.Fatalf("the admin API does not show the refusal: %+v", v)
	}

	emulatorAdmin(t, b, http.MethodDelete, "")
	for u := range users {
		waitPresence(t, b, consentUser(u), "Busy/InACall", 30*time.Second)
	}
	if n := logs.count("graph accepts the tenant's calls again"); n != 1 {
		t.Fatalf("the recovery was logged %d times, want once", n)
	}
	if v := tenantView(t, b); v.Refused != "" {
		t.Fatalf("the admin API still shows a refusal: %+v", v)
	}
}

// tenantView reads the one tenant's writer through the admin API.
func tenantView(t *testing.T, b *bridge.Bridge) (v struct {
	ID, Refused  string
	Writing      bool
	RefusedUntil *time.Time
}) {
	t.Helper()
	var list struct {
		Tenants []json.RawMessage `json:"tenants"`
	}
	adminGet(t, b, "/v1/admin/tenants", &list)
	if len(list.Tenants) != 1 {
		t.Fatalf("%d tenants, want 1", len(list.Tenants))
	}
	if err := json.Unmarshal(list.Tenants[0], &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func consentUser(u int) string { return fmt.Sprintf("c0a5e700-0000-0000-0000-%012d", u) }

// deadLetters counts the dead letters through the admin API.
func deadLetters(t *testing.T, b *bridge.Bridge) int {
	t.Helper()
	var list struct {
		DeadLetters []json.RawMessage `json:"deadLetters"`
	}
	adminGet(t, b, "/v1/admin/deadletters", &list)
	return len(list.DeadLetters)
}

// adminGet reads one admin endpoint of b into v.
func adminGet(t *testing.T, b *bridge.Bridge, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+b.Addr()+path, nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
}
