package writer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// The writer tests' harness: a real JetStream, a fake clock, a fake Graph
// that records every call, and pools run on them.

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
		// The lease runs on real time: 10 s, so that a busy machine's slow
		// renewal does not fence the writer a test is watching; hand-overs
		// here are clean releases, taken at once.
		Rules: rules, Expiration: 15 * time.Minute, LeaseTTL: 10 * time.Second,
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

// eventually asks cond every 2 ms of real time until it holds: a cond
// may move the fake clock a step each time it is asked.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	testpoll.Stepping(h.t, 2*time.Millisecond, what, cond)
}

// writerWithCall returns a writer of contoso in e (not running) that has
// taken in u1's state after an active call: one call to make.
func (h *harness) writerWithCall(e *testPool) *writer {
	h.t.Helper()
	h.apply(e, "u1", call("pbx", "c1", "active", 0, false))
	st, err := e.State(context.Background(), "contoso.example", "u1")
	if err != nil {
		h.t.Fatal(err)
	}
	w := newWriter(e.Pool, contoso)
	w.take(st, 1)
	return w
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
		testpoll.Until(h.t, "two turns of the writer's loop", func() bool { return w.loops.Load() >= loops+2 })
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
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testLogWriter sends log lines to the test's log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
