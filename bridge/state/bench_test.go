package state

import (
	"context"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// BenchmarkUpdateInCall is a writer's update of a user in one call (it
// records what Graph was told) through a real in-process JetStream: one
// op is one compare-and-set, started from the state the store remembers,
// with the state handed back to the caller.
func BenchmarkUpdateInCall(b *testing.B) {
	s := openStore(b, Options{Clock: fixedClock(t0)})
	ctx := context.Background()
	in := benchState()
	if _, _, err := s.Update(ctx, in.Tenant, in.UserID, func(st *UserState) bool { *st = in; return true }); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Update(ctx, in.Tenant, in.UserID, func(st *UserState) bool {
			st.Told.At = st.Told.At.Add(time.Second)
			return true
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTakeInCall is the apply stage's Take of one call event (held,
// then active again) for a user in a call, through a real in-process
// JetStream: one op is one event persisted.
func BenchmarkTakeInCall(b *testing.B) {
	s := openStore(b, Options{Clock: fixedClock(t0)})
	ctx := context.Background()
	in := benchState()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		ev := adapters.Event{ID: "e", Source: "pbx", Type: "call", User: "alice@contoso.example", State: []string{"active", "held"}[i%2],
			CallID: "c-1", OccurredAt: t0, Sequence: int64(i)}
		if _, err := s.Take(ctx, in.Tenant, in.UserID, Incoming{Event: ev, Accepted: t0}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecentAt is a watcher given the state the store just wrote
// (Store.Recent at the revision written), instead of decoding it.
func BenchmarkRecentAt(b *testing.B) {
	s := openStore(b, Options{Clock: fixedClock(t0)})
	ctx := context.Background()
	in := benchState()
	_, rev, err := s.Update(ctx, in.Tenant, in.UserID, func(st *UserState) bool { *st = in; return true })
	if err != nil {
		b.Fatal(err)
	}
	key := UserKey(in.Tenant, in.UserID)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := s.Recent(key, rev, nil); !ok {
			b.Fatal("not remembered")
		}
	}
}

// BenchmarkEncodeState is the encoding of a user in one call, as every
// write does it.
func BenchmarkEncodeState(b *testing.B) {
	st := benchState()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encode(st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUserKey is the key of a user's state, built for every update.
func BenchmarkUserKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = UserKey("contoso.example", "10ad0000-0000-4000-8000-000000000001")
	}
}
