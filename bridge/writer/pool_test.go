package writer

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

func TestConcurrentApplyLosesNothing(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Rules.MaxClaims = 100 })
	e, _ := h.start("a")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				h.apply(e, "u1", call("pbx", fmt.Sprintf("c%d-%d", g, i), "active", 0, false))
			}
		}()
	}
	wg.Wait()
	st, err := e.State(context.Background(), "contoso.example", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Calls) != 100 {
		t.Fatalf("%d calls recorded, want 100: compare-and-set lost some", len(st.Calls))
	}
}

func TestCoalescing(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Tenants[0].Budget, o.Tenants[0].Window = 3, 30*time.Second })
	e, _ := h.start("a")
	h.apply(e, "u0", call("pbx", "warm", "active", 0, false))
	h.settle("u0", inACall) // the writer's bucket starts empty: wait for a token
	for i := range 10 {
		state := []string{"active", "held", "ended"}[i%3]
		h.apply(e, "u1", call("pbx", "c1", state, i+1, i%2 == 0))
	}
	h.apply(e, "u1", call("pbx", "c1", "active", 20, true))
	h.caughtUp(e, "u1") // the writer must know the last change before the token comes
	h.clock.Advance(30 * time.Second)
	h.waitSession("u1", inConf)
	// Tokens for many more calls: none may go to an older state of u1.
	h.clock.Advance(5 * time.Minute)
	h.quiesce(e)
	n := 0
	for _, c := range h.graph.callsSnapshot() {
		if c.user == "u1" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("11 changes within one budget slot cost %d calls, want 1", n)
	}
}

// TestBudgetUnderOverload applies 10 times the budget and checks every
// sliding window of calls on the fake clock.
func TestBudgetUnderOverload(t *testing.T) {
	const window = 30 * time.Second
	for _, budget := range []int{20, 300} { // a burst of 1 and of 3
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.Tenants[0].Budget, o.Tenants[0].Window = budget, window })
			e, _ := h.start("a")
			for i := range 4 * budget {
				h.apply(e, fmt.Sprintf("u%d", i), call("pbx", "c", "active", 0, false))
			}
			h.caughtUp(e, fmt.Sprintf("u%d", 4*budget-1))
			// 100 s of fake time; at each step the writer does all the
			// budget allows before the clock moves on.
			for step := 0; step < 400; step++ {
				h.clock.Advance(250 * time.Millisecond)
				h.quiesce(e)
			}
			calls := h.graph.callsSnapshot()
			if len(calls) < budget*100/30*85/100 { // saturated: near the budget's worth
				t.Fatalf("only %d calls in 100 s; the budget allows %d", len(calls), budget*100/30)
			}
			for i := range calls {
				n := 0
				for j := i; j < len(calls) && calls[j].at.Sub(calls[i].at) < window; j++ {
					n++
				}
				if n > budget {
					t.Fatalf("%d calls in the %s window from %s (budget %d)", n, window, calls[i].at, budget)
				}
			}
			t.Logf("%d calls in 100 s of fake time", len(calls))
		})
	}
}

func TestThrottlePausesTenant(t *testing.T) {
	h := newHarness(t, nil)
	h.graph.fail = func(n int) error {
		if n == 0 {
			return err429
		}
		return nil
	}
	e, _ := h.start("a")
	h.apply(e, "u1", call("pbx", "c1", "active", 0, false))
	h.apply(e, "u2", call("pbx", "c1", "active", 0, false))
	h.caughtUp(e, "u2")
	h.clock.Advance(25 * time.Millisecond) // one token into the empty bucket
	h.eventually("the 429", func() bool { return len(h.graph.callsSnapshot()) >= 1 })
	h.quiesce(e)
	if n := h.started(e); n != 1 {
		t.Fatalf("%d calls before Retry-After elapsed", n)
	}
	h.clock.Advance(4 * time.Second)
	h.quiesce(e)
	if n := h.started(e); n != 1 {
		t.Fatalf("a call 4 s into a 5 s Retry-After")
	}
	h.clock.Advance(time.Second)
	h.settle("u1", inACall)
	h.settle("u2", inACall)
	for _, c := range h.graph.callsSnapshot()[1:] {
		if c.at.Before(t0.Add(5 * time.Second)) {
			t.Fatalf("call at %s, before Retry-After", c.at)
		}
	}
}

func TestPermanentErrorIsDeadLetteredOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.graph.fail = func(n int) error {
		if n == 0 {
			return err400
		}
		return nil
	}
	e, _ := h.start("a")
	ev := call("pbx", "c1", "active", 0, false)
	h.apply(e, "u1", ev)
	h.eventually("a writer", func() bool { return e.Writing("contoso.example") })
	h.clock.Advance(25 * time.Millisecond) // one token into the empty bucket
	select {
	case d := <-h.dead:
		if d.UserID != "u1" || d.Event == nil || d.Event.CallID != "c1" {
			t.Fatalf("dead letter %+v", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no dead letter")
	}
	h.clock.Advance(5 * time.Minute)
	h.quiesce(e)
	if n := len(h.graph.callsSnapshot()); n != 1 {
		t.Fatalf("a refused change was sent %d times", n)
	}
	// Replaying the event (a duplicate) tries again.
	h.apply(e, "u1", ev)
	h.waitSession("u1", inACall)
}

// TestLongCallKeptAlive: a two-hour call with PT15M sessions stays set,
// refreshed before every expiry, then clears when it ends.
func TestLongCallKeptAlive(t *testing.T) {
	h := newHarness(t, nil)
	e, _ := h.start("a")
	h.apply(e, "u1", call("pbx", "c1", "active", 0, false))
	h.settle("u1", inACall)
	for minute := 1; minute <= 120; minute++ {
		h.clock.Advance(time.Minute)
		h.quiesce(e)
		if !adapters.SamePair(h.graph.session("u1"), inACall) {
			t.Fatalf("u1 not in a call at minute %d", minute)
		}
	}
	// Every refresh came before the session it renewed expired.
	var sets []time.Time
	for _, c := range h.graph.callsSnapshot() {
		if c.pair != nil && c.err == nil {
			sets = append(sets, c.at)
		}
	}
	for i, next := range append(sets[1:], at(120)) {
		if !next.Before(sets[i].Add(15 * time.Minute)) {
			t.Fatalf("the session set at %s expired before its refresh at %s", sets[i].Format(time.Kitchen), next.Format(time.Kitchen))
		}
	}
	if len(sets) < 12 || len(sets) > 17 {
		t.Fatalf("%d setPresence calls in two hours; want a refresh every 7.5 to 10 minutes", len(sets))
	}
	h.apply(e, "u1", call("pbx", "c1", "ended", 120, false))
	h.settle("u1", nil)
}

func TestSilentSourceLapses(t *testing.T) {
	h := newHarness(t, nil)
	e, _ := h.start("a")
	h.apply(e, "u1", call("flaky", "c1", "active", 0, false))
	h.settle("u1", inACall)
	h.clock.Advance(9 * time.Minute)
	h.quiesce(e)
	if !adapters.SamePair(h.graph.session("u1"), inACall) {
		t.Fatal("cleared before the lapse")
	}
	h.clock.Advance(time.Minute)
	h.waitSession("u1", nil)
}

// TestRestartConverges: a new pool on the same store picks up where the
// old one stopped, including a meeting that starts later.
func TestRestartConverges(t *testing.T) {
	h := newHarness(t, nil)
	e, stop := h.start("a")
	h.apply(e, "u1", adapters.Event{ID: "m", Source: "cal", Type: "meeting", OccurredAt: at(0), Start: tp(at(30)), End: tp(at(60)), ShowAs: "busy"})
	h.apply(e, "u2", call("pbx", "c1", "active", 0, false))
	h.settle("u2", inACall)
	stop()
	h.apply(e, "u2", call("pbx", "c1", "ended", 1, false)) // applied while no writer runs
	h.start("b")
	h.settle("u2", nil)
	h.clock.Advance(30 * time.Minute)
	h.settle("u1", inConf)
	h.clock.Advance(30 * time.Minute)
	h.settle("u1", nil)
}

// TestShuffledEventsConverge: 10,000 events for 1,000 users, shuffled and
// with duplicates, end where the ordered log says, with no more Graph
// calls than distinct desired-state changes.
func TestShuffledEventsConverge(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	h := newHarness(t, func(o *Options) { o.Tenants[0].Budget = 1 << 20 })
	e, _ := h.start("a")
	rng := rand.New(rand.NewSource(1))
	const users, perUser = 1000, 10
	var log []struct {
		user string
		ev   adapters.Event
	}
	want := map[string]*adapters.Pair{}
	changes := 0
	for u := range users {
		user := fmt.Sprintf("u%04d", u)
		var ordered state.UserState
		var last *adapters.Pair
		for i := range perUser {
			state := []string{"ringing", "active", "held", "ended"}[rng.Intn(4)]
			ev := call("pbx", fmt.Sprintf("c%d", rng.Intn(3)), state, i, rng.Intn(5) == 0)
			ev.ID = fmt.Sprintf("%s-%d", user, i)
			ordered.Apply(ev, at(i))
			now, _ := ordered.Desired(rules, at(i))
			if !adapters.SamePair(now, last) {
				changes++
				last = now
			}
			log = append(log, struct {
				user string
				ev   adapters.Event
			}{user, ev})
		}
		want[user] = last
	}
	delivery := append(log, log[:2000]...) // duplicates
	rng.Shuffle(len(delivery), func(i, j int) { delivery[i], delivery[j] = delivery[j], delivery[i] })
	var wg sync.WaitGroup
	ch := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ch {
				h.apply(e, delivery[i].user, delivery[i].ev)
			}
		}()
	}
	for i := range delivery {
		ch <- i
	}
	close(ch)
	wg.Wait()
	h.clock.Advance(time.Minute)
	for user, pair := range want {
		h.settle(user, pair)
	}
	if n := len(h.graph.callsSnapshot()); n > changes {
		t.Fatalf("%d Graph calls for %d distinct desired-state changes", n, changes)
	}
	t.Logf("%d events, %d desired-state changes in the ordered log, %d Graph calls", len(delivery), changes, len(h.graph.callsSnapshot()))
}

// TestRapidAlternationConverges: a user's call flips between active and
// ended faster than Graph answers; every flip must end where the last
// event says (a result arriving after a newer event must not hide it).
func TestRapidAlternationConverges(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Tenants[0].Budget = 1 << 20 })
	e, _ := h.start("a")
	for i := range 60 {
		state, want := "active", inACall
		if i%2 == 1 {
			state, want = "ended", nil
		}
		ev := call("pbx", "c1", state, 0, false)
		ev.OccurredAt = t0.Add(time.Duration(i) * time.Millisecond)
		h.apply(e, "u1", ev)
		h.settle("u1", want)
	}
}
