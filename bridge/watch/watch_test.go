package watch

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/lease"
	"github.com/presence-bridge/presence-bridge/bridge/lookup"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
)

// TestTeamsCallIsOneChange: everyone is first seen once; then a Teams
// call is one change of origin teams, and reading the same presence
// again changes nothing.
func TestTeamsCallIsOneChange(t *testing.T) {
	h := newHarness(t, 3, emulator.Throttle{})
	w, _ := h.start(watchAll(), nil)
	testpoll.Until(t, "everyone seen once", func() bool { return len(h.sink.all()) == 3 })
	for _, c := range h.sink.all() {
		if c.Previous != nil || c.Availability != "Offline" || c.Origin != outputs.OriginTeams {
			t.Fatalf("first sighting %+v", c)
		}
	}
	if err := h.em.SetTeamsSession(userID(1), "Busy", "InACall"); err != nil {
		t.Fatal(err)
	}
	seenBefore := h.sink.seenCount()
	h.advance(w, 10*time.Second, 500*time.Millisecond) // five intervals
	got := of(h.sink.all(), userID(1))
	if len(got) != 2 {
		t.Fatalf("%d changes of user 1, want the first sighting and the call: %+v", len(got), got)
	}
	c := got[1]
	if c.Availability != "Busy" || c.Activity != "InACall" || c.Origin != outputs.OriginTeams || len(c.Sources) != 0 {
		t.Fatalf("the call's change is %+v", c)
	}
	if c.Previous == nil || *c.Previous != (outputs.Pair{Availability: "Offline", Activity: "Offline"}) {
		t.Fatalf("previous %+v, want Offline/Offline", c.Previous)
	}
	if c.User != upn(1) || c.ID != outputs.ChangeID(tenant, userID(1), c.SequenceNumber) || c.Tenant != tenant {
		t.Fatalf("change names %q, %q, %q", c.User, c.ID, c.Tenant)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	if n := len(h.sink.all()); n != 4 {
		t.Fatalf("%d changes, want 4: reading the same presence again changed something", n)
	}
	if h.sink.seenCount() <= seenBefore+3 {
		t.Fatalf("the reads that changed nothing were not handed over as seen (%d, %d)", seenBefore, h.sink.seenCount())
	}
}

// TestBridgeSessionOrigin: a presence the bridge's own session explains
// has origin bridge and the sources of the claims that made the session.
func TestBridgeSessionOrigin(t *testing.T) {
	h := newHarness(t, 2, emulator.Throttle{})
	h.session(0, "pbx")
	h.start(watchAll(), nil)
	testpoll.Until(t, "everyone seen once", func() bool { return len(h.sink.all()) == 2 })
	c := of(h.sink.all(), userID(0))[0]
	if c.Origin != outputs.OriginBridge || !slices.Equal(c.Sources, []string{"pbx"}) || c.Availability != "Busy" {
		t.Fatalf("the bridge's session was seen as %+v", c)
	}
	if c := of(h.sink.all(), userID(1))[0]; c.Origin != outputs.OriginTeams {
		t.Fatalf("someone without a session has origin %q", c.Origin)
	}
}

// TestStatesTheStoreWroteAreNotDecoded: a user state this process's
// store has just written is taken from the store's copy, not decoded
// again from the watch (the watch here garbles every value), so the
// bridge's session still explains what Graph shows.
func TestStatesTheStoreWroteAreNotDecoded(t *testing.T) {
	h := newHarness(t, 1, emulator.Throttle{})
	gate := &gatedKV{KeyValue: h.store.KV(), garble: true, open: make(chan struct{})}
	h.store = h.store.WithKV(gate)
	stream, err := h.js.Stream(context.Background(), "KV_"+h.store.KV().Bucket())
	if err != nil {
		t.Fatal(err)
	}
	// A read waits for the states stored before it (StateStream), so the
	// session, written after the start, reaches the watcher through its
	// garbling watch before the read that shows it; the watch holds it
	// back until the store has heard the revision it wrote.
	w, _ := h.start(watchAll(), func(o *Options) { o.StateStream = stream })
	testpoll.Until(t, "the person seen", func() bool { return len(h.sink.all()) == 1 })
	gate.hold.Store(true)
	h.session(0, "pbx")
	close(gate.open)
	for i := 0; len(h.sink.all()) < 2; i++ {
		if i == 10 {
			t.Fatalf("the session is not seen after 10 intervals: %+v", h.sink.all())
		}
		h.advance(w, 2*time.Second, 500*time.Millisecond)
	}
	if c := h.sink.all()[1]; c.Origin != outputs.OriginBridge || !slices.Equal(c.Sources, []string{"pbx"}) {
		t.Fatalf("the bridge's session was seen as %+v, want origin bridge from pbx", c)
	}
}

// TestBudgetStretchesTheCycle: with more people than the read budget
// covers at the interval, no window of the budget holds more reads than
// it allows, Graph throttles nothing, and the cycle stretches.
func TestBudgetStretchesTheCycle(t *testing.T) {
	h := newHarness(t, 20, emulator.Throttle{Limit: 3, Window: 10 * time.Second})
	watch := watchAll()
	watch.Interval, watch.ReadBudget, watch.ReadBudgetWindow = time.Second, 3, 10*time.Second
	w, _ := h.start(watch, func(o *Options) { o.ChunkSize = 2 }) // ten requests a cycle
	testpoll.Until(t, "the first reads", func() bool { return w.Status().Reads["ok"] > 0 })
	h.advance(w, 70*time.Second, 250*time.Millisecond)
	reads := 0
	for _, win := range h.em.ReadWindows() {
		if win.Requests > 3 || win.Throttled > 0 {
			t.Fatalf("read window %s: %d requests, %d throttled; budget 3", win.Start, win.Requests, win.Throttled)
		}
		reads += win.Requests
	}
	if reads < 18 {
		t.Fatalf("%d reads in 70 s at 3 per 10 s: the watcher stalled", reads)
	}
	st := w.Status()
	if !st.Stretched || st.CycleSeconds < 33 || st.CycleSeconds > 34 || st.People != 20 || st.BudgetUsed > 3 {
		t.Fatalf("status %+v: want a stretched cycle of 10 × 10/3 s for 20 people", st)
	}
	if n := len(h.sink.all()); n != 20 {
		t.Fatalf("%d first sightings after two cycles, want 20", n)
	}
}

// TestThrottledReadPauses: a 429 pauses the reads for its Retry-After,
// then they go on.
func TestThrottledReadPauses(t *testing.T) {
	h := newHarness(t, 2, emulator.Throttle{Limit: 1, Window: 30 * time.Second})
	w, _ := h.start(watchAll(), nil)
	testpoll.Until(t, "the first read", func() bool { return w.Status().Reads["ok"] == 1 })
	h.advance(w, 2*time.Second, 500*time.Millisecond)
	st := w.Status()
	if st.Reads["throttled"] != 1 || !st.PausedUntil.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("after a 429: %+v, want one throttled read and a pause until the window ends", st)
	}
	h.advance(w, 27*time.Second, 500*time.Millisecond)
	if st := w.Status(); st.Reads["throttled"] != 1 || st.Reads["ok"] != 1 {
		t.Fatalf("read during the pause: %+v", st.Reads)
	}
	h.advance(w, 2*time.Second, 500*time.Millisecond)
	if st := w.Status(); st.Reads["ok"] != 2 {
		t.Fatalf("no read after the pause: %+v", st.Reads)
	}
}

