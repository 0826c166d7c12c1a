package writer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// logRecorder keeps the messages logged through it.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count returns how many messages contain s.
func (l *logRecorder) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// TestKeepAlivesNotStarvedByChanges: a stream of changes larger than the
// budget never stops; the sessions of 20 users in long calls are still
// refreshed before each expires. The expiration is cut to 30 s (Graph's
// minimum is 5 minutes; the fake Graph has none) so that the fake clock
// can move in steps shorter than a token while the test stays short.
func TestKeepAlivesNotStarvedByChanges(t *testing.T) {
	const expiration = 30 * time.Second
	h := newHarness(t, func(o *Options) {
		o.Tenants[0].Budget, o.Expiration = 60, expiration // about 1.9 calls a second
	})
	e, _ := h.start("a")
	const sessions, churn = 10, 10
	for i := range sessions {
		h.apply(e, fmt.Sprintf("s%d", i), call("pbx", "c", "active", 0, false))
	}
	h.eventually("every session set", func() bool {
		h.clock.Advance(100 * time.Millisecond)
		for i := range sessions {
			if h.graph.session(fmt.Sprintf("s%d", i)) == nil {
				return false
			}
		}
		return true
	})
	start := h.clock.Now()
	// For 90 s, every half second each of 10 other users flips between a
	// call and none: 20 changes a second against 1.9 calls.
	for step := range 180 {
		state := []string{"active", "ended"}[step%2]
		for i := range churn {
			ev := call("pbx", "c", state, 0, false)
			ev.OccurredAt = start.Add(time.Duration(step) * time.Second)
			h.apply(e, fmt.Sprintf("c%d", i), ev)
		}
		h.clock.Advance(500 * time.Millisecond)
		h.quiesce(e)
	}
	end := h.clock.Now()
	sets := map[string][]time.Time{}
	churned := 0
	for _, c := range h.graph.callsSnapshot() {
		switch {
		case strings.HasPrefix(c.user, "c"):
			churned++
		case c.err == nil:
			sets[c.user] = append(sets[c.user], c.at)
		}
	}
	for i := range sessions {
		user := fmt.Sprintf("s%d", i)
		times := sets[user]
		for j, next := range append(times[1:], end) {
			if !next.Before(times[j].Add(expiration)) {
				t.Fatalf("%s's session set at %s lapsed before its refresh at %s", user, times[j].Sub(t0), next.Sub(t0))
			}
		}
	}
	// The budget's token bucket holds one token here, so stepping the
	// clock by half seconds yields about one call a second: some 100 calls,
	// about half of them keep-alives.
	if churned < 30 {
		t.Fatalf("only %d calls for the changes; keep-alives took more than their share", churned)
	}
	t.Logf("%d calls for changes in 90 s beside the keep-alives, %d calls in all", churned, len(h.graph.callsSnapshot()))
}

