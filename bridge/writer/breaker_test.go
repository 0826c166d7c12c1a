package writer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/presence-bridge/presence-bridge/adapters"
)

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
