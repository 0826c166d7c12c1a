package writer

import (
	"context"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// TestIdleUserHoldsNoState (issue 23): a user whose call ended and was
// cleared in Graph is held as an idle entry, not a decoded state; a new
// event wakes it and its call goes out; a writer taking over holds no
// state of an idle user and makes no call for it.
func TestIdleUserHoldsNoState(t *testing.T) {
	h := newHarness(t, nil)
	e, stop := h.start("a")
	h.apply(e, "u1", call("pbx", "c1", "active", 0, false))
	h.settle("u1", inACall)
	h.quiesce(e)
	w := h.writer(e)
	if held := w.stats.held.Load(); held != 1 {
		t.Fatalf("in a call: %d users held, want 1", held)
	}
	h.apply(e, "u1", call("pbx", "c1", "ended", 1, false))
	h.settle("u1", nil)
	h.quiesce(e)
	if held, known := w.stats.held.Load(), w.known.Load(); held != 0 || known != 1 {
		t.Fatalf("after the call: %d users held, %d known, want 0 and 1", held, known)
	}

	h.apply(e, "u1", call("pbx", "c2", "active", 2, false))
	h.settle("u1", inACall)
	h.apply(e, "u1", call("pbx", "c2", "ended", 3, false))
	h.settle("u1", nil)
	h.quiesce(e)
	if held, known := w.stats.held.Load(), w.known.Load(); held != 0 || known != 1 {
		t.Fatalf("after the second call: %d users held, %d known, want 0 and 1", held, known)
	}
	calls := len(h.graph.callsSnapshot())
	stop()

	b, _ := h.start("b")
	h.caughtUp(b, "u1")
	h.quiesce(b)
	wb := h.writer(b)
	if held, known := wb.stats.held.Load(), wb.known.Load(); held != 0 || known != 1 {
		t.Fatalf("the writer taking over holds %d users, knows %d, want 0 and 1", held, known)
	}
	if n := len(h.graph.callsSnapshot()); n != calls {
		t.Fatalf("the writer taking over made %d Graph calls, want none", n-calls)
	}
	if _, err := b.store.KV().Get(context.Background(), state.UserKey("contoso.example", "u1")); err != nil {
		t.Fatalf("the idle user's state left the bucket: %v", err)
	}
}

// TestIdleUserWakesWithEventsSettled: the events waiting in the state a
// user went idle with were reported already (no call); once woken, a
// call that carries them and a new event reports only the new one.
func TestIdleUserWakesWithEventsSettled(t *testing.T) {
	accepted := time.Now().Add(-time.Second)
	ringing := state.Waiting{Event: "pbx:ring", Accepted: accepted}
	active := state.Waiting{Event: "pbx:answer", Accepted: accepted.Add(time.Millisecond)}
	outcomes := map[string]int{}
	w := &writer{e: &Pool{opts: Options{EventOutcome: func(o string) { outcomes[o]++ }}},
		users: map[string]*tracked{}, idle: map[string]idleUser{}}
	tr := &tracked{rev: 5}
	tr.state.Waiting = []state.Waiting{ringing}
	w.users["u1"] = tr
	w.noCall(tr)
	if !w.rest(tr, "u1", time.Now()) || w.users["u1"] != nil {
		t.Fatal("u1 did not go idle")
	}
	woken := w.wake("u1")
	if woken == nil || woken.rev != 5 || w.users["u1"] != woken {
		t.Fatalf("woken %+v", woken)
	}
	// Woken with nothing new, it goes idle again, its events still settled.
	woken.state.Waiting = []state.Waiting{ringing}
	w.noCall(woken)
	if !w.rest(woken, "u1", time.Now()) {
		t.Fatal("u1 woken with only settled events did not go idle again")
	}
	woken = w.wake("u1")
	woken.state.Waiting = []state.Waiting{ringing, active}
	w.reportWaits(woken, result{graph: true, waits: woken.state.Waiting})
	if outcomes[OutcomeGraph] != 1 || outcomes[OutcomeNoCall] != 1 {
		t.Fatalf("outcomes %v, want the ringing once as no call and the answer once as graph", outcomes)
	}
}

// TestIdleUserKeptByOlderState: a state older than the one an idle user
// went idle with (its own record of a call, arriving late) leaves it idle.
func TestIdleUserKeptByOlderState(t *testing.T) {
	w := &writer{users: map[string]*tracked{}, idle: map[string]idleUser{"u1": {rev: 5}}}
	w.take(state.UserState{UserID: "u1"}, 3)
	if w.users["u1"] != nil || w.idle["u1"].rev != 5 {
		t.Fatalf("an older state woke u1: users %v, idle %v", w.users, w.idle)
	}
}