// TestSessionCapacity: the capacity follows budget, window and
// expiration; the writer logs it at start and warns once when more
// sessions are live.
func TestSessionCapacity(t *testing.T) {
	for _, tt := range []struct {
		budget     int
		expiration time.Duration
		low, high  int
	}{
		{10000, 15 * time.Minute, 240000, 241000}, // (10000-50)/31 s × 750 s
		{1500, 15 * time.Minute, 35900, 36000},    // (1500-15)/31 s × 750 s
		{60, 5 * time.Minute, 470, 480},
	} {
		if got := sessionCapacity(tt.budget, 30*time.Second, tt.expiration); got < tt.low || got > tt.high {
			t.Errorf("capacity of %d/30s with %s sessions: %d, want %d to %d", tt.budget, tt.expiration, got, tt.low, tt.high)
		}
	}
	// A writer takes over 90 sessions set by its predecessor, with room
	// for 88.
	logs := &logRecorder{}
	h := newHarness(t, func(o *Options) {
		o.Tenants[0].Budget, o.Expiration, o.Logger = 12, 5*time.Minute, slog.New(logs)
	})
	before, err := newTestPool(Options{JetStream: h.js, Graph: h.graph, Clock: h.clock, Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	now := h.clock.Now()
	for i := range 90 {
		_, _, err := before.store.Update(context.Background(), "contoso.example", fmt.Sprintf("u%d", i), func(s *state.UserState) bool {
			s.Tenant, s.UserID = "contoso.example", fmt.Sprintf("u%d", i)
			s.Apply(call("pbx", "c", "active", 0, false), now)
			s.Told = &state.Told{Pair: inACall, At: now, Expires: now.Add(5 * time.Minute)}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	e, _ := h.start("a")
	if got := e.SessionCapacity("contoso.example"); got != 88 {
		t.Fatalf("Pool.SessionCapacity = %d, want 88", got)
	}
	h.caughtUp(e, "u89")
	h.quiesce(e)
	if logs.count("writer started") != 1 {
		t.Fatal("the writer did not log its capacity at start")
	}
	if n := logs.count("more live sessions than the budget can keep alive"); n != 1 {
		t.Fatalf("%d capacity warnings with 90 sessions for a capacity of 88, want 1", n)
	}
}

// TestDeniedDispatchCostsNothing: when the budget has no token, a tick
// allocates nothing, however many users wait.
func TestDeniedDispatchCostsNothing(t *testing.T) {
	h := newHarness(t, nil)
	e, err := newTestPool(Options{JetStream: h.js, Graph: h.graph, Clock: h.clock, Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	allocs := func(n int) float64 {
		w := newWriter(e.Pool, TenantOptions{ID: "contoso.example", Budget: 100, Window: contoso.Window})
		w.fenceAt(time.Now().Add(time.Hour))
		now := h.clock.Now()
		for i := range n {
			id := fmt.Sprintf("u%d", i)
			st := state.UserState{UserID: id}
			st.Apply(call("pbx", "c", "active", 0, false), now)
			w.users[id] = &tracked{state: st, rev: 1}
			w.changes.push(id)
		}
		for w.budget.allow(now) {
		}
		return testing.AllocsPerRun(50, func() { w.dispatch(context.Background(), now) })
	}
	small, large := allocs(10), allocs(100000)
	if large > small || large > 5 {
		t.Fatalf("a denied tick allocates %.0f times with 10 users waiting, %.0f with 100,000", small, large)
	}
	t.Logf("a denied tick allocates %.0f times with 10 users waiting, %.0f with 100,000", small, large)
}

// TestTenantRefusalPauses: Graph refuses the tenant (403, a permission
// missing): 50 users cost a handful of calls over 20 minutes, nothing is
// dead-lettered, the reason is logged once and reported; once Graph
// accepts again every user converges.
func TestTenantRefusalPauses(t *testing.T) {
	logs := &logRecorder{}
	h := newHarness(t, func(o *Options) { o.Logger = slog.New(logs) })
	var refusing atomic.Bool
	refusing.Store(true)
	h.graph.fail = func(int) error {
		if refusing.Load() {
			return err403
		}
		return nil
	}
	e, _ := h.start("a")
	for i := range 50 {
		h.apply(e, fmt.Sprintf("u%d", i), call("pbx", "c", "active", 0, false))
	}
	for range 120 { // 20 minutes
		h.clock.Advance(10 * time.Second)
		h.quiesce(e)
	}
	// Up to maxInFlight calls go out before the first refusal comes back,
	// then one probe after 30 s, 60 s, 120 s, 240 s and 480 s.
	if n := h.started(e); n > maxInFlight+5 {
		t.Fatalf("%d calls to a tenant Graph refuses", n)
	}
	if len(h.dead) != 0 {
		t.Fatalf("%d dead letters for a tenant-wide refusal", len(h.dead))
	}
	if n := logs.count("graph refuses the tenant"); n != 1 {
		t.Fatalf("the refusal was logged %d times, want once", n)
	}
	reason, until := e.TenantPaused("contoso.example")
	if reason == "" || !until.After(h.clock.Now()) {
		t.Fatalf("TenantPaused = %q, %s", reason, until)
	}
	refusing.Store(false)
	for i := range 50 {
		h.eventually(fmt.Sprintf("u%d in a call", i), func() bool {
			h.clock.Advance(time.Second)
			return adapters.SamePair(h.graph.session(fmt.Sprintf("u%d", i)), inACall)
		})
	}
	if reason, _ := e.TenantPaused("contoso.example"); reason != "" {
		t.Fatalf("still paused after Graph accepted: %s", reason)
	}
	if n := logs.count("graph accepts the tenant's calls again"); n != 1 {
		t.Fatalf("the recovery was logged %d times, want once", n)
	}
}

// TestEmptyUserForgotten: once a call has ended, its session is cleared
// and the ended call is past the keep window, the user's key leaves the
// state bucket, and a writer taking over does not see the user.
func TestEmptyUserForgotten(t *testing.T) {
	h := newHarness(t, nil)
	e, stop := h.start("a")
	h.apply(e, "u1", call("pbx", "c1", "active", 0, false))
	h.settle("u1", inACall)
	h.apply(e, "u1", call("pbx", "c1", "ended", 1, false))
	h.settle("u1", nil)
	kv := e.store.KV()
	key := state.UserKey("contoso.example", "u1")
	h.quiesce(e)
	if _, err := kv.Get(context.Background(), key); err != nil {
		t.Fatalf("the key went before the keep window passed: %v", err)
	}
	h.clock.Advance(state.KeepClaims + time.Minute)
	h.eventually("the key deleted", func() bool {
		_, err := kv.Get(context.Background(), key)
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
	w := h.writer(e)
	h.eventually("the writer to drop u1", func() bool { return w.known.Load() == 0 })
	stop()
	h.apply(e, "u2", call("pbx", "c1", "active", 0, false))
	b, _ := h.start("b")
	h.caughtUp(b, "u2")
	if n := h.writer(b).known.Load(); n != 1 {
		t.Fatalf("the new writer tracks %d users, want only u2", n)
	}
}

// TestRetryDelayCapped: the retry delay doubles up to MaxRetryDelay.
func TestRetryDelayCapped(t *testing.T) {
	h := newHarness(t, nil)
	e, err := newTestPool(Options{JetStream: h.js, Graph: h.graph, Clock: h.clock, Rules: rules,
		RetryDelay: time.Second, MaxRetryDelay: 5 * time.Second, BreakerFailures: 100})
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(e.Pool, contoso)
	w.users["u1"] = &tracked{state: state.UserState{UserID: "u1"}}
	var got []time.Duration
	for range 5 {
		w.users["u1"].inFlight = true
		w.handle(result{userID: "u1", graph: true, err: err503, class: fault.Retry})
		got = append(got, w.users["u1"].retryAt.Sub(h.clock.Now()))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("retry delays %v, want %v", got, want)
	}
}
