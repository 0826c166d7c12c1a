package writer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker/v2"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// startJetStream runs a real in-process nats-server with JetStream.
func startJetStream(t testing.TB) (jetstream.JetStream, func()) { return natstest.Start(t) }

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// fakeGraph records every call with the fake time and keeps each user's
// app session; fail, when set, decides an error per call.
type fakeGraph struct {
	mu       sync.Mutex
	clock    *fakeClock
	calls    []graphCall
	sessions map[string]*adapters.Pair
	expires  map[string]time.Time
	fail     func(n int) error
	// wait, when set, runs before each call is recorded, outside the
	// lock; a test holds a call back with it.
	wait func(user string)
}

type graphCall struct {
	at   time.Time
	user string
	pair *adapters.Pair
	err  error
}

var (
	err503 = errors.New("503")
	err429 = &fault.Error{Class: fault.Throttled, After: 5 * time.Second, Err: errors.New("429")}
	err400 = &fault.Error{Class: fault.Permanent, Err: errors.New("400")}
	err403 = &fault.Error{Class: fault.Refused, Err: errors.New("403")}
)

// testPool is a writer pool with the state store it watches, wired as
// the bridge wires them.
type testPool struct{ *Pool }

// newTestPool opens a state store with opts' rules and clock and a pool on
// it.
func newTestPool(opts Options) (*testPool, error) {
	store, err := state.Open(context.Background(), opts.JetStream, state.Options{Rules: opts.Rules, Clock: opts.Clock})
	if err != nil {
		return nil, err
	}
	opts.State = store
	p, err := New(context.Background(), withDefaults(opts))
	if err != nil {
		return nil, err
	}
	return &testPool{p}, nil
}

// Apply applies ev through the state store, as the apply stage does.
func (e *testPool) Apply(ctx context.Context, tenant, userID string, ev adapters.Event) error {
	return e.store.Apply(ctx, tenant, userID, ev)
}

// State reads a user's state.
func (e *testPool) State(ctx context.Context, tenant, userID string) (state.UserState, error) {
	st, _, err := e.store.Get(ctx, tenant, userID)
	return st, err
}

func newFakeGraph(clock *fakeClock) *fakeGraph {
	return &fakeGraph{clock: clock, sessions: map[string]*adapters.Pair{}, expires: map[string]time.Time{}}
}

func (g *fakeGraph) record(user string, p *adapters.Pair, exp time.Duration) error {
	if g.wait != nil {
		g.wait(user)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var err error
	if g.fail != nil {
		err = g.fail(len(g.calls))
	}
	now := g.clock.Now()
	g.calls = append(g.calls, graphCall{at: now, user: user, pair: p, err: err})
	if err == nil {
		g.sessions[user] = p
		g.expires[user] = now.Add(exp)
	}
	return err
}

func (g *fakeGraph) SetPresence(_ context.Context, _, user string, p adapters.Pair, exp time.Duration) error {
	return g.record(user, &p, exp)
}

func (g *fakeGraph) ClearPresence(_ context.Context, _, user string) error {
	return g.record(user, nil, 0)
}

func (g *fakeGraph) session(user string) *adapters.Pair {
	g.mu.Lock()
	defer g.mu.Unlock()
	if exp, ok := g.expires[user]; ok && g.sessions[user] != nil && !g.clock.Now().Before(exp) {
		return nil // expired
	}
	return g.sessions[user]
}

func (g *fakeGraph) callsSnapshot() []graphCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]graphCall(nil), g.calls...)
}

type harness struct {
	t      *testing.T
	js     jetstream.JetStream
	clock  *fakeClock
	graph  *fakeGraph
	dead   chan DeadLetter
	mutate func(*Options)
}

func newHarness(t *testing.T, mutate func(*Options)) *harness {
	js, _ := startJetStream(t)
	clock := &fakeClock{now: t0}
	return &harness{t: t, js: js, clock: clock, graph: newFakeGraph(clock), dead: make(chan DeadLetter, 100), mutate: mutate}
}

