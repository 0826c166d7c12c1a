package bridge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

// budgetConfig is the test configuration with n more emulator users, the
// tenant's budget set to budget per window, and the emulator's throttle.
func budgetConfig(t *testing.T, n, budget int, window time.Duration, throttle int) string {
	var seeded strings.Builder
	for u := range n {
		fmt.Fprintf(&seeded, "          - {id: %s, user_principal_name: b%d@contoso.example}\n", budgetUser(u), u)
	}
	cfg := testConfig(t)
	cfg = strings.Replace(cfg, "    admin: {writes: true}", fmt.Sprintf("%s    admin: {writes: true}\n    throttle: {limit: %d, window: %s}", seeded.String(), throttle, window), 1)
	return strings.Replace(cfg, "client_secret: demo-secret\n  timeout", fmt.Sprintf("client_secret: demo-secret\n      budget: %d\n      budget_window: %s\n  timeout", budget, window), 1)
}

func budgetUser(u int) string { return fmt.Sprintf("b0d9e700-0000-0000-0000-%012d", u) }

// overload posts an active call for each of n users in one batch.
func overload(t *testing.T, b interface{ Addr() string }, n int) {
	t.Helper()
	events := make([]json.RawMessage, n)
	now := time.Now()
	for u := range n {
		events[u] = json.RawMessage(callEvent(fmt.Sprintf("o%d", u), budgetUser(u), "c1", "active", now))
	}
	body, _ := json.Marshal(map[string]any{"events": events})
	req, _ := http.NewRequest(http.MethodPost, "http://"+b.Addr()+"/v1/events", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer demo-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("overload batch: %d", resp.StatusCode)
	}
}

// presenceCalls returns the emulator's logged presence requests.
func presenceCalls(em *emulator.Emulator) []emulator.RequestRecord {
	var calls []emulator.RequestRecord
	for _, r := range em.Requests() {
		if strings.Contains(r.Path, "/presence/") || strings.HasSuffix(r.Path, "/getPresencesByUserId") {
			calls = append(calls, r)
		}
	}
	return calls
}

// checkBudget fails unless the 7 s of calls used most of the budget and
// never more than budget arrived in a window (less 100 ms for jitter).
func checkBudget(t *testing.T, calls []emulator.RequestRecord, budget int, window time.Duration) {
	t.Helper()
	if len(calls) < 2*budget {
		t.Fatalf("only %d calls in 7 s; the budget allows about %d", len(calls), budget*7/3)
	}
	for i := range calls {
		n := 0
		for j := i; j < len(calls) && calls[j].Time.Sub(calls[i].Time) < window-100*time.Millisecond; j++ {
			n++
		}
		if n > budget {
			t.Fatalf("%d calls in the window from %s (budget %d per %s)", n, calls[i].Time.Format(time.StampMilli), budget, window)
		}
	}
}

// TestBudgetHeldAgainstEmulator: ten times the budget's worth of users
// change at once; the emulator never sees more than the budget in a
// window. Windows are judged by arrival time, shortened by 100 ms for the
// jitter between the bridge sending and the emulator logging (the exact
// token arithmetic is TestBudgetUnderOverload's, on a fake clock).
func TestBudgetHeldAgainstEmulator(t *testing.T) {
	t.Parallel() // mostly waiting
	const budget, window, users = 30, 3 * time.Second, 300
	b := startBridge(t, budgetConfig(t, users, budget, window, 1_000_000))
	overload(t, b, users)
	time.Sleep(7 * time.Second)
	calls := presenceCalls(b.Emulator())
	checkBudget(t, calls, budget, window)
	t.Logf("%d presence calls in 7 s for %d waiting users, budget %d per %s", len(calls), users, budget, window)
}

// TestRetryAfterHonouredAgainstEmulator: the emulator's limit is below the
// bridge's budget, so Graph throttles; after every 429 no presence request
// reaches the emulator before its Retry-After has passed. Requests that
// arrive within 50 ms of the 429 were sent before the bridge could read it
// (the writer keeps up to eight calls in flight) and are allowed, up to
// eight.
func TestRetryAfterHonouredAgainstEmulator(t *testing.T) {
	t.Parallel() // mostly waiting
	const users, inFlightSlack = 100, 50 * time.Millisecond
	b := startBridge(t, budgetConfig(t, users, 1000, time.Second, 10))
	overload(t, b, users)
	time.Sleep(5 * time.Second)
	calls := presenceCalls(b.Emulator())
	throttled := 0
	for i, c := range calls {
		if c.Status != http.StatusTooManyRequests {
			continue
		}
		throttled++
		seconds, err := strconv.ParseFloat(c.RetryAfter, 64)
		if err != nil {
			t.Fatalf("429 with Retry-After %q", c.RetryAfter)
		}
		until := c.Time.Add(time.Duration(seconds * float64(time.Second)))
		onTheirWay := 0
		for _, next := range calls[i+1:] {
			if next.Time.Sub(c.Time) < inFlightSlack {
				if onTheirWay++; onTheirWay > 8 {
					t.Fatalf("more than eight requests right after the 429 at %s", c.Time.Format(time.StampMilli))
				}
				continue
			}
			if next.Time.Before(until) {
				t.Fatalf("a request at %s, before the Retry-After of the 429 at %s (%ss) had passed",
					next.Time.Format(time.StampMilli), c.Time.Format(time.StampMilli), c.RetryAfter)
			}
		}
	}
	if throttled == 0 {
		t.Fatal("the emulator never throttled; the test proves nothing")
	}
	t.Logf("%d presence calls, %d answered 429, every Retry-After honoured", len(calls), throttled)
}

// TestBudgetHeldByThreeBridges: three bridges on one NATS share one
// tenant's budget; events go in through all three, and the emulator sees
// no more than the budget in a window, judged as above.
func TestBudgetHeldByThreeBridges(t *testing.T) {
	t.Parallel() // mostly waiting
	const budget, window, users = 30, 3 * time.Second, 300
	more := make([]emulator.User, users)
	for u := range more {
		more[u] = emulator.User{ID: budgetUser(u), UserPrincipalName: fmt.Sprintf("b%d@contoso.example", u)}
	}
	natsURL, em := sharedParts(t, more...)
	cfg := strings.Replace(clusterConfig(natsURL, em.Addr()), "      login_url:", fmt.Sprintf("      budget: %d\n      budget_window: %s\n      login_url:", budget, window), 1)
	bridges := make([]*bridge.Bridge, 3)
	for i := range bridges {
		bridges[i] = startClusterBridgeFrom(t, cfg)
	}
	for i, b := range bridges { // a third of the users through each
		events := make([]json.RawMessage, 0, users/3)
		for u := i; u < users; u += 3 {
			events = append(events, json.RawMessage(callEvent(fmt.Sprintf("t%d", u), budgetUser(u), "c1", "active", time.Now())))
		}
		body, _ := json.Marshal(map[string]any{"events": events})
		if r := postEvent(t, b, string(body)); r.status != http.StatusAccepted {
			t.Fatalf("bridge %d: %d %v", i, r.status, r.body)
		}
	}
	time.Sleep(7 * time.Second)
	calls := presenceCalls(em)
	checkBudget(t, calls, budget, window)
	t.Logf("three bridges: %d presence calls in 7 s, budget %d per %s", len(calls), budget, window)
}
