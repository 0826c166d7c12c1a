package writer

import (
	"encoding/hex"
	"strings"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// An idle user is one the writer has nothing to do for until a time of
// its own, if any: no call pending, refused or in flight, no manual
// status or status message on record, no retry waiting. Its state lives
// in the KV bucket alone; the writer keeps an idleUser, a few bytes under
// the user's id as its key names it (idleID; a GUID in 16 bytes:
// guid.Map), instead of the decoded state (rest), and nothing else: no
// entry in the index of keys, no timer. Most idle users have no session
// in Graph; one in a call whose session Graph holds is idle too between
// its session's refreshes (issue 23: a person in a call costs what Graph
// was told, in the bucket, and one deadline, here).
//
// A newer state from the watch wakes an idle user (take). So does its
// time (wakeAt: a session's refresh, the end of a claim): the writer then
// reads the state back from the store (wake.go). Once a user without a
// session has come to the end of its key, a sweep of the idle users
// (sweepIdle), at most once a minute, deletes its key without reading it
// back (forgetIdle): the delete is conditional on the revision, so a
// state changed since is kept.
//
// A writer that starts (a restart, a new lease) reads every state once,
// a batch at a time, and keeps only this of each idle user, so that a
// tenant of idle people costs the writer about 50 bytes a person.

// idleSweepEvery is how often, at most, the idle users are swept for
// keys whose end has come; a key goes at most this late.
const idleSweepEvery = time.Minute

// idleUser is what the writer keeps of an idle user.
type idleUser struct {
	// rev is the KV revision of the state the user went idle with.
	rev uint64
	// settled is the newest acceptance (Unix nanoseconds) of the events
	// waiting in that state, all of which were settled (latency.go).
	settled int64
	// forgetAt is when the user's key may go (Unix nanoseconds), 0 when
	// not while it is idle.
	forgetAt int64
	// wakeAt is when the user must be evaluated again (Unix nanoseconds),
	// 0 when never while it is idle, or while its state is being read.
	wakeAt int64
	// session: Graph holds an app session for the user (sessionCount
	// counts it while the user is idle too).
	session bool
}

// idleID is the key of a user in the writer's idle users: the user id as
// its KV key encodes it (lowercase), so that a key found in the watch
// names it without an index of keys.
func idleID(userID string) string { return strings.ToLower(userID) }

// keyUser returns the idle id that a KV key of a user names (idleID).
func keyUser(key string) (string, bool) {
	raw, err := hex.DecodeString(key[strings.LastIndexByte(key, '.')+1:])
	return string(raw), err == nil
}

// rest makes t's user idle if nothing is under way for it, and reports
// whether it did; its key may go at forgetAt, and it is evaluated again
// at wakeAt (neither when zero). The caller has found that no call is
// needed now.
func (w *writer) rest(t *tracked, userID string, now, forgetAt, wakeAt time.Time) bool {
	st := &t.state
	if t.inFlight || t.dirty || t.forgetting || t.failures > 0 || t.retryAt.After(now) ||
		st.Pending != nil || st.Failed != nil || st.Manual != nil || st.Status != nil {
		return false
	}
	u := idleUser{rev: t.rev, session: hasSession(*st)}
	for _, wt := range st.Waiting {
		if !t.settled[waitKey(wt)] && !t.settledBefore(wt) {
			return false
		}
		u.settled = max(u.settled, wt.Accepted.UnixNano())
	}
	if !forgetAt.IsZero() {
		u.forgetAt = forgetAt.UnixNano()
		if w.sweepAt.IsZero() || forgetAt.Before(w.sweepAt) {
			w.sweepAt = later(forgetAt, w.sweptAt.Add(idleSweepEvery))
		}
	}
	id := idleID(userID)
	if !wakeAt.IsZero() {
		u.wakeAt = wakeAt.UnixNano()
		w.wakes.push(id, u.wakeAt)
	}
	delete(w.users, userID)
	delete(w.keys, state.UserKey(w.tenant.ID, userID))
	w.timers.clear(userID)
	w.idle.Put(id, u)
	return true
}

// wake turns an idle user back into a tracked one, its waiting events up
// to the ones it went idle with settled; nil when the user was not idle.
func (w *writer) wake(userID string) *tracked {
	id := idleID(userID)
	u, ok := w.idle.Get(id)
	if !ok {
		return nil
	}
	w.idle.Delete(id)
	if u.session {
		w.sessions.change(true, false) // counted again as its state is set
	}
	t := &tracked{rev: u.rev}
	w.users[userID] = t
	t.settledUpTo = u.settled
	return t
}

// settledBefore reports whether wt was settled before its user went
// idle.
func (t *tracked) settledBefore(wt state.Waiting) bool {
	return t.settledUpTo != 0 && wt.Accepted.UnixNano() <= t.settledUpTo
}

// sweepIdle deletes the keys of the idle users whose end has come, when
// a sweep is due, and sets when the next one is.
func (w *writer) sweepIdle(now time.Time) {
	if w.sweepAt.IsZero() || now.Before(w.sweepAt) {
		return
	}
	w.sweepAt, w.sweptAt = time.Time{}, now
	var next int64
	w.idle.Update(func(id func() string, u idleUser) idleUser {
		switch {
		case u.forgetAt == 0:
		case u.forgetAt <= now.UnixNano():
			w.forgetIdle(id(), u)
			u.forgetAt = 0 // once; a newer state wakes the user, a deletion drops it
		case next == 0 || u.forgetAt < next:
			next = u.forgetAt
		}
		return u
	})
	if next != 0 {
		w.sweepAt = later(time.Unix(0, next), now.Add(idleSweepEvery))
	}
}

// forgetIdle deletes an idle user's key once nothing in it matters.
func (w *writer) forgetIdle(id string, u idleUser) {
	w.deleteKey(id, u.rev)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
