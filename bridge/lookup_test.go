package bridge_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/config"
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
