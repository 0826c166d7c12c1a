package bridge_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// The budget tests run bridges whose writers and the Graph emulator share
// one fake clock, which the test moves in steps; leases stay on real time.
// Every budget, Retry-After and window is then judged on the emulator's
// arrival times in fake time, and no assertion depends on how much gets
// done per real second. Graph's budget window is 30 s; the writer
// stretches it by a thirtieth (1 s) for the time a request takes from the
// writer's decision to Graph. Each 100 ms step waits until the emulator
// has been quiet for 20 ms of real time, so only a request held up through
// ten such waits could arrive late enough (in fake time) to matter.

const (
	budgetWindow = 30 * time.Second
	fakeStep     = 100 * time.Millisecond
)

func budgetUser(u int) string { return fmt.Sprintf("b0d9e700-0000-0000-0000-%012d", u) }

// fakeTimeRun is NATS, an emulator and bridges on one fake clock.
type fakeTimeRun struct {
	t       *testing.T
	clock   *emulator.FakeClock
	em      *emulator.Emulator
	natsURL string
	cfg     string
	users   int
}

// newFakeTimeRun starts NATS and an emulator that knows users more
// users and throttles at throttle (the default when zero); the bridges'
// tenant has budget per 30 s.
func newFakeTimeRun(t *testing.T, users, budget int, throttle emulator.Throttle) *fakeTimeRun {
	t.Helper()
	more := make([]emulator.User, users)
	for u := range more {
		more[u] = emulator.User{ID: budgetUser(u), UserPrincipalName: fmt.Sprintf("b%d@contoso.example", u)}
	}
	clock := emulator.NewFakeClock(time.Now())
	natsURL, em := sharedPartsOn(t, clock, throttle, more...)
	cfg := strings.Replace(clusterConfig(natsURL, em.Addr()), "      login_url:",
		fmt.Sprintf("      budget: %d\n      budget_window: %s\n      login_url:", budget, budgetWindow), 1)
	// Aggregate reads spend budget too, but would make the counts below
	// depend on when a read round falls.
	cfg = strings.Replace(cfg, "presence: {lease_ttl: 2s}", "presence: {lease_ttl: 2s, observe_interval: 0s}", 1)
	return &fakeTimeRun{t: t, clock: clock, em: em, natsURL: natsURL, cfg: cfg, users: users}
}

func (r *fakeTimeRun) start() *bridge.Bridge {
	r.t.Helper()
	return startClusterBridgeOn(r.t, r.cfg, r.clock)
}

// post sends an active call for every user whose number is i modulo n,
// through b, dated at the fake clock's start.
func (r *fakeTimeRun) post(b *bridge.Bridge, i, n int, at time.Time) {
	r.t.Helper()
	var events []json.RawMessage
	for u := i; u < r.users; u += n {
		events = append(events, json.RawMessage(callEvent(fmt.Sprintf("t%d", u), budgetUser(u), "c1", "active", at)))
	}
	body, _ := json.Marshal(map[string]any{"events": events})
	if resp := postEvent(r.t, b, string(body)); resp.status != http.StatusAccepted {
		r.t.Fatalf("post: %d %v", resp.status, resp.body)
	}
}

// step moves the fake clock one step, then waits until the emulator has
// seen no request for 20 ms of real time, so that what the writers sent
// at this step is stamped with it.
func (r *fakeTimeRun) step() {
	r.clock.Advance(fakeStep)
	n, quiet := len(r.em.Requests()), 0
	for quiet < 4 {
		// Real time must pass: nothing the writers send shows itself
		// but requests, so the step ends after 20 ms with none.
		time.Sleep(5 * time.Millisecond)
		if m := len(r.em.Requests()); m != n {
			n, quiet = m, 0
		} else {
			quiet++
		}
	}
}

// stepUntil steps until cond holds, failing after limit of fake time.
func (r *fakeTimeRun) stepUntil(what string, limit time.Duration, cond func() bool) {
	r.t.Helper()
	for end := r.clock.Now().Add(limit); !cond(); r.step() {
		if r.clock.Now().After(end) {
			r.t.Fatalf("%s not within %s of fake time", what, limit)
		}
	}
}

