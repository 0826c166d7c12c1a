package writer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker/v2"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/internal/logthrottle"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/internal/guid"
)

// maxInFlight bounds the Graph calls one tenant's writer has open at once.
const maxInFlight = 8

// writer reconciles one tenant's users: level-triggered, it compares what
// each user should have with what Graph was last told and sends only the
// newest difference, within the tenant's budget. Its loop (run) owns
// every field but the atomics; the package comment names the part each
// of its jobs has.
type writer struct {
	e      *Pool
	tenant TenantOptions
	log    *slog.Logger

	// What lets a call start.
	budget  *budget
	gate    gate
	breaker *gobreaker.CircuitBreaker[struct{}]
	// lease says how long this writer may still call Graph (package
	// lease, on a monotonic clock); nil: not at all.
	lease interface{ Left() time.Duration }

	users map[string]*tracked
	idle  guid.Map[idleUser] // users with nothing under way, by idleID (idle.go)
	keys  map[string]string  // KV key to user id, of the users tracked
	// wakes are the idle users' times, loading whether a batch of their
	// states is being read, loads where it comes back (wake.go).
	wakes   wakeHeap
	loading bool
	loads   chan []loaded
	// sweepAt is when the idle users are next swept for keys whose end
	// has come (zero: none has one), sweptAt when they last were.
	sweepAt, sweptAt time.Time
	changes          queue     // users whose desired session differs from Graph's
	keepAlives       deadlines // users whose session is due for a refresh
	timers           timers    // when to evaluate each user again
	sessions         sessionCount
	highs            highs // the indexes' high-water marks (compact.go)
	inFlight         int
	results          chan result

	// watched is the newest KV revision the writer has taken in, loops
	// counts the loop's turns, started the calls it started, handled
	// their results taken back and known the users it tracks, so tests
	// can tell what the writer has done.
	watched atomic.Uint64
	loops   atomic.Uint64
	started atomic.Uint64
	handled atomic.Uint64
	known   atomic.Int64
	// stats are published for Status (snapshot.go).
	stats writerStats
	// throttle keeps repeated identical failures to a line per interval.
	throttle *logthrottle.Throttle
	// caughtUp: the watch has delivered the states stored before the
	// writer started (their events are not timed: latency.go).
	caughtUp bool
	// caughtUpShared is caughtUp for other goroutines (Pool.CaughtUp).
	caughtUpShared atomic.Bool

	// background counts the deletions of empty user states and the reads
	// of idle users' states under way.
	background sync.WaitGroup
}

type tracked struct {
	state      state.UserState
	rev        uint64 // the KV revision of state
	inFlight   bool
	dirty      bool // changed while in flight
	forgetting bool // its key is being deleted
	failures   int
	retryAt    time.Time
	timerAt    time.Time
	// settled are the user's waiting events already reported (latency.go);
	// so is every one accepted by settledUpTo (Unix nanoseconds), when the
	// user was woken from idle (idle.go).
	settled     map[string]bool
	settledUpTo int64
}

func newWriter(e *Pool, t TenantOptions) *writer {
	log := e.opts.Logger.With("tenant", t.ID)
	return &writer{
		e: e, tenant: t, log: log,
		budget:   newBudget(t.Budget, t.Window, e.opts.Clock.Now()),
		gate:     gate{probeFirst: e.opts.RefusalProbe, probeMax: e.opts.RefusalProbeMax, log: log},
		breaker:  newBreaker(t.ID, e.opts.BreakerFailures, e.opts.BreakerTimeout, log),
		sessions: sessionCount{capacity: sessionCapacity(t.Budget, t.Window, e.opts.Expiration)},
		users:    map[string]*tracked{},
		keys:     map[string]string{},
		results:  make(chan result, maxInFlight),
		loads:    make(chan []loaded, 1),
		throttle: logthrottle.New(failureLogEvery),
	}
}

