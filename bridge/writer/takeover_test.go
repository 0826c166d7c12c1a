package writer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

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
	testpoll.Until(t, "a to write", func() bool { return a.Writing("contoso.example") })
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
	// A steady 1 ms pace: the old writer's fence is looked at as soon
	// after the takeover as can be.
	testpoll.Stepping(t, time.Millisecond, "a takeover after the holder crashed", func() bool { return b.Writing("contoso.example") })
	// The old writer's fence only moves towards fenced once its renewals
	// fail, so finding it open now means it was open at the takeover.
	if !oldWriter.fenced() {
		t.Fatal("another instance writes while the crashed holder's writer may still call Graph")
	}
	t.Logf("takeover %s after the holder's connection was cut (lease TTL 2s)", time.Since(crashed).Round(time.Millisecond))
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
	w := h.writerWithCall(e)
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