// stepFor steps through d of fake time.
func (r *fakeTimeRun) stepFor(d time.Duration) {
	for end := r.clock.Now().Add(d); r.clock.Now().Before(end); {
		r.step()
	}
}

// converged reports whether every user is in a call in Graph.
func (r *fakeTimeRun) converged() bool {
	for u := range r.users {
		if p, _ := r.em.Presence(budgetUser(u)); p.Availability+"/"+p.Activity != "Busy/InACall" {
			return false
		}
	}
	return true
}

// calls returns the emulator's presence requests, failing if its request
// log might have dropped some.
func (r *fakeTimeRun) calls() []emulator.RequestRecord {
	r.t.Helper()
	all := r.em.Requests()
	if len(all) >= 9000 {
		r.t.Fatalf("%d requests: the emulator's log keeps 10,000 and may have dropped some", len(all))
	}
	return presenceCalls(all)
}

// presenceCalls keeps the presence requests of a request log.
func presenceCalls(all []emulator.RequestRecord) []emulator.RequestRecord {
	var calls []emulator.RequestRecord
	for _, r := range all {
		if strings.Contains(r.Path, "/presence/") || strings.HasSuffix(r.Path, "/getPresencesByUserId") {
			calls = append(calls, r)
		}
	}
	return calls
}

// checkBudget fails if more than budget calls arrived within any window
// (every call opens a window, which covers every fixed window Graph may
// use) and returns the fullest window's count.
func checkBudget(t *testing.T, calls []emulator.RequestRecord, budget int) int {
	t.Helper()
	fullest := 0
	for i := range calls {
		n := 0
		for j := i; j < len(calls) && calls[j].Time.Sub(calls[i].Time) < budgetWindow; j++ {
			n++
		}
		if n > budget {
			t.Fatalf("%d calls in the %s from %s (budget %d)", n, budgetWindow, calls[i].Time.Format(time.TimeOnly), budget)
		}
		fullest = max(fullest, n)
	}
	return fullest
}

// TestBudgetHeldAgainstEmulator: three times the budget's worth of users
// change at once; over two and a half windows the emulator never sees more
// than the budget in a window, and the writer uses nearly all of it.
func TestBudgetHeldAgainstEmulator(t *testing.T) {
	t.Parallel() // mostly waiting
	const budget, users = 30, 90
	run := newFakeTimeRun(t, users, budget, emulator.Throttle{})
	b := run.start()
	run.post(b, 0, 1, run.clock.Now())
	run.stepFor(75 * time.Second)
	calls := run.calls()
	fullest := checkBudget(t, calls, budget)
	// A bucket of one token refilled at 29 per 31 s allows 29 calls in a
	// window; a writer that wastes a fifth of that fails.
	if fullest < budget*4/5 {
		t.Fatalf("at most %d calls in a window, the budget is %d: the writer does not use it", fullest, budget)
	}
	t.Logf("%d presence calls in 75 s of fake time, at most %d in a window (budget %d)", len(calls), fullest, budget)
}

// TestRetryAfterHonouredAgainstEmulator: the emulator's limit (10 per
// window) is below the bridge's budget (30), so Graph throttles; after
// every 429 no presence request arrives before its Retry-After has passed,
// and every user still converges.
func TestRetryAfterHonouredAgainstEmulator(t *testing.T) {
	t.Parallel() // mostly waiting
	const users = 20
	run := newFakeTimeRun(t, users, 30, emulator.Throttle{Limit: 10, Window: budgetWindow})
	b := run.start()
	run.post(b, 0, 1, run.clock.Now())
	run.stepUntil("every user in a call", 150*time.Second, run.converged)
	calls := run.calls()
	throttled := checkRetryAfter(t, calls)
	if throttled == 0 {
		t.Fatal("the emulator never throttled; the test proves nothing")
	}
	t.Logf("%d presence calls, %d answered 429, every Retry-After honoured", len(calls), throttled)
}

