package writer

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker/v2"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/internal/logthrottle"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/graphclient/graphlimits"
)

// maxInFlight bounds the Graph calls one tenant's writer has open at once.
const maxInFlight = 8

// callTimeout bounds one Graph call (shorter while the lease runs out).
const callTimeout = 30 * time.Second

// urgentShare: a session's keep-alive goes ahead of every change once
// less than 1/urgentShare of its expiration is left, plus the time the
// budget needs to send the keep-alives due (next).
const urgentShare = 6

// writer reconciles one tenant's users: level-triggered, it compares what
// each user should have with what Graph was last told and sends only the
// newest difference, within the tenant's budget.
//
// Keep-alives are driven by deadlines. A session becomes due for a
// refresh between a half and two thirds of its expiration (a point fixed
// per user, so sessions set together do not all come due together) and is
// then refreshed whenever no change waits; once less than a sixth of its
// expiration is left, plus the time the budget needs to send every due
// keep-alive, the keep-alives go ahead of the changes, earliest expiry
// first, so a stream of changes never lets a session lapse. What that costs is
// bounded by sessionCapacity, which the writer logs when it starts and
// warns about once when more sessions are live.
type writer struct {
	e       *Pool
	tenant  TenantOptions
	log     *slog.Logger
	budget  *budget
	breaker *gobreaker.CircuitBreaker[struct{}]

	users      map[string]*tracked
	keys       map[string]string // KV key to user id
	changes    queue             // users whose desired session differs from Graph's
	keepAlives deadlines         // users whose session is due for a refresh
	timers     timerHeap
	inFlight   int
	results    chan result

	// pausedUntil holds every call back after a 429 (pause); once it has
	// passed, one call probes alone until Graph answers a call sent after
	// it with anything but a 429, which sets it back to zero.
	pausedUntil time.Time
	// refusal is set while Graph refuses the whole tenant (refuse);
	// probeEvery is the wait before the next probe.
	refusal    atomic.Pointer[refusal]
	probeEvery time.Duration

	// live counts the users Graph holds an app session for; capacity is
	// how many the budget keeps alive (sessionCapacity).
	live, capacity int
	overCapacity   bool

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

	// forgetting counts the deletions of empty user states under way.
	forgetting sync.WaitGroup

	// lease says how long this writer may still call Graph (package
	// lease, on a monotonic clock); nil: not at all.
	lease interface{ Left() time.Duration }

	// Aggregate reads that notice manual statuses (manual.go).
	toRead   []string
	nextRead time.Time
	reading  bool
	readDone chan readResult
}

// refusal is why and until when a refused tenant's calls wait.
type refusal struct {
	reason string
	until  time.Time
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
	// settled are the user's waiting events already reported (latency.go).
	settled map[string]bool
}

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

func newWriter(e *Pool, t TenantOptions) *writer {
	if t.Budget <= 0 {
		t.Budget = graphlimits.PresenceRequests
	}
	if t.Window <= 0 {
		t.Window = graphlimits.PresenceWindow
	}
	w := &writer{
		e: e, tenant: t, log: e.opts.Logger.With("tenant", t.ID),
		budget:   newBudget(t.Budget, t.Window, e.opts.Clock.Now()),
		capacity: sessionCapacity(t.Budget, t.Window, e.opts.Expiration),
		users:    map[string]*tracked{},
		keys:     map[string]string{},
		results:  make(chan result, maxInFlight),
		readDone: make(chan readResult, 1),
		throttle: logthrottle.New(failureLogEvery),
	}
	// The breaker runs on real time (gobreaker takes no clock). Half-open
	// it lets one call through; mayCall keeps the writer from starting
	// more, so no budget or KV write is spent on calls it would reject.
	w.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "graph writes:" + t.ID,
		MaxRequests: 1,
		Timeout:     e.opts.BreakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= e.opts.BreakerFailures },
		IsSuccessful: func(err error) bool {
			if err == nil {
				return true
			}
			class, _ := fault.Of(err)
			return class != fault.Retry
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			w.log.Warn("circuit breaker", "from", from.String(), "to", to.String())
		},
	})
	return w
}

