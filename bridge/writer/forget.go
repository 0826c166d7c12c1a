package writer

import (
	"context"
	"maps"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// A user whose state holds nothing worth remembering is forgotten: its
// key leaves the state bucket (forget) once its claims are past the keep
// window (emptyAt).

// forget deletes the key of a user with nothing left to remember, unless
// the key changed meanwhile (a new event wins); the watcher then reports
// the deletion and the writer drops the user.
func (w *writer) forget(t *tracked, userID string) {
	t.forgetting = true
	w.deleteKey(userID, t.rev)
}

// deleteKey deletes the key of userID if it is still at revision rev, in
// the background.
func (w *writer) deleteKey(userID string, rev uint64) {
	w.background.Add(1)
	go func() {
		defer w.background.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := w.e.store.Forget(ctx, w.tenant.ID, userID, rev); err != nil {
			w.log.Warn("delete empty user state", "user", userID, "err", err)
		}
	}()
}

// emptyAt returns when st, with no session and nothing under way, will
// hold nothing once pruned (so that its key can go), and false when it
// holds a session, a pending call, a refusal, a manual status or a status
// message the writer set, or when its claims outlive any horizon worth a
// timer.
func emptyAt(st state.UserState, now time.Time, r state.Rules) (time.Time, bool) {
	if hasSession(st) || st.Pending != nil || st.Failed != nil || st.Manual != nil || (st.Status != nil && st.Status.Text != "") {
		return time.Time{}, false
	}
	if prunedEmpty(st, r, now) {
		return now, true
	}
	hi := now.Add(2*state.KeepClaims + r.MaxCallDuration + time.Minute)
	if !prunedEmpty(st, r, hi) {
		return time.Time{}, false
	}
	lo := now // not empty at lo, empty at hi; Prune only removes more later
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if prunedEmpty(st, r, mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, true
}

// prunedEmpty reports whether Prune leaves st without claims at at.
func prunedEmpty(st state.UserState, r state.Rules, at time.Time) bool {
	st.Calls, st.Meetings, st.Presence = maps.Clone(st.Calls), maps.Clone(st.Meetings), maps.Clone(st.Presence)
	st.Prune(r, at, state.KeepClaims)
	return len(st.Calls) == 0 && len(st.Meetings) == 0 && len(st.Presence) == 0
}
