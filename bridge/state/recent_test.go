package state

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestRecentStatesBounded (issue 23): the store remembers at most
// recentStatesMax states, however many users it writes, and a user it
// still remembers is found at its revision.
func TestRecentStatesBounded(t *testing.T) {
	r := newRecentStates(recentStatesMax)
	for i := range 3 * recentStatesMax {
		r.put("k"+strconv.Itoa(i), uint64(i+1), UserState{UserID: "u" + strconv.Itoa(i)})
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
