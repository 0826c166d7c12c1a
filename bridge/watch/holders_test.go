package watch

import (
	"context"
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/internal/natstest"
)

// holderHeap is the live heap, in bytes per person, that n session
// holders cost a watcher that has taken in their states through the real
// path: each one's state stored in a real KV bucket (in a call, Graph
// told Busy/InACall), read at the watcher's start (State.ReadStored into
// takeState), its people worked out as they come and a cycle begun. With enabled the
// watch is on over `users: all`, everyone listed before the states are
// taken in, so the figure is what holding a session adds to a watched
// person; else the watch is off, and only the session holders are read.
func holderHeap(tb testing.TB, n int, enabled bool) float64 {
	tb.Helper()
	ctx := context.Background()
	js, _ := natstest.Start(tb)
	store, err := state.Open(ctx, js, state.Options{Rules: rules})
	if err != nil {
		tb.Fatal(err)
	}
	users := make([]graphclient.User, n)
	for i := range n {
		users[i] = graphclient.User{ID: userID(i), UserPrincipalName: upn(i)}
	}
	for i := range n {
		var st state.UserState
		st.Apply(adapters.Event{ID: "c1", Source: "pbx", Type: "call", CallID: "c1", State: adapters.CallActive, OccurredAt: t0}, t0)
		st.Told = &state.Told{Pair: inACall, At: t0, Expires: t0.Add(15 * time.Minute)}
		st.Tenant, st.UserID = tenant, userID(i)
		data, err := json.Marshal(st)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := js.PublishAsync("$KV."+store.KV().Bucket()+"."+state.UserKey(tenant, userID(i)), data); err != nil {
			tb.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute): // a bound on a stuck server, not a pace
		tb.Fatal("the states were not all stored within a minute")
	}
	watch := watchAll()
	watch.Enabled = enabled
	w, err := New(Options{Tenant: tenant, Watch: watch, ObserveInterval: time.Second, Graph: graphFuncs{users: users}, State: store, Rules: rules,
		Seen: store.KV(), Sink: &recorder{}, Hold: func(context.Context, string, func(context.Context) error) {}})
	if err != nil {
		tb.Fatal(err)
	}
	// What work does before it takes in the stored states.
	w.dirty = true
	if enabled {
		w.list(ctx)
		w.setPeople()
		w.startCycle(t0)
	}
	before := liveHeap()
	// The people are worked out again as states come in, as the watcher's
	// looks at its clock do while people join calls.
	taken := 0
	take := func(e jetstream.KeyValueEntry) {
		w.takeState(e)
		if taken++; taken%1000 == 0 {
			w.setPeople()
		}
	}
	if _, err := store.ReadStored(ctx, tenant, take); err != nil {
		tb.Fatal(err)
	}
	w.setPeople()
	w.startCycle(t0)
	after := liveHeap()
	if w.people.len() != n || w.sessions.len() != n {
		tb.Fatalf("the watcher reads %d people and holds %d sessions, want %d", w.people.len(), w.sessions.len(), n)
	}
	runtime.KeepAlive(w)
	runtime.KeepAlive(store)
	return float64(after-before) / float64(n)
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkHolderHeap reports the live heap a session holder costs the
// watcher (issue 23), with the watch off and on, at 20,000 holders:
//
//	go test -run '^$' -bench BenchmarkHolderHeap -benchtime 1x ./bridge/watch/
func BenchmarkHolderHeap(b *testing.B) {
	const n = 20_000
	for _, c := range []struct {
		name    string
		enabled bool
	}{{"off", false}, {"on", true}} {
		b.Run(c.name, func(b *testing.B) {
			var per float64
			for range b.N {
				per = holderHeap(b, n, c.enabled)
			}
			b.ReportMetric(per, "B/holder")
		})
	}
}
