package writer

import (
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// An idle user is one with nothing under way: no session in Graph, no
// call pending, refused or in flight, no manual status or status message
// on record, no retry waiting and nothing due but, perhaps, the end of
// its key (emptyAt). Its state lives in the KV bucket alone; the writer
// keeps an idleUser, a few bytes, instead of the decoded state (rest).
// A newer state from the watch wakes it (take), and its one timer
// deletes its key without reading it back (forgetIdle): the delete is
// conditional on the revision, so a state changed since is kept.

// idleUser is what the writer keeps of an idle user.
type idleUser struct {
	// rev is the KV revision of the state the user went idle with.
	rev uint64
	// settled is the newest acceptance (Unix nanoseconds) of the events
	// waiting in that state, all of which were settled (latency.go).
	settled int64
}

// rest makes t's user idle if nothing is under way for it, and reports
// whether it did. The caller has found that no call is needed and
// nothing is due.
func (w *writer) rest(t *tracked, userID string, now time.Time) bool {
	st := &t.state
	if t.inFlight || t.dirty || t.forgetting || t.failures > 0 || t.retryAt.After(now) ||
		hasSession(*st) || st.Pending != nil || st.Failed != nil || st.Manual != nil || st.Status != nil {
		return false
	}
	u := idleUser{rev: t.rev}
	for _, wt := range st.Waiting {
		if !t.settled[waitKey(wt)] && !t.settledBefore(wt) {
			return false
		}
		u.settled = max(u.settled, wt.Accepted.UnixNano())
	}
	delete(w.users, userID)
	w.idle[userID] = u
	return true
}

// wake turns an idle user back into a tracked one, its waiting events up
// to the ones it went idle with settled; nil when the user was not idle.
func (w *writer) wake(userID string) *tracked {
	u, ok := w.idle[userID]
	if !ok {
		return nil
	}
	delete(w.idle, userID)
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

// forgetIdle deletes an idle user's key once nothing in it matters.
func (w *writer) forgetIdle(userID string, u idleUser) {
	w.deleteKey(userID, u.rev)
}
