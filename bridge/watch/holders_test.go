package watch

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/internal/guid"
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
	if w.people.len() != n || w.sessions.Len() != n {
		tb.Fatalf("the watcher reads %d people and holds %d sessions, want %d", w.people.len(), w.sessions.Len(), n)
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

// maxHolderBytes is the live heap a session holder may cost the watcher
// (issue 23: about 1 KB per person in a call for the whole bridge).
const maxHolderBytes = 150

// TestHolderCostsLittle (issue 23): 10,000 session holders taken in
// through the real path cost the watcher at most maxHolderBytes each,
// with the watch off and on.
func TestHolderCostsLittle(t *testing.T) {
	if raceOn {
		t.Skip("the race detector changes what the heap holds")
	}
	if testing.Short() {
		t.Skip("stores 10,000 states")
	}
	for _, enabled := range []bool{false, true} {
		if per := holderHeap(t, 10_000, enabled); per > maxHolderBytes {
			t.Errorf("with the watch enabled=%t a session holder costs %.0f B of live heap, want at most %d", enabled, per, maxHolderBytes)
		}
	}
}

// TestHoldersShareClaims: session holders told the same pair by the same
// sources share one claim; the table of claims stays bounded whatever
// the states say.
func TestHoldersShareClaims(t *testing.T) {
	w := &Watcher{}
	a := w.claim(adapters.Pair{Availability: "Busy", Activity: "InACall"}, []string{"pbx", "teams"})
	b := w.claim(adapters.Pair{Availability: "Busy", Activity: "InACall"}, []string{"pbx", "teams"})
	if a != b {
		t.Fatal("the same claim is kept twice")
	}
	for _, c := range []*claim{
		w.claim(adapters.Pair{Availability: "Busy", Activity: "InACall"}, []string{"pbx"}),
		w.claim(adapters.Pair{Availability: "Busy", Activity: "InACall"}, nil),
		w.claim(adapters.Pair{Availability: "Busy", Activity: "InACallpbx"}, []string{"teams"}),
		w.claim(adapters.Pair{Availability: "Busy", Activity: "InACall\x00pbx"}, []string{"teams"}),
		w.claim(adapters.Pair{Availability: "Busy", Activity: "InACall\x03pbx"}, []string{"teams"}),
		w.claim(adapters.Pair{Availability: "Busy", Activity: "InAConferenceCall"}, []string{"pbx", "teams"}),
	} {
		if c == a {
			t.Fatalf("claim %+v is shared with %+v", *c, *a)
		}
	}
	if got := w.claim(adapters.Pair{Availability: "Busy", Activity: "InACall"}, []string{"pbx"}); !slices.Equal(got.sources, []string{"pbx"}) {
		t.Fatalf("sources %q, want pbx", got.sources)
	}
	for i := range 3 * maxClaims {
		w.claim(adapters.Pair{Availability: "Busy", Activity: "InACall"}, []string{fmt.Sprint("source", i)})
	}
	if n := len(w.claims); n != maxClaims {
		t.Fatalf("%d shared claims, want at most %d", n, maxClaims)
	}
}

// TestPeopleAreReadInOrder: a cycle reads the listed, the GUIDs and the
// other ids of its people merged in the order of their strings, each
// once, in chunks.
func TestPeopleAreReadInOrder(t *testing.T) {
	ids := []string{userID(1), userID(2), userID(3), userID(4), userID(5), userID(6),
		"ffffffff-0000-4000-8000-000000000000", "0-not-a-guid", "zz-not-a-guid", "00000000-0000-4000-8000-00000000000A"}
	var p people
	var guids []guid.GUID
	for i, id := range ids {
		switch g, ok := guid.Parse(id); {
		case i%2 == 0:
			p.listed = append(p.listed, id)
		case ok:
			guids = append(guids, g)
		default:
			p.other = append(p.other, id)
		}
	}
	slices.Sort(p.listed)
	slices.Sort(p.other)
	slices.SortFunc(guids, guid.Compare)
	p.guids = guids
	var got []string
	var c cursor
	for !p.done(c) {
		chunk := p.next(&c, 3)
		if len(chunk) == 0 || len(chunk) > 3 {
			t.Fatalf("a chunk of %d ids, want 1 to 3", len(chunk))
		}
		got = append(got, chunk...)
	}
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
	if p.len() != len(ids) {
		t.Fatalf("len %d, want %d", p.len(), len(ids))
	}
}

// idleWatcher returns a watcher with the watch off that is not running
// (its fields are the caller's), and the claim of a pbx call in it.
func idleWatcher(tb testing.TB) (*Watcher, *claim) {
	tb.Helper()
	watch := watchAll()
	watch.Enabled = false
	w, err := New(Options{Tenant: tenant, Watch: watch, Graph: graphFuncs{}, State: &state.Store{},
		Hold: func(context.Context, string, func(context.Context) error) {}})
	if err != nil {
		tb.Fatal(err)
	}
	return w, w.claim(*inACall, []string{"pbx"})
}

// TestPeopleWorkedOutOncePerSecond: people starting calls one after the
// other within a second (a burst: the watcher steps at each state it
// takes in) make the watcher work out who is read once, not at each
// state; a second later everyone is in.
func TestPeopleWorkedOutOncePerSecond(t *testing.T) {
	w, c := idleWatcher(t)
	now := time.Unix(1_800_000_000, 0)
	for i := range 100 {
		w.sessions.Put(userID(i), session{told: c})
		w.dirty = true
		w.workOutPeople(now.Add(time.Duration(i) * time.Millisecond))
	}
	if n := w.people.len(); n != 1 {
		t.Fatalf("%d people read after 100 states within a second, want the first alone until a second later", n)
	}
	w.workOutPeople(now.Add(time.Second))
	if n := w.people.len(); n != 100 {
		t.Fatalf("%d people read a second later, want 100", n)
	}
}

// BenchmarkSetPeople is what working out the people read costs with
// 10,000 session holders and the watch off: the watcher does it at each
// look at its clock while people join or leave calls.
//
//	go test -run '^$' -bench BenchmarkSetPeople -benchmem ./bridge/watch/
func BenchmarkSetPeople(b *testing.B) {
	const n = 10_000
	w, c := idleWatcher(b)
	for i := range n {
		w.sessions.Put(userID(i), session{told: c})
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// One person leaves or comes back, as between two looks.
		if i%2 == 0 {
			w.sessions.Put(userID(n), session{told: c})
		} else {
			w.sessions.Delete(userID(n))
		}
		w.setPeople()
	}
	if w.people.len() < n {
		b.Fatalf("%d people read, want at least %d", w.people.len(), n)
	}
}
