package history_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

func list(t *testing.T, s *history.Store, tenant, user string) []history.Entry {
	t.Helper()
	got, err := s.List(context.Background(), tenant, user)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A user's history keeps the last MaxPerUser entries, in order, apart
// from every other user's, and a second bridge on the same NATS reads
// the same.
func TestHistoryBoundedPerUserAndShared(t *testing.T) {
	js, _ := natstest.Start(t)
	ctx := context.Background()
	s, err := history.Open(ctx, js, history.Options{MaxPerUser: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range 8 {
		s.Record("contoso", "alice", history.Entry{At: at.Add(time.Duration(i) * time.Second), Source: "pbx", ID: fmt.Sprint("ev-", i)})
	}
	s.Record("contoso", "bob", history.Entry{At: at, Source: "pbx", ID: "bob-1"})
	testpoll.Until(t, "bob's entry", func() bool { return len(list(t, s, "contoso", "bob")) == 1 })
	testpoll.Until(t, "alice's last entry", func() bool {
		got := list(t, s, "contoso", "alice")
		return len(got) > 0 && got[len(got)-1].ID == "ev-7"
	})
	other, err := history.Open(ctx, js, history.Options{MaxPerUser: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	got := list(t, other, "contoso", "alice")
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if strings.Join(ids, ",") != "ev-3,ev-4,ev-5,ev-6,ev-7" {
		t.Fatalf("alice's history = %v, want the last five in order", ids)
	}
	if got := list(t, s, "fabrikam", "alice"); len(got) != 0 {
		t.Fatalf("another tenant's alice has %d entries", len(got))
	}
}

// A user id of any length or content is one fixed-size subject token.
func TestSubjectHidesUserID(t *testing.T) {
	for _, user := range []string{"alice", "a.b.>*", strings.Repeat("x", 10000), "ALICE"} {
		s := history.Subject("contoso", user)
		tokens := strings.Split(s, ".")
		if len(tokens) != 4 || len(tokens[3]) != 32 || strings.ContainsAny(tokens[3], "*> ") {
			t.Errorf("Subject(%q) = %q", user, s)
		}
	}
	if history.Subject("contoso", "ALICE") != history.Subject("contoso", "alice") {
		t.Error("user ids differing in case get different subjects")
	}
}

// blockingJS never lets the publisher get anywhere: Record must still
// return at once and count what it drops.
func TestRecordNeverBlocks(t *testing.T) {
	js, stop := natstest.Start(t)
	s, err := history.Open(context.Background(), js, history.Options{Buffer: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop() // NATS gone: publishing fails or hangs
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			s.Record("contoso", "alice", history.Entry{ID: "x"})
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Record blocked")
	}
	if s.Dropped() < 900 {
		t.Fatalf("dropped %d of 1000 with a buffer of 4", s.Dropped())
	}
	s.Close()
	s.Record("contoso", "alice", history.Entry{ID: "after close"})
}

func TestDecisionCarriesGraphRequestID(t *testing.T) {
	err := fmt.Errorf("set presence: %w", &graphclient.Error{Op: "set presence", StatusCode: 400, Code: "BadRequest", RequestID: "req-42"})
	e := history.Decision(history.DecisionRefused, &adapters.Pair{Availability: "Busy", Activity: "InACall"}, err, time.Now())
	if e.RequestID != "req-42" || e.Pair != "Busy/InACall" || !strings.Contains(e.Detail, "400") {
		t.Fatalf("entry %+v", e)
	}
}

// All users' entries together stay under MaxTotal, the oldest going.
func TestHistoryBoundedInTotal(t *testing.T) {
	js, _ := natstest.Start(t)
	s, err := history.Open(context.Background(), js, history.Options{MaxPerUser: 5, MaxTotal: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 30 {
		s.Record("contoso", fmt.Sprint("user-", i), history.Entry{ID: fmt.Sprint("ev-", i)})
	}
	testpoll.Until(t, "the last user's entry", func() bool { return len(list(t, s, "contoso", "user-29")) == 1 })
	stream, err := js.Stream(context.Background(), history.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs > 10 || len(list(t, s, "contoso", "user-0")) != 0 {
		t.Fatalf("%d entries kept, user-0's still there: want at most 10, the oldest gone", info.State.Msgs)
	}
}

// TestRecordRateCapped: entries beyond MaxRate in a burst are dropped and
// counted, never queued.
func TestRecordRateCapped(t *testing.T) {
	js, _ := natstest.Start(t)
	s, err := history.Open(context.Background(), js, history.Options{MaxRate: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 100 {
		s.Record("contoso.example", "u1", history.Entry{ID: fmt.Sprint(i), Outcome: "applied"})
	}
	if d := s.Dropped(); d < 80 {
		t.Fatalf("%d of 100 entries dropped at a cap of 10 a second, want at least 80", d)
	}
}
