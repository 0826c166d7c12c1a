package writer

import (
	"container/heap"
	"context"
	"log/slog"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/internal/guid"
)

// An idle user with a time of its own (idleUser.wakeAt: a session's
// refresh, the end of a call) waits in the writer's wakes, earliest
// first. When its time comes the writer reads its state back from the
// store, in the background and a batch at a time (loadDue), and takes it
// in as the watch would have brought it (takeLoaded); the user is then
// tracked until it is idle again. An entry whose user has woken since,
// or waits for another time, is stale and skipped.

// loadBatch is the most idle users' states read back at once.
const loadBatch = 256

// loadRetry is how long a user whose state could not be read waits
// before the writer reads it again.
const loadRetry = 5 * time.Second

// loadTimeout bounds the reading of one batch: with NATS away, the rest
// of a batch fails at once and is read again loadRetry later, instead of
// each state waiting its own timeout.
const loadTimeout = 10 * time.Second

// loaded is an idle user's state read back from the store: rev 0 when
// its key is gone or could not be read (err), err with a revision when
// the state read does not decode (state.Store.Get).
type loaded struct {
	id  string // idleID
	st  state.UserState
	rev uint64
	err error
}

// loadDue starts reading the states of the idle users whose time has come
// at now, unless a read is under way (the next one starts once it is
// back).
func (w *writer) loadDue(ctx context.Context, now time.Time) {
	if w.loading {
		return
	}
	var ids []string
	for len(ids) < loadBatch {
		id, ok := w.wakes.due(now.UnixNano(), func(id string, at int64) bool {
			u, ok := w.idle.Get(id)
			return ok && u.wakeAt == at
		})
		if !ok {
			break
		}
		u, _ := w.idle.Get(id)
		u.wakeAt = 0 // being read
		w.idle.Put(id, u)
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return
	}
	w.loading = true
	w.background.Add(1)
	go func() {
		defer w.background.Done()
		readCtx, cancel := context.WithTimeout(ctx, loadTimeout)
		defer cancel()
		batch := make([]loaded, 0, len(ids))
		for _, id := range ids {
			st, rev, err := w.e.store.Get(readCtx, w.tenant.ID, id)
			batch = append(batch, loaded{id: id, st: st, rev: rev, err: err})
		}
		select {
		case w.loads <- batch:
		case <-ctx.Done():
		}
	}()
}

// takeLoaded takes in the states read back for idle users. A user woken
// by the watch meanwhile, or dropped, is left as it is; one whose state
// could not be read, or was read older than the one it went idle with (a
// replica behind), is read again later; one whose key is gone waits for
// the watch to bring the deletion; one whose state does not decode is
// logged and left idle until a newer state comes, as the watch leaves it.
func (w *writer) takeLoaded(batch []loaded) {
	now := w.e.opts.Clock.Now()
	for _, l := range batch {
		u, ok := w.idle.Get(l.id)
		if !ok || u.wakeAt != 0 {
			continue
		}
		switch {
		case l.rev == 0 && l.err == nil:
		case l.err != nil && l.rev != 0:
			w.log.Error("undecodable user state", "user", l.id, "err", l.err)
		case l.err != nil || l.rev < u.rev:
			if l.err != nil {
				w.throttle.Log(context.Background(), w.log, slog.LevelWarn, "read idle state", "could not read an idle user's state; will read it again",
					"user", l.id, "err", l.err)
			}
			u.wakeAt = now.Add(loadRetry).UnixNano()
			w.idle.Put(l.id, u)
			w.wakes.push(l.id, u.wakeAt)
		default:
			userID := l.st.UserID
			if userID == "" || idleID(userID) != l.id {
				userID = l.id
				l.st.UserID = l.id
			}
			t := w.wake(userID)
			w.keys[state.UserKey(w.tenant.ID, userID)] = userID
			w.setState(t, l.st, l.rev)
			w.settleWaits(t, !w.caughtUp)
			w.evaluate(userID, now)
		}
	}
}

// wakeEntry is an idle user's time in the wakes: a GUID id in 16 bytes
// (as guid.Map keeps it), any other in other.
type wakeEntry struct {
	at    int64
	guid  guid.GUID
	other string
}

func (e wakeEntry) id() string {
	if e.other != "" {
		return e.other
	}
	return e.guid.String()
}

// wakeHeap is a min-heap of wake entries by time (container/heap).
type wakeHeap []wakeEntry

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(wakeEntry)) }
func (h *wakeHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// push adds id's time at (Unix nanoseconds).
func (h *wakeHeap) push(id string, at int64) {
	e := wakeEntry{at: at}
	if g, ok := guid.Parse(id); ok {
		e.guid = g
	} else {
		e.other = id
	}
	heap.Push(h, e)
}

// due takes off and returns the next id whose time is at or before now
// and still current; false when none is.
func (h *wakeHeap) due(now int64, current func(id string, at int64) bool) (string, bool) {
	for len(*h) > 0 && (*h)[0].at <= now {
		e := heap.Pop(h).(wakeEntry)
		if id := e.id(); current(id, e.at) {
			return id, true
		}
	}
	return "", false
}

// pruneWakes drops the stale wakes once they outnumber the idle users by
// more than compactFloor: the heap is rebuilt from the idle users' times.
func (w *writer) pruneWakes() {
	if len(w.wakes) <= 2*w.idle.Len()+compactFloor {
		return
	}
	h := make(wakeHeap, 0)
	w.idle.Update(func(id func() string, u idleUser) idleUser {
		if u.wakeAt != 0 {
			h.push(id(), u.wakeAt) // heap.Push keeps the order as it goes
		}
		return u
	})
	w.wakes = h
}