// run reconciles until ctx ends (it then returns nil) or until it can no
// longer follow the users' states, which it returns as an error.
func (w *writer) run(ctx context.Context) error {
	watcher, err := w.e.store.KV().Watch(ctx, state.UserKeys(w.tenant.ID))
	if err != nil {
		return fmt.Errorf("watch user states: %w", err)
	}
	defer func() { _ = watcher.Stop() }()
	w.log.Info("writer started", "budget", w.tenant.Budget, "window", w.tenant.Window,
		"expiration", w.e.opts.Expiration, "session_capacity", w.capacity)
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
		case r := <-w.readDone:
			w.finishRead(r, w.e.opts.Clock.Now())
		case <-ticker.C:
		}
		now := w.e.opts.Clock.Now()
		w.fireTimers(now)
		w.dispatch(ctx, now)
		w.startRead(ctx, now)
		w.loops.Add(1)
		w.publish(now)
	}
}

// drain waits for the Graph calls and the read in flight, so that none
// outlives the writer (each ends by the lease's end at the latest).
func (w *writer) drain() {
	for w.inFlight > 0 {
		<-w.results
		w.inFlight--
	}
	if w.reading {
		<-w.readDone
		w.reading = false
	}
	w.forgetting.Wait()
}

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
	}
	st, remembered, ok := w.e.store.Recent(entry.Key(), entry.Revision())
	if !ok {
		if remembered > entry.Revision() {
			return // a newer state of the user is on its way
		}
		if err := json.Unmarshal(entry.Value(), &st); err != nil {
			w.log.Error("undecodable user state", "key", entry.Key(), "err", err)
			return
		}
	}
	w.keys[entry.Key()] = st.UserID
	w.take(st, entry.Revision())
}

