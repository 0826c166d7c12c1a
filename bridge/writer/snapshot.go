package writer

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/graphclient"
)

// TenantStatus is a configured tenant's writer as this instance sees it,
// for metrics and status views.
type TenantStatus struct {
	Tenant string
	// Writing says this instance holds the tenant's lease and runs its
	// writer; the fields below are zero when it does not.
	Writing bool
	// Breaker is the circuit breaker's state: "closed", "half-open" or
	// "open".
	Breaker string
	// BudgetLimit is the calls per window the writer keeps to now (below
	// the configured budget after Graph throttled), BudgetRemaining what
	// is left of it in the current window.
	BudgetLimit, BudgetRemaining int
	// Backlog is how many users' desired sessions differ from what Graph
	// was told, waiting for a call.
	Backlog int
	// Sessions is how many users Graph holds an app session for, and
	// ManualUsers how many of all users have a status set by hand on
	// record.
	Sessions, ManualUsers int
}

// Status returns every configured tenant's status, in configuration
// order. It reads what the writers published at the end of their last
// loop turn, so it never waits for them.
func (e *Pool) Status() []TenantStatus {
	out := make([]TenantStatus, len(e.opts.Tenants))
	for i, t := range e.opts.Tenants {
		out[i].Tenant = t.ID
		w := e.writer(t.ID)
		if w == nil {
			continue
		}
		out[i].Writing = true
		out[i].Breaker = w.breaker.State().String()
		out[i].BudgetLimit = int(w.stats.budgetLimit.Load())
		out[i].BudgetRemaining = int(w.stats.budgetRemaining.Load())
		out[i].Backlog = int(w.stats.backlog.Load())
		out[i].Sessions = int(w.stats.sessions.Load())
		out[i].ManualUsers = int(w.stats.manual.Load())
	}
	return out
}

// BreakerStates are the names TenantStatus.Breaker takes.
var BreakerStates = []string{gobreaker.StateClosed.String(), gobreaker.StateHalfOpen.String(), gobreaker.StateOpen.String()}

// writerStats are the writer's numbers, published by its loop for readers
// on other goroutines; manualUsers is the loop's own count.
type writerStats struct {
	budgetLimit, budgetRemaining atomic.Int64
	backlog, sessions, manual    atomic.Int64
	// held is how many users the writer holds a decoded state of (the
	// others known are idle: idle.go).
	held        atomic.Int64
	manualUsers int
}

// publish stores the loop's numbers for Status.
func (w *writer) publish(now time.Time) {
	limit := w.budget.current()
	w.stats.budgetLimit.Store(int64(limit))
	w.stats.budgetRemaining.Store(int64(max(limit-w.budget.spent(now), 0)))
	w.stats.backlog.Store(int64(w.changes.len()))
	w.stats.sessions.Store(int64(w.sessions.live))
	w.stats.manual.Store(int64(w.stats.manualUsers))
	w.stats.held.Store(int64(len(w.users)))
}

// countManual keeps the count of users with a manual status as a user's
// state goes from was to now.
func (w *writer) countManual(was, now *state.UserState) {
	if was != nil && was.Manual != nil {
		w.stats.manualUsers--
	}
	if now != nil && now.Manual != nil {
		w.stats.manualUsers++
	}
}

// failureLogEvery is how often, at most, one kind of failed Graph call is
// logged per tenant; the line after the quiet interval counts the others.
const failureLogEvery = 10 * time.Second

// eventAttrs are the log attributes that let an event be followed from
// ingest to Graph: its source and id.
func eventAttrs(ev *adapters.Event) []any {
	if ev == nil {
		return nil
	}
	return []any{"source", ev.Source, "event_id", ev.ID}
}

// requestID returns the request-id Graph gave an error (the one the
// client sent when Graph gave none), for Microsoft support.
func requestID(err error) string {
	var gerr *graphclient.Error
	if !errors.As(err, &gerr) {
		return ""
	}
	if gerr.RequestID != "" {
		return gerr.RequestID
	}
	return gerr.ClientRequestID
}

// failureKind sorts failed calls for the log throttle: by Graph's status
// and code, or by the kind of error when Graph did not answer; never by
// user.
func failureKind(err error) string {
	var gerr *graphclient.Error
	switch {
	case errors.As(err, &gerr):
		return "graph " + strconv.Itoa(gerr.StatusCode) + " " + gerr.Code
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	class, _ := fault.Of(err)
	return "other " + class.String()
}
