package writer

import (
	"context"
	"log/slog"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// result is a Graph call's outcome, taken back into the writer's loop
// (handle).
type result struct {
	userID string
	want   *adapters.Pair
	sent   time.Time // when the call was started; zero if unknown
	graph  bool      // Graph was called
	// rejected: the breaker turned the call away before Graph.
	rejected bool
	err      error
	class    fault.Class
	after    time.Duration
	updated  *state.UserState
	rev      uint64
	// waits are the events whose effect the call carried (latency.go).
	waits []state.Waiting
}

// call makes one Graph call and records what Graph was told. The intent
// is written first, so that a crash between the call and the record
// leaves a trace the next writer reconciles.
// waits are the user's waiting events, whose effect the call carries.
func (w *writer) call(ctx context.Context, userID string, want *adapters.Pair, at time.Time, waits []state.Waiting) {
	exp := w.e.opts.Expiration
	r := result{userID: userID, want: want, sent: at, waits: waits}
	defer func() { w.results <- r }() // buffered for every call in flight
	// before is the pending call this one's intent replaces.
	var before *state.Told
	if _, _, err := w.e.store.Update(ctx, w.tenant.ID, userID, func(s *state.UserState) bool {
		before, s.Pending = s.Pending, &state.Told{Pair: want, At: at}
		return true
	}); err != nil {
		r.err, r.class = err, fault.Retry
		return
	}
	err := w.graphCall(ctx, &r, func(ctx context.Context) error {
		if want == nil {
			return w.e.opts.Graph.ClearPresence(ctx, w.tenant.ID, userID)
		}
		return w.e.opts.Graph.SetPresence(ctx, w.tenant.ID, userID, *want, exp)
	})
	// Record the outcome even while shutting down: Graph may have acted.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if r.rejected {
		r.updated, r.rev = w.unsent(recordCtx, userID, before)
		return
	}
	r.err = err
	if err == nil {
		st, rev, uerr := w.e.store.Update(recordCtx, w.tenant.ID, userID, func(s *state.UserState) bool {
			s.Told, s.Pending = &state.Told{Pair: want, At: at}, nil
			s.Waiting = carried(s.Waiting, waits)
			if want != nil {
				s.Told.Expires = at.Add(exp)
			} else {
				s.Manual = nil // only recorded while there is a session to hide
				if s.Status != nil && s.Status.Text == "" {
					s.Status = nil // the next session reads the user's message again
				}
			}
			return true
		})
		if uerr != nil {
			r.err, r.class = uerr, fault.Retry
		} else {
			r.updated, r.rev = &st, rev
		}
		history.Record(w.e.opts.History, w.tenant.ID, userID, history.Sent(want, at))
		return
	}
	r.class, r.after = fault.Of(err)
	switch r.class {
	case fault.Permanent:
		r.updated, r.rev = w.refuse(recordCtx, userID, want, err, at, waits)
	case fault.Throttled, fault.Refused:
		r.updated, r.rev = w.unsent(recordCtx, userID, before)
	}
}

// unsent takes back the intent of a call Graph did not act on (a 429, a
// refusal of the tenant, a breaker that kept it from Graph): the pending
// call is again the one before it, so that a session never set is never
// cleared. It returns the state as written.
func (w *writer) unsent(ctx context.Context, userID string, before *state.Told) (*state.UserState, uint64) {
	st, rev, err := w.e.store.Update(ctx, w.tenant.ID, userID, func(s *state.UserState) bool {
		s.Pending = before
		return true
	})
	if err != nil {
		// The intent stays: at worst one call more (a clear Graph answers 404).
		w.log.Warn("take back the intent of a call not made", "user", userID, "err", err)
		return nil, 0
	}
	return &st, rev
}

