package state

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// TestRecentStatesBounded (issue 23): the store remembers at most
// recentStatesMax states, however many users it writes, and a user it
// still remembers is found at its revision.
func TestRecentStatesBounded(t *testing.T) {
	r := newRecentStates(recentStatesMax)
	for i := range 3 * recentStatesMax {
		r.put("k"+strconv.Itoa(i), uint64(i+1), UserState{UserID: "u" + strconv.Itoa(i)}, true)
	}
	if n := len(r.states); n != recentStatesMax {
		t.Fatalf("%d states remembered, want %d", n, recentStatesMax)
	}
	if recentStatesMax > 10_000 {
		t.Fatalf("recentStatesMax %d: a copy of every person in a call of a large tenant", recentStatesMax)
	}
	for key, s := range r.states {
		st, rev, ok := r.getAt(key, s.rev, nil)
		if !ok || rev != s.rev || st.UserID != s.st.UserID {
			t.Fatalf("getAt(%s, %d) = %v, %d, %v", key, s.rev, st.UserID, rev, ok)
		}
		break
	}
}

// answerLateKV holds back the answer to each Update until the test has
// looked at the bucket: the write is stored, its writer not yet told.
type answerLateKV struct {
	jetstream.KeyValue
	stored chan struct{} // the write is stored, its answer held
	answer chan struct{} // let the answer through
}

func (kv answerLateKV) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	rev, err := kv.KeyValue.Update(ctx, key, value, last)
	kv.stored <- struct{}{}
	<-kv.answer
	return rev, err
}

// TestRecentKnowsAWriteNotYetAnswered: a watcher sent a state the store
// wrote, before the store has heard back its revision, is given the
// store's copy when the bytes are those written, and is told to decode
// bytes that differ; once answered, the revision alone is enough.
func TestRecentKnowsAWriteNotYetAnswered(t *testing.T) {
	ctx := context.Background()
	opened := openStore(t, Options{Clock: fixedClock(t0)})
	if err := opened.Apply(ctx, "contoso.example", "u1", call("pbx", "c1", "ringing", 0, false)); err != nil {
		t.Fatal(err)
	}
	kv := answerLateKV{KeyValue: opened.KV(), stored: make(chan struct{}), answer: make(chan struct{})}
	s := opened.WithKV(kv)
	key := UserKey("contoso.example", "u1")
	if _, _, err := s.Get(ctx, "contoso.example", "u1"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Apply(ctx, "contoso.example", "u1", call("pbx", "c1", "active", 0, false)) }()
	select {
	case <-kv.stored:
	case err := <-done:
		t.Fatalf("the write ended without reaching the bucket: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the write never reached the bucket")
	}
	entry, err := opened.KV().Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	st, _, ok := s.Recent(key, entry.Revision(), entry.Value())
	if !ok {
		t.Fatal("the state being written, sent before its answer, is not known")
	}
	if got, _ := json.Marshal(st); string(got) != string(entry.Value()) {
		t.Fatalf("given\n%s\nthe bucket holds\n%s", got, entry.Value())
	}
	other := append([]byte(nil), entry.Value()...)
	other[len(other)-2] ^= 1
	if _, remembered, ok := s.Recent(key, entry.Revision(), other); ok || remembered >= entry.Revision() {
		t.Fatalf("other bytes at that revision: given the store's copy %v, told of revision %d; want to decode them", ok, remembered)
	}
	close(kv.answer)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, remembered, ok := s.Recent(key, entry.Revision(), nil); !ok || remembered != entry.Revision() {
		t.Fatalf("once answered: known %v at revision %d, want revision %d", ok, remembered, entry.Revision())
	}
}