// take takes in a version of a user's state; an older one than the
// writer holds (its own record of a call, arriving after a newer event)
// is ignored.
func (w *writer) take(st state.UserState, rev uint64) {
	t := w.users[st.UserID]
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

// setState records a user's newer state and keeps the count of live
// sessions.
func (w *writer) setState(t *tracked, st state.UserState, rev uint64) {
	w.countManual(&t.state, &st)
	if hasSession(t.state) {
		w.live--
	}
	t.state, t.rev, t.forgetting = st, rev, false
	if hasSession(st) {
		w.live++
	}
	if w.live > w.capacity && !w.overCapacity {
		w.overCapacity = true
		w.log.Warn("more live sessions than the budget can keep alive; sessions will lapse while changes wait",
			"sessions", w.live, "session_capacity", w.capacity)
	}
}

func hasSession(st state.UserState) bool { return st.Told != nil && st.Told.Pair != nil }

// drop forgets a user whose key was deleted.
func (w *writer) drop(key string) {
	userID, ok := w.keys[key]
	if !ok {
		return
	}
	delete(w.keys, key)
	if t := w.users[userID]; t != nil && !t.inFlight {
		if hasSession(t.state) {
			w.live--
		}
		w.countManual(&t.state, nil)
		delete(w.users, userID)
		w.known.Add(-1)
	}
}

// evaluate decides whether a user needs a Graph call now or later.
func (w *writer) evaluate(userID string, now time.Time) {
	t := w.users[userID]
	if t == nil || t.inFlight || t.forgetting {
		return
	}
	if t.retryAt.After(now) {
		w.schedule(t, userID, t.retryAt)
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
		if due := w.dueAt(userID, told); now.Before(due) {
			soon(due)
		} else {
			w.keepAlives.push(userID, expiresAt(told, w.e.opts.Expiration))
		}
	default:
		w.noCall(t)
		if at, ok := emptyAt(t.state, now, w.e.rules); ok {
			if now.Before(at) {
				soon(at)
			} else {
				w.forget(t, userID)
			}
		}
	}
	w.schedule(t, userID, next)
}

// dueAt is when a session told becomes due for a refresh: between a half
// and two thirds of the expiration, at a point fixed by the user id.
func (w *writer) dueAt(userID string, told *state.Told) time.Time {
	exp := w.e.opts.Expiration
	h := fnv.New32a()
	h.Write([]byte(userID))
	spread := time.Duration(float64(exp/6) * float64(h.Sum32()%1024) / 1024)
	return told.At.Add(exp/2 + spread)
}

// expiresAt is when the session told expires.
func expiresAt(told *state.Told, expiration time.Duration) time.Time {
	if told.Expires.IsZero() {
		return told.At.Add(expiration)
	}
	return told.Expires
}

// schedule sets the user's one timer; an earlier timer left in the heap
// is recognised as stale when it fires.
func (w *writer) schedule(t *tracked, userID string, at time.Time) {
	if at.IsZero() || at.Equal(t.timerAt) {
		return
	}
	t.timerAt = at
	heap.Push(&w.timers, timer{at: at, userID: userID})
}

func (w *writer) fireTimers(now time.Time) {
	for len(w.timers) > 0 && !w.timers[0].at.After(now) {
		tm := heap.Pop(&w.timers).(timer)
		if t := w.users[tm.userID]; t != nil && t.timerAt.Equal(tm.at) {
			t.timerAt = time.Time{}
			w.evaluate(tm.userID, now)
		}
	}
}

// leaseLeft is how long the writer may still call Graph: zero or less once
// the lease may have passed to another instance.
func (w *writer) leaseLeft() time.Duration {
	if w.lease == nil {
		return 0
	}
	return w.lease.Left()
}

// fenced reports whether the lease may have passed to another instance.
func (w *writer) fenced() bool { return w.leaseLeft() <= 0 }

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
		w.log.Info("budget growing back after a quiet window", "limit", w.budget.limit, "window", w.tenant.Window)
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

// mayCall reports whether a call may start now: none during a 429's pause
// and, once it is over, one probe alone until Graph answers it; while
// the tenant is refused, only the one probe when the wait is over; and
// what the breaker allows (one probe when half-open).
func (w *writer) mayCall(now time.Time) bool {
	if !w.pausedUntil.IsZero() && (now.Before(w.pausedUntil) || w.inFlight > 0 || w.reading) {
		return false
	}
	if r := w.refusal.Load(); r != nil && (now.Before(r.until) || w.inFlight > 0) {
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
	if k, ok := w.keepAlives.front(); ok {
		drain := time.Duration(float64(len(w.keepAlives.h)+1) / float64(w.budget.limiter.Limit()) * float64(time.Second))
		if !now.Before(k.at.Add(-drain - w.e.opts.Expiration/urgentShare)) {
			return k.userID, true, true
		}
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
		return want, !now.Before(w.dueAt(userID, told))
	}
	return nil, false
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
	_, err := w.breaker.Execute(func() (struct{}, error) {
		// A call may not outlive the lease: a deposed writer's request must
		// reach Graph before the new holder can start (lease.go).
		callCtx, cancel := context.WithTimeout(ctx, min(callTimeout, w.leaseLeft()))
		defer cancel()
		if want == nil {
			return struct{}{}, w.e.opts.Graph.ClearPresence(callCtx, w.tenant.ID, userID)
		}
		return struct{}{}, w.e.opts.Graph.SetPresence(callCtx, w.tenant.ID, userID, *want, exp)
	})
	// Record the outcome even while shutting down: Graph may have acted.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		r.err, r.class, r.rejected = err, fault.Retry, true
		r.updated, r.rev = w.unsent(recordCtx, userID, before)
		return
	}
	r.graph = true
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
			w.accepted() // Graph took the call in: the tenant is not refused
		}
		if r.class != fault.Throttled && !r.sent.IsZero() && !r.sent.Before(w.pausedUntil) {
			w.pausedUntil = time.Time{} // the probe after a pause was answered
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
			w.log.Warn("graph throttles below the budget; sending less", "limit", w.budget.limit, "window", w.tenant.Window)
		}
		w.changes.pushFront(r.userID)
		history.Record(w.e.opts.History, w.tenant.ID, r.userID, history.Retry(w.pausedUntil, r.err, now))
		t.dirty = false
		return
	case r.class == fault.Refused:
		w.refuseTenant(now, r.err)
		w.changes.push(r.userID) // at the back: the next probe is another user's
		history.Record(w.e.opts.History, w.tenant.ID, r.userID, history.Retry(w.refusal.Load().until, r.err, now))
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

// pause holds every call of the tenant back until until, as a 429's
// Retry-After asks.
func (w *writer) pause(until time.Time, reason string) {
	if until.After(w.pausedUntil) {
		w.pausedUntil = until
		w.persistPause(until)
	}
	w.budget.quiet(until)
	w.log.Warn(reason+"; tenant paused", "until", until)
}

// refuseTenant takes in a fault.Refused answer: the tenant's calls wait
// RefusalProbe, then one call probes; each refused probe doubles the wait
// up to RefusalProbeMax. The reason is logged once, when the refusal
// starts. Answers to calls sent before the wait began change nothing.
func (w *writer) refuseTenant(now time.Time, err error) {
	r := w.refusal.Load()
	switch {
	case r == nil:
		w.probeEvery = w.e.opts.RefusalProbe
		w.log.Error("graph refuses the tenant (missing permission or consent, or a token it does not accept); calls paused, desired states kept",
			"err", err, "probe_in", w.probeEvery)
	case now.Before(r.until):
		return
	default:
		w.probeEvery = min(2*w.probeEvery, w.e.opts.RefusalProbeMax)
		w.log.Debug("graph still refuses the tenant", "err", err, "probe_in", w.probeEvery)
	}
	w.refusal.Store(&refusal{reason: err.Error(), until: now.Add(w.probeEvery)})
}

// accepted ends a refusal once Graph takes a call in again.
func (w *writer) accepted() {
	if w.refusal.Swap(nil) != nil {
		w.log.Info("graph accepts the tenant's calls again")
	}
}

// forget deletes the key of a user with nothing left to remember, unless
// the key changed meanwhile (a new event wins); the watcher then reports
// the deletion and the writer drops the user.
func (w *writer) forget(t *tracked, userID string) {
	t.forgetting = true
	rev := t.rev
	w.forgetting.Add(1)
	go func() {
		defer w.forgetting.Done()
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

func toldPair(t *state.Told) *adapters.Pair {
	if t == nil {
		return nil
	}
	return t.Pair
}

// queue is a FIFO of user ids, a ring buffer in which a user stands at
// most once, so a busy user can not crowd out the others; every operation
// but growing is O(1).
type queue struct {
	buf     []string
	head, n int
	in      map[string]bool
}

func (q *queue) len() int { return q.n }

func (q *queue) push(id string) {
	if q.add(id) {
		q.buf[(q.head+q.n)%len(q.buf)] = id
		q.n++
	}
}

func (q *queue) pushFront(id string) {
	if q.add(id) {
		q.head = (q.head - 1 + len(q.buf)) % len(q.buf)
		q.buf[q.head] = id
		q.n++
	}
}

// add marks id as queued and makes room for it; false if it was queued.
func (q *queue) add(id string) bool {
	if q.in == nil {
		q.in = map[string]bool{}
	}
	if q.in[id] {
		return false
	}
	q.in[id] = true
	if q.n == len(q.buf) {
		grown := make([]string, max(16, 2*len(q.buf)))
		for i := range q.n {
			grown[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = grown, 0
	}
	return true
}

func (q *queue) front() (string, bool) {
	if q.n == 0 {
		return "", false
	}
	return q.buf[q.head], true
}

func (q *queue) pop() (string, bool) {
	id, ok := q.front()
	if !ok {
		return "", false
	}
	q.buf[q.head] = ""
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	delete(q.in, id)
	return id, true
}

// deadlines are the users due for a keep-alive, earliest deadline first,
// each at most once.
type deadlines struct {
	h  timerHeap
	in map[string]bool
}

func (d *deadlines) push(userID string, at time.Time) {
	if d.in == nil {
		d.in = map[string]bool{}
	}
	if !d.in[userID] {
		d.in[userID] = true
		heap.Push(&d.h, timer{at: at, userID: userID})
	}
}

func (d *deadlines) front() (timer, bool) {
	if len(d.h) == 0 {
		return timer{}, false
	}
	return d.h[0], true
}

func (d *deadlines) pop() {
	tm := heap.Pop(&d.h).(timer)
	delete(d.in, tm.userID)
}

type timer struct {
	at     time.Time
	userID string
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