// run reconciles until ctx ends (it then returns nil) or until it can no
// longer follow the users' states, which it returns as an error.
func (w *writer) run(ctx context.Context) error {
	last, err := w.catchUp(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var from []jetstream.WatchOpt
	if last > 0 {
		from = append(from, jetstream.ResumeFromRevision(last+1))
	}
	watcher, err := w.e.store.KV().Watch(ctx, state.UserKeys(w.tenant.ID), from...)
	if err != nil {
		return fmt.Errorf("watch user states: %w", err)
	}
	defer func() { _ = watcher.Stop() }()
	w.log.Info("writer started", "budget", w.tenant.Budget, "window", w.tenant.Window,
		"expiration", w.e.opts.Expiration, "session_capacity", w.sessions.capacity)
	ticker := time.NewTicker(w.e.opts.Tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			w.drain()
			return nil
		case entry, ok := <-watcher.Updates():
			if !ok {
				w.drain()
				return errors.New("the watch of user states ended")
			}
			if entry == nil {
				w.caughtUp = true // the states stored before the writer started are in
				w.caughtUpShared.Store(true)
				continue
			}
			w.takeEntry(entry)
			// Stored once the entry is taken in, so that whoever waits for
			// a revision finds its state in the writer.
			w.watched.Store(entry.Revision())
		case r := <-w.results:
			w.inFlight--
			w.handle(r)
			w.handled.Add(1)
		case batch := <-w.loads:
			w.loading = false
			w.takeLoaded(batch)
		case <-ticker.C:
		}
		now := w.e.opts.Clock.Now()
		w.fireTimers(ctx, now)
		w.dispatch(ctx, now)
		w.compact()
		w.loops.Add(1)
		w.publish(now)
	}
}

// drain waits for the Graph calls in flight, so that none
// outlives the writer (each ends by the lease's end at the latest).
func (w *writer) drain() {
	for w.inFlight > 0 {
		<-w.results
		w.inFlight--
	}
	w.background.Wait()
}