// refuse records a permanent refusal and dead-letters it; it returns the
// state as written.
func (w *writer) refuse(ctx context.Context, userID string, want *adapters.Pair, err error, at time.Time, waits []state.Waiting) (*state.UserState, uint64) {
	st, rev, uerr := w.e.store.Update(ctx, w.tenant.ID, userID, func(s *state.UserState) bool {
		s.Failed = &state.Failure{Pair: want, Reason: "graph refused the change", At: at}
		s.Pending = nil
		s.Waiting = carried(s.Waiting, waits)
		return true
	})
	if uerr != nil {
		w.log.Error("record refusal", "user", userID, "err", uerr)
	}
	history.Record(w.e.opts.History, w.tenant.ID, userID, history.Decision(history.DecisionRefused, want, err, at))
	d := DeadLetter{Tenant: w.tenant.ID, UserID: userID, Event: st.LastEvent, Reason: "graph refused the change", GraphError: err.Error(), At: at}
	if derr := w.e.opts.DeadLetter(ctx, d); derr != nil {
		w.log.Error("dead letter", "user", userID, "err", derr)
	}
	w.log.Warn("graph refused the change; dead-lettered", append(eventAttrs(st.LastEvent),
		"user", userID, "graph_error", err.Error(), "request_id", requestID(err))...)
	if uerr != nil {
		return nil, 0
	}
	return &st, rev
}

// handle takes a call's result back into the loop.
func (w *writer) handle(r result) {
	now := w.e.opts.Clock.Now()
	if r.graph {
		if r.err == nil || r.class == fault.Permanent {
			w.gate.accepted() // Graph took the call in: the tenant is not refused
		}
		if r.class != fault.Throttled {
			w.gate.answered(r.sent) // maybe the probe after a pause
		}
	}
	t := w.users[r.userID]
	if t == nil {
		return
	}
	t.inFlight = false
	if r.graph && (r.err == nil || r.class == fault.Permanent) {
		w.reportWaits(t, r)
	}
	if r.updated != nil && r.rev > t.rev {
		w.setState(t, *r.updated, r.rev)
		w.settleWaits(t, false)
	}
	switch {
	case r.err == nil:
		t.failures, t.retryAt = 0, time.Time{}
	case r.rejected: // not a failure of Graph: again once a probe may go
		t.retryAt = now.Add(w.e.opts.BreakerTimeout)
		history.Record(w.e.opts.History, w.tenant.ID, r.userID, history.Retry(t.retryAt, r.err, now))
	case r.class == fault.Throttled:
		w.pause(now.Add(max(r.after, time.Second)), "throttled by graph")
		sent := r.sent
		if sent.IsZero() {
			sent = now
		}
		if w.budget.throttled(now, sent) {
			w.log.Warn("graph throttles below the budget; sending less", "limit", w.budget.current(), "window", w.tenant.Window)
		}
		w.changes.pushFront(r.userID)
		history.Record(w.e.opts.History, w.tenant.ID, r.userID, history.Retry(w.gate.pausedUntil, r.err, now))
		t.dirty = false
		return
	case r.class == fault.Refused:
		w.gate.refuse(now, r.err)
		w.changes.push(r.userID) // at the back: the next probe is another user's
		_, until := w.gate.refused()
		history.Record(w.e.opts.History, w.tenant.ID, r.userID, history.Retry(until, r.err, now))
		t.dirty = false
		return
	case r.class == fault.Retry:
		t.failures++
		delay := w.e.opts.RetryDelay << min(t.failures-1, 16)
		t.retryAt = now.Add(min(max(delay, r.after), w.e.opts.MaxRetryDelay))
		w.throttle.Log(context.Background(), w.log, slog.LevelWarn, failureKind(r.err), "graph call failed; will retry",
			append(eventAttrs(t.state.LastEvent), "user", r.userID, "err", r.err, "retry_at", t.retryAt)...)
		history.Record(w.e.opts.History, w.tenant.ID, r.userID, history.Retry(t.retryAt, r.err, now))
	}
	t.dirty = false
	w.evaluate(r.userID, now)
}