// TestUpdateCallerOwnsItsState: what Update hands its caller shares
// nothing with what the store remembers: the caller changing every map
// and pointer of it changes neither what the next update starts from nor
// what a watcher is given.
func TestUpdateCallerOwnsItsState(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{Clock: fixedClock(t0)})
	var full UserState
	fill(reflect.ValueOf(&full).Elem())
	full = copyState(full)
	got, rev, err := s.Update(ctx, "contoso.example", "u1", func(st *UserState) bool { *st = copyState(full); return true })
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := encode(full)
	scribble(&got)
	key := UserKey("contoso.example", "u1")
	if st, _, ok := s.Recent(key, rev, nil); !ok {
		t.Fatal("the state written is not remembered")
	} else if b, _ := encode(st); string(b) != string(stored) {
		t.Fatalf("a watcher is given\n%s\nafter the caller changed its state, want\n%s", b, stored)
	}
	if _, _, err := s.Update(ctx, "contoso.example", "u1", func(st *UserState) bool {
		if b, _ := encode(*st); string(b) != string(stored) {
			t.Fatalf("the next update starts from\n%s\nwant\n%s", b, stored)
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
}

// TestWatcherStateUnchangedByUpdates: a state a watcher was given
// (Recent) stays as it was while later updates change the user's every
// map and pointer.
func TestWatcherStateUnchangedByUpdates(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{Clock: fixedClock(t0)})
	var full UserState
	fill(reflect.ValueOf(&full).Elem())
	_, rev, err := s.Update(ctx, "contoso.example", "u1", func(st *UserState) bool { *st = copyState(full); return true })
	if err != nil {
		t.Fatal(err)
	}
	key := UserKey("contoso.example", "u1")
	seen, _, ok := s.Recent(key, rev, nil)
	if !ok {
		t.Fatal("the state written is not remembered")
	}
	before, _ := encode(seen)
	if _, _, err := s.Update(ctx, "contoso.example", "u1", func(st *UserState) bool { scribble(st); return true }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Take(ctx, "contoso.example", "u1", Incoming{Event: call("pbx", "c9", "active", 9, false), Accepted: t0}); err != nil {
		t.Fatal(err)
	}
	if after, _ := encode(seen); string(after) != string(before) {
		t.Fatalf("a watcher's state changed under it:\n%s\nwas\n%s", after, before)
	}
}

// TestTakeRemembersNothingOfItsCaller: the state Take writes is
// remembered without a copy, so it must hold nothing the caller keeps
// and no monotonic clock reading: after Take, the caller changing its
// events changes nothing remembered, and what is remembered is what is
// stored.
func TestTakeRemembersNothingOfItsCaller(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{Clock: realClock{}})
	now := time.Now() // with a monotonic reading, as a caller's may be
	p := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	events := []Incoming{
		{Event: adapters.Event{ID: "1", Source: "cal", Type: "meeting", OccurredAt: now, Start: p(-time.Minute), End: p(time.Hour), ShowAs: "busy"}, Accepted: now},
		{Event: adapters.Event{ID: "2", Source: "bus", Type: "presence", State: "set", Availability: "Away", Activity: "Away", OccurredAt: now, ExpiresAt: p(time.Hour)}, Accepted: now},
		{Event: adapters.Event{ID: "3", Source: "pbx", Type: "call", CallID: adapters.AllCalls, State: "ended", ExceptCalls: []string{"c1"}, OccurredAt: now}, Accepted: now},
	}
	if _, err := s.Take(ctx, "contoso.example", "u1", events...); err != nil {
		t.Fatal(err)
	}
	entry, err := s.KV().Get(ctx, UserKey("contoso.example", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range events {
		for _, tm := range []*time.Time{in.Event.Start, in.Event.End, in.Event.ExpiresAt} {
			if tm != nil {
				*tm = tm.Add(24 * time.Hour)
			}
		}
		for i := range in.Event.ExceptCalls {
			in.Event.ExceptCalls[i] = "changed"
		}
	}
	st, _, ok := s.Recent(entry.Key(), entry.Revision(), nil)
	if !ok {
		t.Fatal("the state written is not remembered")
	}
	if got, _ := encode(st); string(got) != string(entry.Value()) {
		t.Fatalf("remembered after the caller changed its events:\n%s\nstored:\n%s", got, entry.Value())
	}
	walk(reflect.ValueOf(st), "state", func(string, reflect.Value) {}, func(path string, tm time.Time) {
		if tm != tm.Round(0) {
			t.Errorf("%s keeps a monotonic clock reading", path)
		}
	})
}

// scribble changes every map and everything pointed to in st, in place.
func scribble(st *UserState) {
	for _, c := range st.Calls {
		c.State = "scribbled"
	}
	for _, m := range st.Meetings {
		*m.Start = m.Start.Add(time.Hour)
		m.Source = "scribbled"
	}
	for _, p := range st.Presence {
		p.Pair.Activity = "scribbled"
		*p.ExpiresAt = p.ExpiresAt.Add(time.Hour)
	}
	for k := range st.SourceSeen {
		st.SourceSeen[k] = t0
	}
	st.Calls["scribbled"] = &CallClaim{Source: "scribbled"}
	st.Told.Pair.Activity, st.Told.At = "scribbled", t0
	st.Pending.Pair.Activity = "scribbled"
	st.Failed.Pair.Activity, st.Failed.Reason = "scribbled", "scribbled"
	st.Manual.Pair.Activity = "scribbled"
	st.Status.Text = "scribbled"
	st.LastEvent.ID = "scribbled"
	*st.LastEvent.Start = st.LastEvent.Start.Add(time.Hour)
	st.LastEvent.ExceptCalls[0] = "scribbled"
	st.Waiting[0].Event = "scribbled"
}
