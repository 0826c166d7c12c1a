package writer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/internal/logthrottle"

	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// TestIdleUserHoldsNoState (issue 23): a user in a call whose session
// Graph holds, and one whose call ended and was cleared in Graph, is held
// as an idle entry, not a decoded state, and still counted as a session
// while it has one; the session's refresh reads the state back and the
// keep-alive goes out; a new event wakes it and its call goes out; a
// writer taking over holds no state of an idle user and makes no call
// for it.
func TestIdleUserHoldsNoState(t *testing.T) {
	h := newHarness(t, nil)
	e, stop := h.start("a")
	h.apply(e, "u1", call("pbx", "c1", "active", 0, false))
	h.settle("u1", inACall)
	h.quiesce(e)
	w := h.writer(e)
	if held, known, sessions := w.stats.held.Load(), w.known.Load(), w.stats.sessions.Load(); held != 0 || known != 1 || sessions != 1 {
		t.Fatalf("in a call: %d users held, %d known, %d sessions, want 0, 1 and 1", held, known, sessions)
	}
	// When the session's refresh comes, the writer reads the state back
	// from the bucket, the keep-alive goes out, and the user is idle again.
	calls := len(h.graph.callsSnapshot())
	h.eventually("the keep-alive", func() bool {
		h.clock.Advance(10 * time.Second) // the refresh is 7.5 to 10 minutes after the call
		return len(h.graph.callsSnapshot()) > calls
	})
	if c := h.graph.callsSnapshot()[calls]; c.user != "u1" || !adapters.SamePair(c.pair, inACall) {
		t.Fatalf("after the refresh time: a call for %s with %v, want u1's keep-alive in a call", c.user, c.pair)
	}
	h.quiesce(e)
	if held, sessions := w.stats.held.Load(), w.stats.sessions.Load(); held != 0 || sessions != 1 {
		t.Fatalf("after the keep-alive: %d users held, %d sessions, want 0 and 1", held, sessions)
	}

	h.apply(e, "u1", call("pbx", "c1", "ended", 1, false))
	h.settle("u1", nil)
	h.quiesce(e)
	if held, known, sessions := w.stats.held.Load(), w.known.Load(), w.stats.sessions.Load(); held != 0 || known != 1 || sessions != 0 {
		t.Fatalf("after the call: %d users held, %d known, %d sessions, want 0, 1 and 0", held, known, sessions)
	}

	h.apply(e, "u1", call("pbx", "c2", "active", 2, false))
	h.settle("u1", inACall)
	h.apply(e, "u1", call("pbx", "c2", "ended", 3, false))
	h.settle("u1", nil)
	h.quiesce(e)
	if held, known := w.stats.held.Load(), w.known.Load(); held != 0 || known != 1 {
		t.Fatalf("after the second call: %d users held, %d known, want 0 and 1", held, known)
	}
	calls = len(h.graph.callsSnapshot())
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

// TestIdleStateReadAgain: an idle user whose state could not be read
// back, or was read older than the one it went idle with, is read again
// later; one whose state does not decode is left idle, not read again;
// one woken by the watch meanwhile is left as it is.
func TestIdleStateReadAgain(t *testing.T) {
	clock := &fakeClock{now: t0}
	w := &writer{e: &Pool{opts: Options{Clock: clock}}, users: map[string]*tracked{}, keys: map[string]string{},
		log: discardLogger(), throttle: logthrottle.New(time.Minute)}
	for _, id := range []string{"failed", "behind", "garbled", "woken"} {
		w.idle.Put(id, idleUser{rev: 5})
	}
	w.takeLoaded([]loaded{
		{id: "failed", err: errors.New("nats: timeout")},
		{id: "behind", rev: 4, st: state.UserState{UserID: "behind"}},
		{id: "garbled", rev: 6, err: errors.New("decode state of garbled: invalid character")},
	})
	if u, ok := w.idle.Get("garbled"); !ok || u.wakeAt != 0 || w.users["garbled"] != nil {
		t.Fatalf("an undecodable state: idle %v, read again at %d, tracked %v; want idle, not read again", ok, u.wakeAt, w.users["garbled"] != nil)
	}
	for _, id := range []string{"failed", "behind"} {
		if u, _ := w.idle.Get(id); u.wakeAt != t0.Add(loadRetry).UnixNano() || w.users[id] != nil {
			t.Fatalf("%s: read again at %v, tracked %v; want read again after %v", id, time.Unix(0, u.wakeAt), w.users[id] != nil, loadRetry)
		}
	}
	if got, ok := w.wakes.due(t0.Add(loadRetry).UnixNano(), func(string, int64) bool { return true }); !ok || (got != "failed" && got != "behind") {
		t.Fatalf("the wakes hold %q %v, want the two to read again", got, ok)
	}
	w.take(state.UserState{UserID: "woken", Pending: &state.Told{}}, 6) // a call to make: tracked
	w.takeLoaded([]loaded{{id: "woken", rev: 5, st: state.UserState{UserID: "woken"}}})
	if tr := w.users["woken"]; tr == nil || tr.rev != 6 {
		t.Fatalf("woken by the watch, then read back older: %+v", tr)
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
		users: map[string]*tracked{}}
	tr := &tracked{rev: 5}
	tr.state.Waiting = []state.Waiting{ringing}
	w.users["u1"] = tr
	w.noCall(tr)
	if !w.rest(tr, "u1", time.Now(), time.Time{}, time.Time{}) || w.users["u1"] != nil {
		t.Fatal("u1 did not go idle")
	}
	woken := w.wake("u1")
	if woken == nil || woken.rev != 5 || w.users["u1"] != woken {
		t.Fatalf("woken %+v", woken)
	}
	// Woken with nothing new, it goes idle again, its events still settled.
	woken.state.Waiting = []state.Waiting{ringing}
	w.noCall(woken)
	if !w.rest(woken, "u1", time.Now(), time.Time{}, time.Time{}) {
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
	w := &writer{users: map[string]*tracked{}}
	w.idle.Put("u1", idleUser{rev: 5})
	w.take(state.UserState{UserID: "u1"}, 3)
	if u, _ := w.idle.Get("u1"); w.users["u1"] != nil || u.rev != 5 {
		t.Fatalf("an older state woke u1: users %v, idle %v", w.users, u)
	}
}

// TestRestartHoldsIdleUsersAsEntries (issue 23): a writer that starts on
// a bucket of idle people (calls ended, Graph told to clear) keeps each
// as an idle entry alone: no decoded state, no entry in its index of
// keys, no timer, and makes no Graph call for them. The people with
// something under way (a change not yet told, a call whose outcome is
// unknown) are reconciled as before, and then idle too, as is the one
// whose session is not yet due for a refresh. Then, with
// a writer taking over: an event for an idle person (its id in mixed
// case) wakes it and its call goes out, and once the idle people's keys
// have come to their end they are deleted and the writer drops them.
func TestRestartHoldsIdleUsersAsEntries(t *testing.T) {
	const idlePeople = 200
	h := newHarness(t, nil)
	ctx := context.Background()
	ended := at(-1)
	stored := func(userID string, change func(*state.UserState)) state.UserState {
		st := state.UserState{Tenant: "contoso.example", UserID: userID,
			Calls:      map[string]*state.CallClaim{"pbx/c": {Source: "pbx", State: "ended", OccurredAt: ended, Updated: ended}},
			SourceSeen: map[string]time.Time{"pbx": ended},
			Told:       &state.Told{At: ended},
		}
		if change != nil {
			change(&st)
		}
		return st
	}
	idleIDs := []string{"Idle-MixedCase"}
	for i := range idlePeople - 1 {
		if i%2 == 0 {
			idleIDs = append(idleIDs, fmt.Sprintf("3a7c0000-0000-4000-8000-%012d", i)) // an Entra object id
		} else {
			idleIDs = append(idleIDs, fmt.Sprintf("idle%d", i))
		}
	}
	states := []state.UserState{
		stored("alive", func(s *state.UserState) { // a session to keep alive
			s.Calls["pbx/c"].State = "active"
			s.Told = &state.Told{Pair: inACall, At: ended, Expires: ended.Add(15 * time.Minute)}
		}),
		stored("untold", func(s *state.UserState) { s.Calls["pbx/c"].State = "active"; s.Told = nil }),
		stored("pending", func(s *state.UserState) { s.Pending = &state.Told{Pair: inACall, At: ended} }),
	}
	for _, id := range idleIDs {
		states = append(states, stored(id, nil))
	}
	e, stop := h.start("a")
	kv := e.store.KV()
	for _, st := range states {
		data, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, state.UserKey(st.Tenant, st.UserID), data); err != nil {
			t.Fatal(err)
		}
	}
	h.caughtUp(e, idleIDs[len(idleIDs)-1])
	h.settle("untold", inACall)
	h.eventually("the pending call's outcome reconciled", func() bool {
		st, err := e.State(ctx, "contoso.example", "pending")
		return err == nil && st.Pending == nil && st.Told != nil && st.Told.Pair == nil
	})
	h.quiesce(e)
	w := h.writer(e)
	stop() // the writer's fields are read below, its loop ended
	for _, c := range h.graph.callsSnapshot() {
		if c.user != "untold" && c.user != "pending" && c.user != "alive" {
			t.Fatalf("a Graph call for %s, who was idle", c.user)
		}
	}
	if len(w.users) != 0 || w.sessions.live != 2 {
		t.Fatalf("%d people tracked and %d sessions counted once everything was told, want none tracked and 2 sessions: %v", len(w.users), w.sessions.live, w.users)
	}
	if w.idle.Len() != idlePeople+3 || w.known.Load() != idlePeople+3 {
		t.Fatalf("%d idle, %d known, want %d idle (with the two sessions and the cleared pending call) of %d", w.idle.Len(), w.known.Load(), idlePeople+3, idlePeople+3)
	}
	for _, id := range idleIDs {
		if w.users[id] != nil {
			t.Fatalf("%s is held decoded", id)
		}
		if _, ok := w.timers.at[id]; ok {
			t.Fatalf("%s holds a timer", id)
		}
	}
	if len(w.idle.GUIDs) != idlePeople/2 {
		t.Fatalf("%d idle people kept by their GUID's 16 bytes, want %d", len(w.idle.GUIDs), idlePeople/2)
	}
	if len(w.keys) != len(w.users) {
		t.Fatalf("the index of keys holds %d entries for %d people tracked", len(w.keys), len(w.users))
	}

	b, _ := h.start("b")
	h.caughtUp(b, "pending")
	h.quiesce(b)
	calls := len(h.graph.callsSnapshot())
	h.apply(b, "Idle-MixedCase", call("pbx", "c2", "active", 0, false))
	h.settle("Idle-MixedCase", inACall)
	if n := len(h.graph.callsSnapshot()); n != calls+1 {
		t.Fatalf("%d Graph calls after the event, want 1", n-calls)
	}
	wb := h.writer(b)
	h.clock.Advance(state.KeepClaims + time.Minute)
	h.eventually("the idle people's keys deleted", func() bool {
		_, err := kv.Get(ctx, state.UserKey("contoso.example", "idle7"))
		_, errGUID := kv.Get(ctx, state.UserKey("contoso.example", idleIDs[1]))
		return errors.Is(err, jetstream.ErrKeyNotFound) && errors.Is(errGUID, jetstream.ErrKeyNotFound) && wb.known.Load() == 3
	})
}