// evaluate decides whether a user needs a Graph call now or later.
func (w *writer) evaluate(userID string, now time.Time) {
	t := w.users[userID]
	if t == nil || t.inFlight || t.forgetting {
		return
	}
	if t.retryAt.After(now) {
		w.timers.set(userID, t.retryAt)
		return
	}
	want, next := t.state.Desired(w.e.rules, now)
	soon := func(at time.Time) {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	told := t.state.Told
	_, statusDue, statusAt := w.statusDue(t.state, want, now)
	if !statusAt.IsZero() {
		soon(statusAt)
	}
	switch {
	case t.state.Failed != nil && adapters.SamePair(t.state.Failed.Pair, want):
		// Graph refused exactly this; wait for the claims to change.
		w.noCall(t)
	case t.state.Pending != nil:
		w.changes.push(userID) // an earlier call's outcome is unknown
	case !adapters.SamePair(toldPair(told), want) && !(told == nil && want == nil):
		w.changes.push(userID)
	case statusDue:
		w.noCall(t)
		w.changes.push(userID) // the status message, once the session is right
	case want != nil:
		w.noCall(t)
		due := refreshAt(userID, told, w.e.opts.Expiration)
		if !now.Before(due) {
			w.keepAlives.push(userID, expiresAt(told, w.e.opts.Expiration))
			break
		}
		soon(due)
		if w.rest(t, userID, now, time.Time{}, next) {
			return // in a call, say, until its session's refresh
		}
	default:
		w.noCall(t)
		at, empty := emptyAt(t.state, now, w.e.rules)
		if empty && !now.Before(at) {
			w.forget(t, userID)
			break
		}
		var forgetAt time.Time
		if empty {
			forgetAt = at
		}
		if w.rest(t, userID, now, forgetAt, next) {
			return
		}
		if empty {
			soon(at)
		}
	}
	w.timers.set(userID, next)
}

// fireTimers evaluates again every user whose timer is due, reads back
// the states of idle users whose time has come (wake.go), and sweeps the
// idle users when that is due (idle.go).
func (w *writer) fireTimers(ctx context.Context, now time.Time) {
	for {
		userID, ok := w.timers.due(now)
		if !ok {
			break
		}
		w.evaluate(userID, now)
	}
	w.loadDue(ctx, now)
	w.sweepIdle(now)
}

// dispatch starts Graph calls while the lease, the budget, the breaker and
// the tenant's pauses allow: urgent keep-alives first, then state
// changes, then due keep-alives. A user is taken off its queue only once
// the budget has given its call a token, so a tick the budget denies
// costs nothing whatever the queue's length.
func (w *writer) dispatch(ctx context.Context, now time.Time) {
	if w.fenced() {
		return
	}
	if w.budget.recover(now) {
		w.log.Info("budget growing back after a quiet window", "limit", w.budget.current(), "window", w.tenant.Window)
	}
	for w.inFlight < maxInFlight && w.mayCall(now) {
		userID, keepAlive, ok := w.next(now)
		if !ok {
			return
		}
		want, needed := w.need(userID, now)
		text, status := "", false
		if !needed {
			text, status = w.statusNeed(userID, now)
		}
		if (needed || status) && !w.budget.allow(now) {
			return
		}
		if keepAlive {
			w.keepAlives.pop()
		} else {
			w.changes.pop()
		}
		if !needed && !status {
			if t := w.users[userID]; t != nil && !t.inFlight && !t.forgetting && !t.retryAt.After(now) {
				w.noCall(t) // the session is right (need)
			}
			history.Record(w.e.opts.History, w.tenant.ID, userID, history.Decision(history.DecisionCoalesced, nil, nil, now))
			continue
		}
		w.users[userID].inFlight = true
		w.inFlight++
		w.started.Add(1)
		if status {
			go w.callStatus(ctx, userID, text, w.users[userID].state.Status)
			continue
		}
		if keepAlive {
			history.Record(w.e.opts.History, w.tenant.ID, userID, history.Decision(history.DecisionKeepAlive, want, nil, now))
		}
		go w.call(ctx, userID, want, now, w.users[userID].state.Waiting)
	}
}

// mayCall reports whether a call may start now: what the gate allows
// (429 pauses, refusal probes) and what the breaker allows (one probe
// when half-open).
func (w *writer) mayCall(now time.Time) bool {
	if !w.gate.allows(now, w.inFlight) {
		return false
	}
	switch w.breaker.State() {
	case gobreaker.StateOpen:
		return false
	case gobreaker.StateHalfOpen:
		return w.inFlight == 0 // the probe goes alone
	}
	return true
}

// next returns the user to call for next without taking it off its
// queue: a keep-alive that can wait no longer, else a change, else a
// due keep-alive.
//
// Keep-alives can wait no longer once the earliest expiry among them is
// closer than the time the budget needs to send them all, plus a sixth of
// the expiration to spare: they then go first, earliest expiry first.
func (w *writer) next(now time.Time) (userID string, keepAlive, ok bool) {
	if k, ok := w.keepAlives.front(); ok && urgent(now, k.at, w.keepAlives.len(), float64(w.budget.limiter.Limit()), w.e.opts.Expiration) {
		return k.userID, true, true
	}
	if id, ok := w.changes.front(); ok {
		return id, false, true
	}
	if k, ok := w.keepAlives.front(); ok {
		return k.userID, true, true
	}
	return "", false, false
}

// need reports whether a queued user still needs a call at now, and what
// to send.
func (w *writer) need(userID string, now time.Time) (*adapters.Pair, bool) {
	t := w.users[userID]
	if t == nil || t.inFlight || t.forgetting || t.retryAt.After(now) {
		return nil, false
	}
	want, _ := t.state.Desired(w.e.rules, now)
	told := t.state.Told
	switch {
	case t.state.Failed != nil && adapters.SamePair(t.state.Failed.Pair, want):
		return nil, false
	case t.state.Pending != nil:
		return want, true
	case !adapters.SamePair(toldPair(told), want):
		return want, true
	case want != nil:
		return want, !now.Before(refreshAt(userID, told, w.e.opts.Expiration))
	}
	return nil, false
}
