package state

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestWritesOfOneKeyTakeTurns: two writes of one user's state at once in
// one process take turns instead of racing to a revision, so neither is
// refused and read again: the changes run once each, and both land.
func TestWritesOfOneKeyTakeTurns(t *testing.T) {
	s := openStore(t, Options{})
	ctx := context.Background()
	if _, _, err := s.Update(ctx, "contoso.example", "u1", func(st *UserState) bool { return true }); err != nil {
		t.Fatal(err)
	}
	var changes atomic.Int32
	inFirst, releaseFirst := make(chan struct{}), make(chan struct{})
	firstDone := make(chan error, 1)
	go func() {
		_, _, err := s.Update(ctx, "contoso.example", "u1", func(st *UserState) bool {
			if changes.Add(1) == 1 {
				close(inFirst)
				<-releaseFirst
			}
			st.Tenant = "first"
			return true
		})
		firstDone <- err
	}()
	<-inFirst
	secondDone := make(chan error, 1)
	go func() {
		_, _, err := s.Update(ctx, "contoso.example", "u1", func(st *UserState) bool {
			changes.Add(1)
			st.UserID = "second"
			return true
		})
		secondDone <- err
	}()
	// Real time must pass: the second write is given the time to reach
	// the key (it waits there, or without turns it writes and the first
	// is refused).
	select {
	case err := <-secondDone:
		secondDone <- err
	case <-time.After(100 * time.Millisecond):
	}
	close(releaseFirst)
	if err := errors.Join(<-firstDone, <-secondDone); err != nil {
		t.Fatal(err)
	}
	if n := changes.Load(); n != 2 {
		t.Errorf("the changes ran %d times, want 2: a write was refused and made again", n)
	}
	st, _, err := s.Get(ctx, "contoso.example", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Tenant != "first" || st.UserID != "second" {
		t.Errorf("stored tenant %q user %q, want both writes", st.Tenant, st.UserID)
	}
}

// TestWriteWaitingForItsTurnEnds: a write waiting for another of its key
// ends with its context.
func TestWriteWaitingForItsTurnEnds(t *testing.T) {
	s := openStore(t, Options{})
	unlock, err := s.writing.lock(context.Background(), UserKey("contoso.example", "u1"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Update(ctx, "contoso.example", "u1", func(*UserState) bool { return true }); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the context's end", err)
	}
}
