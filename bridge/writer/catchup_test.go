package writer

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// countingKV is the state bucket with watches that count the entries
// they give.
type countingKV struct {
	jetstream.KeyValue
	entries atomic.Int64
}

func (k *countingKV) Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	inner, err := k.KeyValue.Watch(ctx, keys, opts...)
	if err != nil {
		return nil, err
	}
	out := make(chan jetstream.KeyValueEntry)
	go func() {
		defer close(out)
		for entry := range inner.Updates() {
			if entry != nil {
				k.entries.Add(1)
			}
			select {
			case out <- entry:
			case <-ctx.Done():
				return
			}
		}
	}()
	return relayedWatcher{KeyWatcher: inner, out: out}, nil
}

// TestStartReadsStoredStatesInBatches (issue 23): a writer that starts
// reads the states stored before it through its bounded catch-up, not
// through the KV watch (which pushes everything at once), and then
// watches from the revision after them: a change after the start comes
// through the watch and is acted on.
func TestStartReadsStoredStatesInBatches(t *testing.T) {
	const stored = 775 // three batches of 256 and some
	h := newHarness(t, nil)
	ctx := context.Background()
	e, err := newTestPool(withDefaults(Options{JetStream: h.js, InstanceID: "a", Graph: h.graph, Clock: h.clock,
		Rules: rules, LeaseTTL: 10 * time.Second, Tick: 2 * time.Millisecond,
		Tenants: []TenantOptions{{ID: "contoso.example", Budget: 1500, Window: 30 * time.Second}}}))
	if err != nil {
		t.Fatal(err)
	}
	kv := &countingKV{KeyValue: e.store.KV()}
	e.store = e.store.WithKV(kv)
	ended := at(-1)
	for i := range stored {
		st := state.UserState{Tenant: "contoso.example", UserID: fmt.Sprintf("u%d", i),
			Calls:      map[string]*state.CallClaim{"pbx/c": {Source: "pbx", State: "ended", OccurredAt: ended, Updated: ended}},
			SourceSeen: map[string]time.Time{"pbx": ended},
			Told:       &state.Told{At: ended},
		}
		data, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, state.UserKey(st.Tenant, st.UserID), data); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	h.eventually("the writer to catch up", func() bool { return e.CaughtUp("contoso.example") })
	w := h.writer(e)
	if n := w.known.Load(); n != stored {
		t.Fatalf("the writer knows %d people, want %d", n, stored)
	}
	if n := kv.entries.Load(); n != 0 {
		t.Fatalf("the watch gave %d stored states, want none: the catch-up reads them", n)
	}
	h.apply(e, "u5", call("pbx", "c2", "active", 0, false))
	h.settle("u5", inACall)
	if n := kv.entries.Load(); n == 0 {
		t.Fatal("the change after the start did not come through the watch")
	}
}