// start builds and runs a pool; its returned stop ends it.
func (h *harness) start(instance string) (*testPool, func()) {
	h.t.Helper()
	opts := Options{
		JetStream: h.js, InstanceID: instance, Graph: h.graph,
		DeadLetter: func(_ context.Context, d DeadLetter) error { h.dead <- d; return nil },
		Tenants:    []TenantOptions{{ID: "contoso.example", Budget: 1500, Window: 30 * time.Second}},
		Rules:      rules, Expiration: 15 * time.Minute, LeaseTTL: 2 * time.Second,
		BreakerFailures: 3, BreakerTimeout: 200 * time.Millisecond, RetryDelay: time.Second,
		Tick: 2 * time.Millisecond, Clock: h.clock,
	}
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(testLogWriter{h.t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if h.mutate != nil {
		h.mutate(&opts)
	}
	e, err := newTestPool(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	stop := func() { cancel(); <-done }
	h.t.Cleanup(stop)
	return e, sync.OnceFunc(stop)
}

func (h *harness) apply(e *testPool, user string, ev adapters.Event) {
	h.t.Helper()
	if err := e.Apply(context.Background(), "contoso.example", user, ev); err != nil {
		h.t.Fatal(err)
	}
}

// eventually polls cond for up to 30 s of real time.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// caughtUp waits until e's writer has taken in the user's newest state.
func (h *harness) caughtUp(e *testPool, user string) {
	h.t.Helper()
	_, rev, err := e.store.Get(context.Background(), "contoso.example", user)
	if err != nil {
		h.t.Fatal(err)
	}
	h.eventually("the writer to see the newest state", func() bool {
		w := e.writer("contoso.example")
		return w != nil && w.watched.Load() >= rev
	})
}

// writer waits for e's writer and returns it.
func (h *harness) writer(e *testPool) *writer {
	h.t.Helper()
	var w *writer
	h.eventually("a writer", func() bool { w = e.writer("contoso.example"); return w != nil })
	return w
}

// quiesce waits until e's writer has taken back every call it started
// and then turned its loop twice (each turn looks at the fake clock's
// time, its timers and its queues) without starting another: whatever it
// would do at the fake clock's time, it has done.
func (h *harness) quiesce(e *testPool) {
	h.t.Helper()
	w := h.writer(e)
	h.eventually("the writer to settle", func() bool {
		started := w.started.Load()
		if w.handled.Load() != started {
			return false
		}
		loops := w.loops.Load()
		for w.loops.Load() < loops+2 {
			time.Sleep(time.Millisecond)
		}
		return w.started.Load() == started && w.handled.Load() == started
	})
}

// started is how many Graph calls e's writer has started.
func (h *harness) started(e *testPool) uint64 { return h.writer(e).started.Load() }

func (h *harness) waitSession(user string, want *adapters.Pair) {
	h.t.Helper()
	h.eventually(fmt.Sprintf("%s to be %v", user, want), func() bool { return adapters.SamePair(h.graph.session(user), want) })
}

// settle waits for a user's session while moving the fake clock 20 ms per
// poll, so that the budget's token bucket refills.
func (h *harness) settle(user string, want *adapters.Pair) {
	h.t.Helper()
	h.eventually(fmt.Sprintf("%s to be %v", user, want), func() bool {
		h.clock.Advance(20 * time.Millisecond)
		return adapters.SamePair(h.graph.session(user), want)
	})
}

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

// TestBreakerOpensOnServerErrorsOnly: consecutive retryable failures
// open the breaker, which then keeps calls from Graph; refusals,
// throttling and answers Graph gave for good do not open it.
func TestBreakerOpensOnServerErrorsOnly(t *testing.T) {
	h := newHarness(t, nil)
	e, err := newTestPool(Options{JetStream: h.js, Graph: h.graph, Clock: h.clock, Rules: rules,
		BreakerFailures: 3, BreakerTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		err   error
		opens bool
	}{
		{"503", err503, true},
		{"400", err400, false},
		{"403", err403, false},
		{"429", err429, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeGraph(h.clock)
			g.fail = func(int) error { return tt.err }
			e.opts.Graph = g
			w := newWriter(e.Pool, contoso)
			w.fenceAt(time.Now().Add(time.Minute))
			rejected := 0
			for range 5 {
				w.call(context.Background(), "u"+tt.name, inACall, h.clock.Now(), nil)
				r := <-w.results
				if r.rejected {
					rejected++
				}
				w.handle(r)
			}
			reached, state := 5, gobreaker.StateClosed
			if tt.opens {
				reached, state = 3, gobreaker.StateOpen
			}
			if n := len(g.callsSnapshot()); n != reached || rejected != 5-reached || w.breaker.State() != state {
				t.Fatalf("five %s answers: %d calls reached Graph, %d rejected, breaker %s; want %d, %d, %s",
					tt.name, n, rejected, w.breaker.State(), reached, 5-reached, state)
			}
		})
	}
}

// TestBreakerRejectionIsNoGraphFailure: a call the breaker turns away
// (it opened after the call was dispatched) never reached Graph; it
// does not count as the user's failure, and the user is tried again
// once a probe may go.
func TestBreakerRejectionIsNoGraphFailure(t *testing.T) {
	h := newHarness(t, nil)
	h.graph.fail = func(int) error { return err503 }
	e, err := newTestPool(Options{JetStream: h.js, Graph: h.graph, Clock: h.clock, Rules: rules,
		BreakerFailures: 1, BreakerTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(e.Pool, contoso)
	w.fenceAt(time.Now().Add(time.Minute))
	now := h.clock.Now()
	w.call(context.Background(), "u1", inACall, now, nil)
	w.handle(<-w.results) // opens the breaker
	u2 := &tracked{inFlight: true, failures: 2}
	w.users["u2"] = u2
	w.call(context.Background(), "u2", inACall, now, nil)
	r := <-w.results
	w.handle(r)
	if n := len(h.graph.callsSnapshot()); n != 1 || !r.rejected || r.graph {
		t.Fatalf("%d calls reached Graph (want 1); the second: rejected %t, graph %t", n, r.rejected, r.graph)
	}
	if u2.failures != 2 || !u2.retryAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("after the rejection: %d failures (want 2), retry at %s (want the breaker's timeout, %s)",
			u2.failures, u2.retryAt, now.Add(time.Hour))
	}
}

// graphFunc is a GraphWriter made of one function; p is nil to clear.
type graphFunc func(user string, p *adapters.Pair, exp time.Duration) error

func (f graphFunc) SetPresence(_ context.Context, _, user string, p adapters.Pair, exp time.Duration) error {
	return f(user, &p, exp)
}

func (f graphFunc) ClearPresence(_ context.Context, _, user string) error { return f(user, nil, 0) }

// TestHalfOpenBreakerSendsOneProbe: three 503s open the breaker; with
// several users waiting, the first call after its timeout is the only
// one the writer starts while it is under way, and the only one Graph
// sees while the breaker is half-open. The breaker runs on real time,
// so the probe is held at Graph until the writer has had every chance
// to start another.
func TestHalfOpenBreakerSendsOneProbe(t *testing.T) {
	const timeout = 100 * time.Millisecond
	var (
		w                    atomic.Pointer[writer]
		mu                   sync.Mutex
		calls, inGraph, most int
		halfOpen             int // calls made while the breaker was half-open
		lastFailure, probeAt time.Time
		held, release        = make(chan struct{}), make(chan struct{})
		h                    *harness
	)
	free := sync.OnceFunc(func() { close(release) })
	h = newHarness(t, func(o *Options) {
		o.BreakerTimeout = timeout
		o.Graph = graphFunc(func(user string, p *adapters.Pair, exp time.Duration) error {
			mu.Lock()
			n := calls
			calls++
			inGraph++
			most = max(most, inGraph)
			if w.Load().breaker.State() == gobreaker.StateHalfOpen {
				halfOpen++
			}
			if n == 3 {
				probeAt = time.Now()
			}
			mu.Unlock()
			defer func() { mu.Lock(); inGraph--; mu.Unlock() }()
			switch {
			case n < 3:
				mu.Lock()
				lastFailure = time.Now()
				mu.Unlock()
				return err503
			case n == 3:
				close(held)
				<-release
			}
			return h.graph.record(user, p, exp)
		})
	})
	e, _ := h.start("a")
	t.Cleanup(free) // runs before the pool's stop, which waits for the probe
	w.Store(h.writer(e))
	count := func() (int, int, int) { mu.Lock(); defer mu.Unlock(); return calls, most, halfOpen }
	// One user's three 503s open the breaker; its retry then waits on
	// the fake clock, which stands still from here on.
	h.apply(e, "u0", call("pbx", "c1", "active", 0, false))
	h.eventually("three failing calls", func() bool {
		h.clock.Advance(time.Second)
		n, _, _ := count()
		return n >= 3
	})
	h.quiesce(e)
	for i := 1; i < 5; i++ {
		h.apply(e, fmt.Sprintf("u%d", i), call("pbx", "c1", "active", 0, false))
	}
	h.caughtUp(e, "u4")
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for the probe")
	}
	loops := w.Load().loops.Load()
	h.eventually("the writer to turn", func() bool { return w.Load().loops.Load() > loops+3 })
	n, most1, half := count()
	if started := h.started(e); started != 4 || n != 4 || most1 != 1 || half != 1 {
		t.Fatalf("with the probe under way: %d calls started, %d reached Graph, at most %d at once, %d while half-open; want 4, 4, 1, 1",
			started, n, most1, half)
	}
	mu.Lock()
	waited := probeAt.Sub(lastFailure)
	mu.Unlock()
	if waited < timeout {
		t.Fatalf("the probe went %s after the breaker opened, before its %s timeout", waited, timeout)
	}
	free()
	for i := range 5 {
		h.settle(fmt.Sprintf("u%d", i), inACall)
	}
	if _, _, half := count(); half != 1 {
		t.Fatalf("%d calls while half-open, want the one probe", half)
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

func TestLeaseTakeover(t *testing.T) {
	h := newHarness(t, nil)
	pools := make([]*testPool, 3)
	stops := make([]func(), 3)
	for i := range pools {
		pools[i], stops[i] = h.start(fmt.Sprintf("bridge-%d", i))
	}
	holder := -1
	h.eventually("one writer", func() bool {
		n := 0
		for i, e := range pools {
			if e.Writing("contoso.example") {
				n, holder = n+1, i
			}
		}
		return n == 1
	})
	stops[holder]()
	h.eventually("another writer", func() bool {
		for i, e := range pools {
			if i != holder && e.Writing("contoso.example") {
				return true
			}
		}
		return false
	})
	h.apply(pools[(holder+1)%3], "u1", call("pbx", "c1", "active", 0, false))
	h.settle("u1", inACall)
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

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestCrashedHolderLosesLease: a holder that vanishes without handing
// over (its connection cut) loses the tenant when the lease expires, and
// its writer is fenced by the time another instance writes.
func TestCrashedHolderLosesLease(t *testing.T) {
	srv := natstest.Server(t)
	clock := &fakeClock{now: t0}
	graph := newFakeGraph(clock)
	start := func() (*testPool, *nats.Conn) {
		nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(0))
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		e, err := newTestPool(Options{JetStream: js, Graph: graph, Clock: clock, Tick: 2 * time.Millisecond,
			LeaseTTL: 2 * time.Second, Tenants: []TenantOptions{{ID: "contoso.example"}}, Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go e.Run(ctx)
		return e, nc
	}
	a, ncA := start()
	deadline := time.Now().Add(30 * time.Second)
	for !a.Writing("contoso.example") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	a.mu.Lock()
	oldWriter := a.writers["contoso.example"]
	a.mu.Unlock()
	if oldWriter == nil {
		t.Fatal("a does not write")
	}
	b, ncB := start()
	defer ncB.Close()
	crashed := time.Now()
	ncA.Close() // no renewal, no hand-over
	for !b.Writing("contoso.example") {
		if time.Since(crashed) > 30*time.Second {
			t.Fatal("no takeover after the holder crashed")
		}
		time.Sleep(time.Millisecond)
	}
	// The old writer's fence only moves towards fenced once its renewals
	// fail, so finding it open now means it was open at the takeover.
	if !oldWriter.fenced() {
		t.Fatal("another instance writes while the crashed holder's writer may still call Graph")
	}
	t.Logf("takeover %s after the holder's connection was cut (lease TTL 2s)", time.Since(crashed).Round(time.Millisecond))
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

// TestWriterStopsWhenLeaseLapses: a writer whose lease was not renewed in
// time calls Graph no more, so a holder that is alive but cut off can not
// write beside the instance that took its tenant over.
func TestWriterStopsWhenLeaseLapses(t *testing.T) {
	h := newHarness(t, nil)
	e, err := newTestPool(Options{JetStream: h.js, Graph: h.graph, Clock: h.clock, Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	h.apply(e, "u1", call("pbx", "c1", "active", 0, false))
	st, err := e.State(context.Background(), "contoso.example", "u1")
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(e.Pool, contoso)
	w.take(st, 1)
	w.fenceAt(time.Now().Add(-time.Millisecond))
	w.dispatch(context.Background(), h.clock.Now())
	if w.inFlight != 0 {
		t.Fatal("a writer past its lease called Graph")
	}
	w.fenceAt(time.Now().Add(time.Minute))
	h.clock.Advance(time.Second) // the bucket starts empty
	w.dispatch(context.Background(), h.clock.Now())
	if w.inFlight != 1 {
		t.Fatal("a writer holding its lease did not call Graph")
	}
	if r := <-w.results; r.err != nil {
		t.Fatal(r.err)
	}
	if !adapters.SamePair(h.graph.session("u1"), inACall) {
		t.Fatal("the call did not reach Graph")
	}
}

// testLogWriter sends log lines to the test's log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