// TestRestartHandsOverOnlyWhatChanged: a second watcher on the same seen
// bucket (a restart or a takeover) hands over only what changed while
// nobody watched.
func TestRestartHandsOverOnlyWhatChanged(t *testing.T) {
	h := newHarness(t, 3, emulator.Throttle{})
	_, stop := h.start(watchAll(), nil)
	testpoll.Until(t, "everyone seen once", func() bool { return len(h.sink.all()) == 3 })
	stop()
	h.sink = &recorder{}
	if err := h.em.SetTeamsSession(userID(2), "DoNotDisturb", "Presenting"); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	w, _ := h.start(watchAll(), nil)
	testpoll.Until(t, "a read", func() bool { return w.Status().Reads["ok"] >= 1 })
	h.advance(w, 6*time.Second, 500*time.Millisecond)
	got := h.sink.all()
	if len(got) != 1 || got[0].View.ID != userID(2) || got[0].Availability != "DoNotDisturb" || got[0].Previous == nil {
		t.Fatalf("after the restart: %+v, want only user 2's change while down", got)
	}
}

// TestManualStatusThroughWatcher: with watch off the watcher still reads
// the people the bridge holds a session for, every observe interval,
// and records a status set by hand and a session Graph lost; it hands
// over nothing.
func TestManualStatusThroughWatcher(t *testing.T) {
	h := newHarness(t, 3, emulator.Throttle{})
	h.session(0, "pbx")
	watch := watchAll()
	watch.Enabled = false
	w, _ := h.start(watch, func(o *Options) { o.ObserveInterval = time.Second; o.Seen = nil })
	if err := h.em.SetPreferred(userID(0), "DoNotDisturb", "DoNotDisturb", 0); err != nil {
		t.Fatal(err)
	}
	manual := func() *state.ManualStatus {
		st, _, err := h.store.Get(context.Background(), tenant, userID(0))
		if err != nil {
			t.Fatal(err)
		}
		return st.Manual
	}
	for i := 0; manual() == nil; i++ {
		if i == 10 {
			t.Fatal("no manual status recorded after 10 observe intervals")
		}
		h.advance(w, time.Second, 500*time.Millisecond)
	}
	if m := manual(); m.Pair.Availability != "DoNotDisturb" {
		t.Fatalf("manual %+v", m)
	}
	if st := w.Status(); st.People != 1 {
		t.Fatalf("watching %d people with watch off, want the one with a session", st.People)
	}
	if err := h.em.ClearPreferred(userID(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.em.EndSession(userID(0), appID); err != nil {
		t.Fatal(err)
	}
	told := func() *state.Told {
		st, _, _ := h.store.Get(context.Background(), tenant, userID(0))
		return st.Told
	}
	for i := 0; told() != nil; i++ {
		if i == 10 {
			t.Fatal("the lost session is still on record after 10 observe intervals")
		}
		h.advance(w, time.Second, 500*time.Millisecond)
	}
	if n := len(h.sink.all()) + h.sink.seenCount(); n != 0 {
		t.Fatalf("watch off handed over %d changes or sightings", n)
	}
}

// TestLeavingTheGroup: only the group's members are handed over (a
// session holder outside it is read all the same), and a person who
// leaves the group leaves the watch, and their last seen presence goes.
func TestLeavingTheGroup(t *testing.T) {
	h := newHarness(t, 3, emulator.Throttle{})
	group := "11111111-2222-4333-8444-555555555555"
	if err := h.em.SetGroup(tenant, emulator.Group{ID: group, Members: []string{userID(0), userID(1)}}); err != nil {
		t.Fatal(err)
	}
	h.session(2, "pbx") // not in the group: read for its session, not handed over
	watch := watchAll()
	watch.Users = "group:" + group
	w, _ := h.start(watch, nil)
	testpoll.Until(t, "both members seen", func() bool { return len(h.sink.all()) == 2 })
	h.advance(w, 4*time.Second, 500*time.Millisecond)
	if n, st := len(h.sink.all()), w.Status(); n != 2 || st.People != 3 {
		t.Fatalf("%d changes, %d people read; want the 2 members' and the session holder read too", n, st.People)
	}
	if _, err := h.seenKV.Get(context.Background(), seenKey(tenant, userID(1))); err != nil {
		t.Fatalf("no last seen presence of a member: %v", err)
	}
	if err := h.em.SetGroup(tenant, emulator.Group{ID: group, Members: []string{userID(0)}}); err != nil {
		t.Fatal(err)
	}
	w.Reload()
	testpoll.Until(t, "one member left", func() bool { return w.Status().People == 2 })
	if _, err := h.seenKV.Get(context.Background(), seenKey(tenant, userID(1))); err == nil {
		t.Fatal("the last seen presence of someone who left is still kept")
	}
	if gone := h.sink.gone(); !slices.Equal(gone, []string{userID(1)}) {
		t.Fatalf("the sink was told %q left, want only %s (the lookup would keep answering for them)", gone, userID(1))
	}
}

// TestDirectoryWatch: `users: directory` watches the directory's entries
// and anyone the state store holds.
func TestDirectoryWatch(t *testing.T) {
	h := newHarness(t, 4, emulator.Throttle{})
	h.session(3, "pbx")
	watch := watchAll()
	watch.Users = "directory"
	w, _ := h.start(watch, func(o *Options) {
		o.DirectoryUsers = func() []string { return []string{upn(0), userID(1)} }
		o.Directory = resolver{upn(0): userID(0), userID(1): userID(1)}
	})
	testpoll.Until(t, "three people seen", func() bool { return len(h.sink.all()) == 3 })
	if st := w.Status(); st.People != 3 {
		t.Fatalf("watching %d, want the two directory entries and the one the state names", st.People)
	}
	if c := of(h.sink.all(), userID(0)); len(c) != 1 || c[0].User != upn(0) {
		t.Fatalf("directory entry seen as %+v", c)
	}
}

// resolver is a directory as a map.
type resolver map[string]string

func (r resolver) Resolve(_ context.Context, _, user string) (string, error) {
	if id, ok := r[user]; ok {
		return id, nil
	}
	return "", context.Canceled
}

// TestOlderSequenceChangesNothing: a presence whose sequenceNumber is not
// newer than the last seen changes nothing, whatever its pair.
func TestOlderSequenceChangesNothing(t *testing.T) {
	h := newHarness(t, 1, emulator.Throttle{})
	w, err := New(Options{Tenant: tenant, Watch: watchAll(), Graph: h.graph, State: h.store, Seen: h.seenKV, Sink: h.sink,
		Hold: func(context.Context, string, func(context.Context) error) {}, Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	id := userID(0)
	for _, tt := range []struct {
		seq, availability string
		changes           int
	}{
		{"0000000010", "Busy", 1},
		{"0000000009", "Available", 1}, // older
		{"0000000010", "Away", 1},      // the same
		{"0000000011", "Busy", 1},      // newer, the same pair
		{"0000000012", "Available", 2},
		{"000000013", "Away", 2}, // shorter: older
	} {
		w.saw(context.Background(), id, graphclient.Presence{ID: id, Availability: tt.availability, Activity: tt.availability, SequenceNumber: tt.seq}, session{}, false, t0)
		if n := len(h.sink.all()); n != tt.changes {
			t.Fatalf("after %s %s: %d changes, want %d", tt.seq, tt.availability, n, tt.changes)
		}
	}
}

// TestUsersOwnStatusMessageThroughWatcher: with status messages on, a
// status message the user wrote is recorded from the watcher's reads, so
// that the writer leaves it alone.
func TestUsersOwnStatusMessageThroughWatcher(t *testing.T) {
	h := newHarness(t, 1, emulator.Throttle{})
	h.session(0, "pbx")
	if err := h.em.SetStatusMessage(userID(0), "Back at 3", time.Time{}); err != nil {
		t.Fatal(err)
	}
	w, _ := h.start(watchAll(), func(o *Options) { o.Observe.StatusMessages = true })
	for i := 0; ; i++ {
		st, _, err := h.store.Get(context.Background(), tenant, userID(0))
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != nil && st.Status.UserText == "Back at 3" {
			break
		}
		if i == 10 {
			t.Fatalf("the user's own message is not on record: %+v", st.Status)
		}
		h.advance(w, 2*time.Second, 500*time.Millisecond)
	}
}

// TestStatusMessageSetDuringARead: the writer records the status
// message it set while a read, answered before the set, is in flight.
// The read is compared with the session as it was when it began, so it
// does not take the message for one that expired and wipe the record
// (which made the writer set the message twice).
func TestStatusMessageSetDuringARead(t *testing.T) {
	h := newHarness(t, 1, emulator.Throttle{})
	h.session(0, "pbx")
	ours := &state.StatusMessage{Text: "On a call", At: t0, Expires: t0.Add(time.Hour)}
	var answered atomic.Int32
	graph := graphFuncs{presences: func(ctx context.Context, ids []string) ([]graphclient.Presence, error) {
		got, err := h.graph.GetPresencesByUserID(ctx, ids)
		if err == nil && answered.Load() == 0 {
			// Graph answered without a message; the writer sets it now.
			if err := h.em.SetStatusMessage(userID(0), ours.Text, ours.Expires); err != nil {
				t.Error(err)
			}
			if _, _, err := h.store.Update(ctx, tenant, userID(0), func(s *state.UserState) bool {
				s.Status = ours
				return true
			}); err != nil {
				t.Error(err)
			}
		}
		answered.Add(1)
		return got, err
	}}
	stream, err := h.js.Stream(context.Background(), "KV_"+h.store.KV().Bucket())
	if err != nil {
		t.Fatal(err)
	}
	watch := watchAll()
	watch.Enabled = false
	w, _ := h.start(watch, func(o *Options) {
		o.Graph, o.ObserveInterval, o.Seen, o.StateStream = graph, time.Second, nil, stream
		o.Observe.StatusMessages = true
	})
	for answered.Load() < 2 {
		h.advance(w, time.Second, 500*time.Millisecond)
	}
	st, _, err := h.store.Get(context.Background(), tenant, userID(0))
	if err != nil {
		t.Fatal(err)
	}
	if st.Status == nil || st.Status.Text != ours.Text {
		t.Fatalf("status message on record %+v after the reads, want the writer's %q kept", st.Status, ours.Text)
	}
}

// TestTakeoverThroughTheLease: two watchers compete for the tenant's
// lease; only the holder reads, and the one that takes over when it
// stops hands over no repeats.
func TestTakeoverThroughTheLease(t *testing.T) {
	h := newHarness(t, 3, emulator.Throttle{})
	kv, err := lease.Open(context.Background(), h.js, 2*time.Second, 1)
	if err != nil {
		t.Fatal(err)
	}
	holdAs := func(instance string) func(*Options) {
		return func(o *Options) {
			o.Hold = func(ctx context.Context, key string, work func(context.Context) error) {
				lease.New(kv, key, instance, 2*time.Second, nil, nil).Hold(ctx, work)
			}
		}
	}
	a, stopA := h.start(watchAll(), holdAs("a"))
	testpoll.Until(t, "everyone seen once", func() bool { return len(h.sink.all()) == 3 })
	b, _ := h.start(watchAll(), holdAs("b"))
	h.advance(a, 4*time.Second, 500*time.Millisecond)
	if !a.Status().Holding || b.Status().Holding || b.Status().Reads["ok"] > 0 {
		t.Fatalf("a holds %v, b holds %v and read %d times: want only the holder to read", a.Status().Holding, b.Status().Holding, b.Status().Reads["ok"])
	}
	other, stop := b, stopA
	stop()
	testpoll.Until(t, "the other watcher takes over and reads", func() bool {
		return other.Status().Holding && other.Status().Reads["ok"] > 0
	})
	h.advance(other, 6*time.Second, 500*time.Millisecond)
	if n := len(h.sink.all()); n != 3 {
		t.Fatalf("%d changes after the takeover, want the 3 first sightings only", n)
	}
}

// TestCycleKeepsItsPace: eight requests planned 125 ms apart (one id
// each, interval 1 s) make a cycle of 1 s on the fake clock, looked at
// every 50 ms: each read is planned from the previous one's due time, so
// the tick does not round 125 ms up to 150 ms (a cycle of 1.2 s).
func TestCycleKeepsItsPace(t *testing.T) {
	h := newHarness(t, 8, emulator.Throttle{})
	watch := watchAll()
	watch.Interval = time.Second
	w, _ := h.start(watch, func(o *Options) { o.ChunkSize = 1 })
	testpoll.Until(t, "the first read", func() bool { return w.Status().Reads["ok"] == 1 })
	h.advance(w, 3*time.Second, 50*time.Millisecond)
	st := w.Status()
	if st.CycleSeconds != 1 || st.LastCycleSeconds != 1 {
		t.Fatalf("planned cycle %.3f s, last cycle %.3f s; want 8 × 125 ms = 1 s", st.CycleSeconds, st.LastCycleSeconds)
	}
	if n := st.Reads["ok"]; n != 25 {
		t.Fatalf("%d reads in 3 s at one per 125 ms, want 25 (one every 150 ms would be 21)", n)
	}
}

// TestLateReadsAreMadeUp: when the watcher looks at its clock late (a
// slow answer, a busy machine), the reads that fell due meanwhile are made
// at once, and the cycle still takes its 1 s; after a long pause nothing
// is made up in a burst.
func TestLateReadsAreMadeUp(t *testing.T) {
	h := newHarness(t, 8, emulator.Throttle{})
	watch := watchAll()
	watch.Interval = time.Second
	w, _ := h.start(watch, func(o *Options) { o.ChunkSize = 1 })
	testpoll.Until(t, "the first read", func() bool { return w.Status().Reads["ok"] == 1 })
	h.advance(w, 300*time.Millisecond, 300*time.Millisecond) // reads due at 125 and 250 ms
	if n := w.Status().Reads["ok"]; n != 3 {
		t.Fatalf("%d reads after a look 300 ms late, want 3", n)
	}
	h.advance(w, 700*time.Millisecond, 50*time.Millisecond)
	if st := w.Status(); st.Reads["ok"] != 9 || st.LastCycleSeconds != 1 {
		t.Fatalf("reads %d, last cycle %.3f s; want 9 reads and a cycle of 1 s", st.Reads["ok"], st.LastCycleSeconds)
	}
	h.advance(w, time.Minute, time.Minute) // a minute without a look
	if n := w.Status().Reads["ok"]; n != 10 {
		t.Fatalf("%d reads after a minute without a look, want 10 (no burst)", n)
	}
}

// TestCallUnderWayIsTheBridges: Graph may show the bridge's call before
// the writer has recorded that Graph took it; the intent it recorded
// before calling explains the pair, so the change has origin bridge and
// is not echoed to the source that made it.
func TestCallUnderWayIsTheBridges(t *testing.T) {
	h := newHarness(t, 1, emulator.Throttle{})
	h.intent(0, "pbx")
	h.start(watchAll(), nil)
	testpoll.Until(t, "the person seen", func() bool { return len(h.sink.all()) == 1 })
	if c := h.sink.all()[0]; c.Origin != outputs.OriginBridge || !slices.Equal(c.Sources, []string{"pbx"}) {
		t.Fatalf("a call under way was seen as %+v, want origin bridge from pbx", c)
	}
}

// TestReadWaitsForTheStatesBeforeIt: when the watch of user states lags
// behind Graph, a read's origins are judged only once the states written
// before the read are in, so a bridge call is not taken for a Teams one.
func TestReadWaitsForTheStatesBeforeIt(t *testing.T) {
	h := newHarness(t, 1, emulator.Throttle{})
	gate := &gatedKV{KeyValue: h.store.KV(), open: make(chan struct{})}
	stream, err := h.js.Stream(context.Background(), "KV_"+h.store.KV().Bucket())
	if err != nil {
		t.Fatal(err)
	}
	w, _ := h.start(watchAll(), func(o *Options) { o.State, o.StateStream = h.store.WithKV(gate), stream })
	testpoll.Until(t, "the person seen", func() bool { return len(h.sink.all()) == 1 })
	gate.hold.Store(true)
	h.intent(0, "pbx")
	reads := h.reads()
	h.clock.Advance(2 * time.Second)
	testpoll.Until(t, "a read while the states are held back", func() bool { return h.reads() > reads })
	close(gate.open)
	h.settle(w)
	changes := h.sink.all()
	if len(changes) != 2 || changes[1].Origin != outputs.OriginBridge {
		t.Fatalf("the bridge's call read before its state arrived was published as %+v, want origin bridge", changes[1:])
	}
}

// graphFuncs is a Graph of functions: presences answers reads, users is
// every tenant's list of members.
type graphFuncs struct {
	presences func(ctx context.Context, ids []string) ([]graphclient.Presence, error)
	users     []graphclient.User
}

func (g graphFuncs) GetPresencesByUserID(ctx context.Context, ids []string) ([]graphclient.Presence, error) {
	return g.presences(ctx, ids)
}
func (g graphFuncs) ListUsers(context.Context) ([]graphclient.User, error) { return g.users, nil }
func (g graphFuncs) ListGroupMembers(context.Context, string) ([]graphclient.User, error) {
	return nil, nil
}

// TestReadsInFlightAreBounded: five tenants' watchers sharing a bound of
// two make their first reads two at a time; the other three wait for a
// slot, and read once one is freed.
func TestReadsInFlightAreBounded(t *testing.T) {
	h := newHarness(t, 0, emulator.Throttle{})
	const tenants, bound = 5, 2
	reads := NewReads(bound)
	var mu sync.Mutex
	inFlight, most, entered := 0, 0, 0
	release := make(chan struct{})
	g := graphFuncs{
		users: []graphclient.User{{ID: userID(1)}, {ID: userID(2)}},
		presences: func(ctx context.Context, ids []string) ([]graphclient.Presence, error) {
			mu.Lock()
			inFlight++
			entered++
			most = max(most, inFlight)
			mu.Unlock()
			defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return []graphclient.Presence{{ID: ids[0], Availability: "Available", Activity: "Available", SequenceNumber: "1"}}, nil
		},
	}
	var watchers []*Watcher
	for i := range tenants {
		w, _ := h.start(watchAll(), func(o *Options) {
			o.Tenant, o.Graph, o.Reads = fmt.Sprintf("t%d.example", i), g, reads
		})
		watchers = append(watchers, w)
	}
	counts := func() (int, int, int) {
		mu.Lock()
		defer mu.Unlock()
		return inFlight, entered, most
	}
	testpoll.Until(t, "every watcher reads or waits for a slot", func() bool {
		_, n, _ := counts()
		return n+int(reads.waiting.Load()) == tenants
	})
	if in, _, m := counts(); in != bound || m != bound {
		t.Fatalf("%d reads in flight (at most %d), want %d: the bound does not hold", in, m, bound)
	}
	for range tenants {
		release <- struct{}{}
	}
	testpoll.Until(t, "every watcher's first read", func() bool {
		n := 0
		for _, w := range watchers {
			n += int(w.Status().Reads["ok"])
		}
		return n == tenants
	})
	if _, n, m := counts(); n != tenants || m != bound {
		t.Fatalf("%d reads, at most %d in flight; want %d and %d", n, m, tenants, bound)
	}
}

// TestOneRecordPerPerson: once read, a person's last seen presence is
// the lookup's view alone (the watcher keeps no copy, not even of those
// it loaded from the seen bucket), and it is what the next read is
// compared with; the table of pairs the loaded share stays bounded
// whatever Graph sends.
func TestOneRecordPerPerson(t *testing.T) {
	h := newHarness(t, 0, emulator.Throttle{})
	views := lookup.NewViews(lookup.Options{})
	w, err := New(Options{Tenant: tenant, Watch: watchAll(), Graph: h.graph, State: h.store, Seen: h.seenKV, Sink: h.sink, Views: views,
		Hold: func(context.Context, string, func(context.Context) error) {}, Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	w.listed = []string{userID(1), userID(2)}
	// userID(1) as a takeover loads them: last seen Busy/InACall at 5.
	w.loaded = map[string]last{userID(1): {pair: w.pair(*inACall), seq: "5", since: t0}}
	for _, i := range []int{1, 2} {
		w.saw(context.Background(), userID(i), graphclient.Presence{ID: userID(i), Availability: "Busy", Activity: "InACall", SequenceNumber: "5"}, session{}, false, t0)
	}
	if len(w.loaded) != 0 {
		t.Fatalf("the watcher still holds %d people of its own after reading them", len(w.loaded))
	}
	if n := views.Len(); n != 2 {
		t.Fatalf("the views hold %d people, want 2", n)
	}
	if got := h.sink.all(); len(got) != 1 || got[0].View.ID != userID(2) {
		t.Fatalf("changes %+v, want userID(2)'s first sighting alone (userID(1) was loaded in the same pair)", got)
	}
	// The next read is compared with the view: the same sequence changes
	// nothing, a newer one with another pair is a change from Busy.
	w.saw(context.Background(), userID(2), graphclient.Presence{ID: userID(2), Availability: "Away", Activity: "Away", SequenceNumber: "5"}, session{}, false, t0)
	w.saw(context.Background(), userID(1), graphclient.Presence{ID: userID(1), Availability: "Away", Activity: "Away", SequenceNumber: "6"}, session{}, false, t0)
	got := h.sink.all()
	if len(got) != 2 || got[1].View.ID != userID(1) || got[1].Previous == nil || got[1].Previous.Availability != "Busy" {
		t.Fatalf("changes %+v, want a second one: userID(1) Away after Busy", got)
	}
	if l, ok := views.Last(tenant, userID(1)); !ok || l.Pair.Availability != "Away" || l.Sequence != "6" {
		t.Fatalf("the view of userID(1) is %+v, want Away at 6", l)
	}
	for i := range 3 * maxPairs {
		w.pair(adapters.Pair{Availability: fmt.Sprintf("Odd%d", i), Activity: "Odd"})
	}
	if n := len(w.pairs); n != maxPairs {
		t.Fatalf("%d shared pairs, want at most %d", n, maxPairs)
	}
}

// TestWatchOffHoldsOnlySessionHolders (issue 23): with the watch off the
// watcher keeps nothing of the people whose states carry no session, however
// many the store holds, and forgets a session holder whose state is
// deleted.
func TestWatchOffHoldsOnlySessionHolders(t *testing.T) {
	const idle = 50
	h := newHarness(t, idle+1, emulator.Throttle{})
	ctx := context.Background()
	for i := 1; i <= idle; i++ {
		for _, s := range []string{adapters.CallActive, adapters.CallEnded} {
			ev := adapters.Event{ID: "c1-" + s, Source: "pbx", Type: "call", CallID: "c1", State: s, OccurredAt: h.clock.Now()}
			if err := h.store.Apply(ctx, tenant, userID(i), ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.session(0, "pbx")
	watch := watchAll()
	watch.Enabled = false
	w, stop := h.start(watch, func(o *Options) { o.ObserveInterval = time.Second; o.Seen = nil })
	for i := 0; h.reads() == 0 || w.Status().People != 1; i++ {
		if i == 10 {
			t.Fatalf("after 10 observe intervals: %d reads, %d people read, want the session holder", h.reads(), w.Status().People)
		}
		h.advance(w, time.Second, 500*time.Millisecond)
	}
	if err := h.store.KV().Delete(ctx, state.UserKey(tenant, userID(0))); err != nil {
		t.Fatal(err)
	}
	for i := 0; w.Status().People != 0; i++ {
		if i == 10 {
			t.Fatal("the session holder whose state was deleted is still read after 10 observe intervals")
		}
		h.advance(w, time.Second, 500*time.Millisecond)
	}
	stop()
	if w.named.Len() != 0 || w.sessions.Len() != 0 {
		t.Fatalf("with the watch off the watcher holds %d named people and %d sessions, want none", w.named.Len(), w.sessions.Len())
	}
}

// TestStartReadsStoredStatesInBatches (issue 23): a watcher that starts
// takes the states stored before it from the store's batched read, not
// from its watch of the bucket (which pushes everything at once), and
// follows what comes after through the watch.
func TestStartReadsStoredStatesInBatches(t *testing.T) {
	const holders = 3
	h := newHarness(t, holders+1, emulator.Throttle{})
	for i := range holders {
		h.session(i, "pbx")
	}
	gate := &gatedKV{KeyValue: h.store.KV()}
	h.store = h.store.WithKV(gate)
	watch := watchAll()
	watch.Enabled = false
	w, _ := h.start(watch, func(o *Options) { o.ObserveInterval = time.Second; o.Seen = nil })
	for i := 0; w.Status().People != holders; i++ {
		if i == 10 {
			t.Fatalf("after 10 observe intervals %d people are read, want the %d session holders", w.Status().People, holders)
		}
		h.advance(w, time.Second, 500*time.Millisecond)
	}
	if n := gate.passed.Load(); n != 0 {
		t.Fatalf("the watch passed on %d stored states, want none", n)
	}
	h.session(holders, "pbx")
	for i := 0; w.Status().People != holders+1; i++ {
		if i == 10 {
			t.Fatalf("a session written after the start is not read after 10 observe intervals (%d people)", w.Status().People)
		}
		h.advance(w, time.Second, 500*time.Millisecond)
	}
	if gate.passed.Load() == 0 {
		t.Fatal("the session written after the start did not come through the watch")
	}
}