// checkRetryAfter fails if a presence request arrived after a 429 and
// before its Retry-After had passed; it returns the number of 429s.
func checkRetryAfter(t *testing.T, calls []emulator.RequestRecord) int {
	t.Helper()
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
		for _, next := range calls[i+1:] {
			if next.Time.After(c.Time) && next.Time.Before(until) {
				t.Fatalf("a request at %s, before the Retry-After of the 429 at %s (%ss) had passed",
					next.Time.Format(time.TimeOnly), c.Time.Format(time.TimeOnly), c.RetryAfter)
			}
		}
	}
	return throttled
}

// TestBudgetHeldByThreeBridges: three bridges on one NATS share one
// tenant's budget; events go in through all three. In the middle of the
// run Graph answers 429 with a 20 s Retry-After, and the bridge holding
// the lease stops (or loses its NATS connection, and with it the lease)
// while that pause is in force: the bridge that takes the tenant over
// calls Graph only after the pause, no window holds more than the budget
// across the handover, and every user converges.
func TestBudgetHeldByThreeBridges(t *testing.T) {
	t.Parallel() // mostly waiting
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "stop", true: "crash"}[crash], func(t *testing.T) {
			t.Parallel()
			budgetAcrossHandover(t, crash)
		})
	}
}

func budgetAcrossHandover(t *testing.T, crash bool) {
	const budget, users, retryAfter = 30, 60, 20 * time.Second
	run := newFakeTimeRun(t, users, budget, emulator.Throttle{})
	bridges := make([]*bridge.Bridge, 3)
	for i := range bridges {
		bridges[i] = run.start()
	}
	start := run.clock.Now()
	for i, b := range bridges { // a third of the users through each
		run.post(b, i, len(bridges), start)
	}
	run.stepFor(40 * time.Second) // a full window's worth

	// Graph throttles the next call; its writer pauses and records it.
	run.em.ForceThrottle(1, retryAfter)
	var throttledAt time.Time
	run.stepUntil("a 429", 10*time.Second, func() bool {
		for _, c := range run.calls() {
			if c.Status == http.StatusTooManyRequests {
				throttledAt = c.Time
				return true
			}
		}
		return false
	})
	waitPauseRecorded(t, run.natsURL)
	run.stepFor(2 * time.Second)

	// The holder stops; another bridge takes the tenant over.
	holder := -1
	for i, b := range bridges {
		if b.Writing("contoso.example") {
			holder = i
		}
	}
	if holder < 0 {
		t.Fatal("no bridge writes")
	}
	if crash {
		bridges[holder].Queue().Conn().Close() // no renewal, no release
	} else if err := bridges[holder].Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "another bridge to take the tenant over", func() bool {
		for i, b := range bridges {
			if i != holder && b.Writing("contoso.example") {
				return true
			}
		}
		return false
	})
	handedOver := run.clock.Now()

	run.stepUntil("every user in a call", 200*time.Second, run.converged)
	calls := run.calls()
	fullest := checkBudget(t, calls, budget)
	if throttled := checkRetryAfter(t, calls); throttled != 1 {
		t.Fatalf("%d calls answered 429, want the one forced", throttled)
	}
	var before, after int
	for _, c := range calls {
		switch {
		case c.Time.Before(handedOver):
			before++
		default:
			after++
		}
	}
	if !calls[len(calls)-1].Time.After(throttledAt.Add(retryAfter)) || before == 0 || after == 0 {
		t.Fatalf("%d calls before the handover, %d after, the last at %s: the run did not span the handover and the pause",
			before, after, calls[len(calls)-1].Time.Format(time.TimeOnly))
	}
	t.Logf("three bridges: %d presence calls (%d before the handover), at most %d in a window (budget %d)", len(calls), before, fullest, budget)
}

// waitPauseRecorded waits until the writer has recorded the tenant's
// Retry-After in the state bucket, where the next writer reads it, so
// that the holder is not stopped before it took the 429 in; a pause never
// recorded fails the test.
func waitPauseRecorded(t *testing.T, natsURL string) {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), "PRESENCE_STATE")
	if err != nil {
		t.Fatal(err)
	}
	key := "pause." + hex.EncodeToString([]byte("contoso.example"))
	testpoll.UntilOK(t, "a pause recorded in the state bucket", func() error {
		_, err := kv.Get(context.Background(), key)
		return err
	})
}
