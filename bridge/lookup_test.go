package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// lookupUser is the i-th of the users only known by UPN in the lookup
// tests.
func lookupUser(i int) (id, upn string) {
	return fmt.Sprintf("1007c0de-0000-0000-0000-%012d", i), fmt.Sprintf("user%d@contoso.example", i)
}

// withLookupUsers adds n users to the emulator of a test configuration.
func withLookupUsers(yaml string, n int) string {
	const bob = "user_principal_name: bob@contoso.example}"
	var more strings.Builder
	for i := range n {
		id, upn := lookupUser(i)
		fmt.Fprintf(&more, "\n          - {id: %s, user_principal_name: %s}", id, upn)
	}
	return strings.Replace(yaml, bob, bob+more.String(), 1)
}

// TestLookupsHeldBackDuringOutage: with Graph down answering 503 and
// Retry-After: 1, events for users not yet resolved cost a few lookups
// (the first failures, then one probe per open_timeout), not one per event
// and second; the outage is logged once; once Graph is back every user
// converges.
func TestLookupsHeldBackDuringOutage(t *testing.T) {
	const users = 7
	const openTimeout = 2 * time.Second
	yaml := withLookupUsers(testConfig(t), users)
	yaml = strings.Replace(yaml, "breaker: {failures: 3, open_timeout: 300ms}", fmt.Sprintf("breaker: {failures: 3, open_timeout: %s}", openTimeout), 1)
	yaml = strings.Replace(yaml, "retry: {min_delay: 50ms, max_delay: 200ms}", "retry: {min_delay: 100ms, max_delay: 5s}", 1)
	cfg, err := config.Parse([]byte(yaml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, logs := startBridgeWithLogs(t, cfg)
	em := b.Emulator()
	em.Outage(time.Hour)

	lookups := func() int {
		n := 0
		for _, r := range em.Requests() {
			if r.Method == "GET" && strings.HasPrefix(r.Path, "/v1.0/users/user") {
				n++
			}
		}
		return n
	}
	start := time.Now()
	now := time.Now()
	for i := range users {
		_, upn := lookupUser(i)
		if r := postEvent(t, b, callEvent(fmt.Sprintf("l%d", i), upn, "c1", "active", now)); r.status != 202 {
			t.Fatalf("post: %d %v", r.status, r.body)
		}
	}
	// Wait until the lookups were tried, then let the outage last two
	// more open periods; the bound below holds however long it lasts,
	// and the old worker asked Graph seven times a second.
	testpoll.Until(t, "three lookups tried", func() bool { return lookups() >= 3 })
	// Real time must pass: the bound is on lookups over a span of real
	// outage, so the outage lasts two open periods more.
	time.Sleep(2 * openTimeout)
	n := lookups()
	elapsed := time.Since(start)
	// Each event's first delivery may ask before three failures open the
	// breaker; after that one probe goes per open period.
	bound := users + int(elapsed/openTimeout) + 1
	t.Logf("%d GET /users in %s of outage (bound %d)", n, elapsed.Round(time.Millisecond), bound)
	if n > bound {
		t.Fatalf("%d GET /users in %s of outage, want at most %d: lookups bypass the breaker", n, elapsed, bound)
	}

	em.Outage(0)
	for i := range users {
		id, _ := lookupUser(i)
		waitPresence(t, b, id, "Busy/InACall", 30*time.Second)
	}

	var paused, resumed, retryWarnings int
	for line := range strings.SplitSeq(logs.String(), "\n") {
		var entry struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &entry) != nil {
			continue
		}
		switch {
		case strings.HasPrefix(entry.Msg, "user lookups paused"):
			paused++
		case strings.HasPrefix(entry.Msg, "user lookups resumed"):
			resumed++
		case entry.Msg == "event will be retried" && entry.Level == "WARN":
			retryWarnings++
		}
	}
	if paused != 1 || resumed != 1 {
		t.Errorf("the outage was logged %d times and its end %d times, want once each", paused, resumed)
	}
	failed := 0
	for _, r := range em.Requests() {
		if strings.HasPrefix(r.Path, "/v1.0/users/user") && r.Status == 503 {
			failed++
		}
	}
	if retryWarnings > failed {
		t.Errorf("%d retry warnings for %d failed lookups: events turned away by the breaker are logged one by one", retryWarnings, failed)
	}
}

// TestLookupBudgetHoldsUnderAFlood: events naming 300 made-up users cost
// at most lookup_budget (20 per hour here) Graph lookups, the rest are
// dead-lettered as lookup_budget, the dead letters are not logged one by
// one, and a known user's event posted in the middle of the flood is
// applied all the same.
func TestLookupBudgetHoldsUnderAFlood(t *testing.T) {
	const budget, flood = 20, 300
	yaml := strings.Replace(testConfig(t), "client_secret: demo-secret\n  timeout", "client_secret: demo-secret\n      lookup_budget: 20\n      lookup_budget_window: 1h\n  timeout", 1)
	cfg, err := config.Parse([]byte(yaml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Graph.Tenants[0].LookupBudget != budget {
		t.Fatalf("lookup_budget %d, want %d", cfg.Graph.Tenants[0].LookupBudget, budget)
	}
	b, logs := startBridgeWithLogs(t, cfg)
	em := b.Emulator()
	now := time.Now()
	if r := postEvent(t, b, callEvent("k1", "alice@contoso.example", "c1", "active", now)); r.status != 202 {
		t.Fatalf("alice active: %d %v", r.status, r.body)
	}
	waitPresence(t, b, aliceID, "Busy/InACall", patience)

	batch := func(from, to int) string {
		events := make([]string, 0, to-from)
		for i := from; i < to; i++ {
			events = append(events, callEvent(fmt.Sprintf("ghost%d", i), fmt.Sprintf("ghost%d@contoso.example", i), "c1", "active", now))
		}
		return `{"events":[` + strings.Join(events, ",") + `]}`
	}
	if r := postEvent(t, b, batch(0, flood/2)); r.status != 202 {
		t.Fatalf("flood: %d %v", r.status, r.body)
	}
	if r := postEvent(t, b, callEvent("k2", "alice@contoso.example", "c1", "ended", now.Add(time.Second))); r.status != 202 {
		t.Fatalf("alice ended: %d %v", r.status, r.body)
	}
	if r := postEvent(t, b, batch(flood/2, flood)); r.status != 202 {
		t.Fatalf("flood: %d %v", r.status, r.body)
	}
	waitPresence(t, b, aliceID, "Offline/Offline", patience)

	var letters []eventlog.DeadLetter
	testpoll.Until(t, "every made-up user's event to be dead-lettered", func() bool {
		letters, err = b.Queue().ListDeadLetters(context.Background(), 0, 2*flood)
		if err != nil {
			t.Fatal(err)
		}
		return len(letters) >= flood
	})
	reasons := map[string]int{}
	for _, d := range letters {
		reason, _, _ := strings.Cut(d.Reason, ":")
		reasons[reason]++
	}
	lookups := 0
	for _, r := range em.Requests() {
		if r.Method == "GET" && strings.HasPrefix(r.Path, "/v1.0/users/ghost") {
			lookups++
		}
	}
	t.Logf("%d GET /users for %d made-up users; dead letters by reason: %v", lookups, flood, reasons)
	if lookups > budget || len(letters) != flood || reasons["unknown user"] != lookups || reasons["lookup_budget"] != flood-lookups {
		t.Fatalf("%d GET /users (budget %d), %d dead letters by reason %v: want at most the budget looked up, the rest dead-lettered as lookup_budget", lookups, budget, len(letters), reasons)
	}
	warnings := 0
	for line := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"event dead-lettered"`) {
			warnings++
		}
	}
	// One line per source and reason and 10 s, however long the test ran.
	if warnings > 10 {
		t.Errorf("%d dead-letter warnings for %d events: logged one by one", warnings, flood)
	}
}
