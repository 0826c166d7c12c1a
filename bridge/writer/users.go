package writer

import (
	"encoding/json"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// The writer follows its tenant's users' states through a KV watch:
// each entry is taken in (takeEntry, take) or, deleted, dropped.

// takeEntry takes in one watched entry: a deleted user is dropped, a
// state at a revision the writer already holds (its own write) is not
// decoded again, and neither is one older than the store in this process
// wrote or read since (the newer one is on its way); any other is taken
// in, decoded unless the store just wrote or read it.
func (w *writer) takeEntry(entry jetstream.KeyValueEntry) {
	if entry.Operation() != jetstream.KeyValuePut {
		w.drop(entry.Key())
		return
	}
	if id, ok := w.keys[entry.Key()]; ok {
		if t := w.users[id]; t != nil && entry.Revision() <= t.rev {
			return
		}
	} else if id, ok := keyUser(entry.Key()); ok {
		if u, ok := w.idle.Get(id); ok && entry.Revision() <= u.rev {
			return
		}
	}
	st, remembered, ok := w.e.store.Recent(entry.Key(), entry.Revision(), entry.Value())
	if !ok {
		if remembered > entry.Revision() {
			return // a newer state of the user is on its way
		}
		if err := json.Unmarshal(entry.Value(), &st); err != nil {
			w.log.Error("undecodable user state", "key", entry.Key(), "err", err)
			return
		}
	}
	w.keys[strings.Clone(entry.Key())] = st.UserID // not the message's subject, which holds the key
	w.take(st, entry.Revision())
	if w.users[st.UserID] == nil {
		delete(w.keys, entry.Key()) // idle, or an older state of an idle user
	}
}

// take takes in a version of a user's state; an older one than the
// writer holds (its own record of a call, arriving after a newer event)
// is ignored.
func (w *writer) take(st state.UserState, rev uint64) {
	t := w.users[st.UserID]
	if t == nil {
		if u, ok := w.idle.Get(idleID(st.UserID)); ok && rev <= u.rev {
			return // an idle user's older state
		}
		t = w.wake(st.UserID)
	}
	if t == nil {
		t = &tracked{}
		w.users[st.UserID] = t
		w.known.Add(1)
	}
	if rev <= t.rev {
		return
	}
	w.setState(t, st, rev)
	w.settleWaits(t, !w.caughtUp)
	if t.inFlight {
		t.dirty = true
		return
	}
	w.evaluate(st.UserID, w.e.opts.Clock.Now())
}

// setState records a user's newer state and keeps the counts of live
// sessions and manual statuses.
func (w *writer) setState(t *tracked, st state.UserState, rev uint64) {
	w.countManual(&t.state, &st)
	had := hasSession(t.state)
	t.state, t.rev, t.forgetting = st, rev, false
	if w.sessions.change(had, hasSession(st)) {
		w.log.Warn("more live sessions than the budget can keep alive; sessions will lapse while changes wait",
			"sessions", w.sessions.live, "session_capacity", w.sessions.capacity)
	}
}

// drop forgets a user whose key was deleted.
func (w *writer) drop(key string) {
	userID, ok := w.keys[key]
	if !ok {
		if id, ok := keyUser(key); ok {
			if u, ok := w.idle.Get(id); ok {
				w.idle.Delete(id)
				w.sessions.change(u.session, false)
				w.known.Add(-1)
			}
		}
		return
	}
	delete(w.keys, key)
	if t := w.users[userID]; t != nil && !t.inFlight {
		w.sessions.change(hasSession(t.state), false)
		w.countManual(&t.state, nil)
		delete(w.users, userID)
		w.known.Add(-1)
	}
}
