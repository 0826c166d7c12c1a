package writer

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/internal/logbuf"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// fixedLease is a lease held until a given time, for writers tests run
// without competing for one.
type fixedLease time.Time

func (l fixedLease) Left() time.Duration { return time.Until(time.Time(l)) }

// fenceAt lets w call Graph until t, as a lease held until then would.
func (w *writer) fenceAt(t time.Time) { w.lease = fixedLease(t) }

// deadlineGraph records the deadline of every Graph call's context.
type deadlineGraph struct {
	*fakeGraph
	deadlines chan time.Time
}

func (g deadlineGraph) SetPresence(ctx context.Context, tenant, user string, p adapters.Pair, exp time.Duration) error {
	d, _ := ctx.Deadline()
	g.deadlines <- d
	return g.fakeGraph.SetPresence(ctx, tenant, user, p, exp)
}

// TestCallEndsWithTheLease: a Graph call's context ends when the lease
// may pass to another instance, not 30 s later.
func TestCallEndsWithTheLease(t *testing.T) {
	h := newHarness(t, nil)
	g := deadlineGraph{fakeGraph: h.graph, deadlines: make(chan time.Time, 1)}
	e, err := newTestPool(Options{JetStream: h.js, Graph: g, Clock: h.clock, Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	w := h.writerWithCall(e)
	fence := time.Now().Add(3 * time.Second)
	w.fenceAt(fence)
	h.clock.Advance(time.Second) // the bucket starts empty
	w.dispatch(context.Background(), h.clock.Now())
	if w.inFlight != 1 {
		t.Fatal("no call")
	}
	deadline := <-g.deadlines
	if r := <-w.results; r.err != nil {
		t.Fatal(r.err)
	}
	// The deadline is taken a moment after the lease's time left is read,
	// so it may pass the fence by that moment, never by seconds (the old
	// deadline was 30 s away).
	if past := deadline.Sub(fence); past > 100*time.Millisecond {
		t.Fatalf("the call may run %s past the lease's end", past)
	}
}

// TestNewWriterStartsEmpty: a writer's token bucket starts empty, so that
// its first calls and its predecessor's last stay within one budget.
func TestNewWriterStartsEmpty(t *testing.T) {
	h := newHarness(t, nil)
	e, err := newTestPool(Options{JetStream: h.js, Graph: h.graph, Clock: h.clock, Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	for _, budget := range []int{10, 1500, 10000} {
		w := newWriter(e.Pool, TenantOptions{ID: "contoso.example", Budget: budget, Window: 30 * time.Second})
		if tokens := w.budget.limiter.TokensAt(h.clock.Now()); tokens >= 1 {
			t.Fatalf("budget %d: a new writer starts with %.2f tokens", budget, tokens)
		}
	}
}

// TestPauseSurvivesHandover: a Retry-After given to one writer holds for
// the instance that takes the tenant over; it calls Graph only after the
// pause, on the fake clock Graph's calls are stamped with.
func TestPauseSurvivesHandover(t *testing.T) {
	h := newHarness(t, nil)
	h.graph.fail = func(n int) error {
		if n == 0 {
			return err429 // Retry-After 5 s
		}
		return nil
	}
	a, stopA := h.start("a")
	h.eventually("a writer", func() bool { return a.Writing("contoso.example") })
	h.apply(a, "u1", call("pbx", "c1", "active", 0, false))
	h.clock.Advance(25 * time.Millisecond) // one token
	h.eventually("the 429", func() bool { return len(h.graph.callsSnapshot()) >= 1 })
	h.eventually("the pause recorded", func() bool {
		_, err := a.store.KV().Get(context.Background(), pauseKey("contoso.example"))
		return err == nil
	})
	stopA()
	b, _ := h.start("b")
	h.eventually("b to write", func() bool { return b.Writing("contoso.example") })
	h.settle("u1", inACall)
	calls := h.graph.callsSnapshot()
	until := calls[0].at.Add(5 * time.Second)
	for _, c := range calls[1:] {
		if c.at.Before(until) {
			t.Fatalf("a call at %s, inside the Retry-After that ends at %s", c.at, until)
		}
	}
}

// breakableKV is the state bucket with a first watch that ends when
// broken is closed, as a watch does when its consumer is lost.
type breakableKV struct {
	jetstream.KeyValue
	broken  chan struct{}
	mu      sync.Mutex
	watches int
}

func (k *breakableKV) Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	inner, err := k.KeyValue.Watch(ctx, keys, opts...)
	k.mu.Lock()
	first := k.watches == 0
	k.watches++
	k.mu.Unlock()
	if err != nil || !first {
		return inner, err
	}
	out := make(chan jetstream.KeyValueEntry)
	go func() {
		defer close(out)
		for {
			select {
			case <-k.broken:
				return
			case entry, ok := <-inner.Updates():
				if !ok {
					return
				}
				select {
				case out <- entry:
				case <-k.broken:
					return
				}
			}
		}
	}()
	return relayedWatcher{KeyWatcher: inner, out: out}, nil
}

// relayedWatcher is a KV watch whose updates a test relays through out.
type relayedWatcher struct {
	jetstream.KeyWatcher
	out chan jetstream.KeyValueEntry
}

func (w relayedWatcher) Updates() <-chan jetstream.KeyValueEntry { return w.out }

// TestStoppedWriterIsRestarted: a writer whose watch of the user states
// ends says so in the log, and the tenant is written again (here by the
// same instance, after it released the lease and won it back).
func TestStoppedWriterIsRestarted(t *testing.T) {
	h := newHarness(t, nil)
	logs := &logbuf.Buffer{}
	e, err := newTestPool(Options{JetStream: h.js, InstanceID: "a", Graph: h.graph, Clock: h.clock,
		Rules: rules, LeaseTTL: 2 * time.Second, Tick: 2 * time.Millisecond,
		Tenants: []TenantOptions{{ID: "contoso.example"}}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	kv := &breakableKV{KeyValue: e.store.KV(), broken: make(chan struct{})}
	e.store = e.store.WithKV(kv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	h.apply(e, "u1", call("pbx", "c1", "active", 0, false))
	h.settle("u1", inACall)
	close(kv.broken)
	h.apply(e, "u1", call("pbx", "c1", "ended", 1, false))
	h.settle("u1", nil)
	if !strings.Contains(logs.String(), "writer stopped") || !strings.Contains(logs.String(), "watch of user states ended") {
		t.Fatalf("the writer's stop was not logged with its reason:\n%s", logs.String())
	}
}
