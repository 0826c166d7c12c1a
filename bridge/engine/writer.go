package engine

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// maxInFlight bounds the Graph calls one tenant's writer has open at once.
const maxInFlight = 8

// callTimeout bounds one Graph call (shorter while the lease runs out).
const callTimeout = 30 * time.Second

// writer reconciles one tenant's users: level-triggered, it compares what
// each user should have with what Graph was last told and sends only the
// newest difference, within the tenant's budget.
type writer struct {
	e       *Engine
	tenant  TenantOptions
	log     *slog.Logger
	limiter *rate.Limiter
	breaker *gobreaker.CircuitBreaker[struct{}]

	users       map[string]*tracked
	changes     queue // users whose desired session differs from Graph's
	keepAlives  queue // users whose session needs refreshing
	timers      timerHeap
	inFlight    int
	pausedUntil time.Time
	results     chan result

	// watched is the newest KV revision the writer has taken in, so tests
	// can tell when it has seen a change.
	watched atomic.Uint64

	// leaseUntil is when this writer must stop calling Graph unless its
	// lease is renewed (lease.go). It is read from mono, whose readings
	// carry Go's monotonic clock, so a step of the wall clock moves it not.
	leaseUntil atomic.Pointer[time.Time]
	mono       func() time.Time

	// Aggregate reads that notice manual statuses (manual.go).
	toRead   []string
	nextRead time.Time
	reading  bool
	readDone chan readResult
}

type tracked struct {
	state    UserState
	rev      uint64 // the KV revision of state
	inFlight bool
	dirty    bool // changed while in flight
	failures int
	retryAt  time.Time
	timerAt  time.Time
}

type result struct {
	userID  string
	want    *adapters.Pair
	err     error
	class   ErrorClass
	after   time.Duration
	updated *UserState
	rev     uint64
}

func newWriter(e *Engine, t TenantOptions) *writer {
	if t.Budget <= 0 {
		t.Budget = 1500
	}
	if t.Window <= 0 {
		t.Window = 30 * time.Second
	}
	// A bucket of burst tokens refilled at (budget-burst)/window never
	// lets more than budget calls go out in any window. Graph counts
	// arrivals, not departures, and calls take varying time to arrive, so
	// the window is stretched by a thirtieth (a second in Graph's 30 s) to
	// keep that jitter inside the budget too. A burst of about 1% of the
	// budget keeps the budget usable when the loop wakes a little after a
	// token is due.
	//
	// The bucket starts empty, as if the writer had just spent its burst,
	// because a predecessor (another instance, or this one before a
	// restart) may have. With W the stretched window and r =
	// (budget-burst)/W: a bucket of burst tokens lets out at most
	// burst + r*a calls in any a seconds, so the predecessor's last a
	// seconds hold at most burst + r*a calls and this writer's first b
	// seconds, from an empty bucket, at most r*b. A window of Graph's
	// that spans the handover has a + b <= W - W/31 (nobody calls in the
	// gap between them), so it holds at most burst + r*W = budget calls
	// even when the calls' arrival shifts them by up to W/31, as within
	// one writer's run. One token at the start would make that budget + 1.
	// The writer also starts no call before its predecessor's fence has
	// passed (lease.go).
	burst := min(max(t.Budget/100, 1), 50)
	window := t.Window + t.Window/30
	r := rate.Limit(float64(t.Budget-burst) / window.Seconds())
	if t.Budget <= burst {
		r = rate.Limit(1 / window.Seconds() / 2)
	}
	limiter := rate.NewLimiter(r, burst)
	limiter.AllowN(e.opts.Clock.Now(), burst)
	w := &writer{
		e: e, tenant: t, log: e.opts.Logger.With("tenant", t.ID),
		limiter:  limiter,
		mono:     time.Now,
		users:    map[string]*tracked{},
		results:  make(chan result, maxInFlight),
		readDone: make(chan readResult, 1),
	}
	w.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "graph:" + t.ID,
		MaxRequests: 1,
		Timeout:     e.opts.BreakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= e.opts.BreakerFailures },
		IsSuccessful: func(err error) bool {
			if err == nil {
				return true
			}
			class, _ := e.opts.Classify(err)
			return class != Retryable
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			w.log.Warn("circuit breaker", "from", from.String(), "to", to.String())
		},
	})
	return w
}

// run reconciles until ctx ends (it then returns nil) or until it can no
// longer follow the users' states, which it returns as an error.
func (w *writer) run(ctx context.Context) error {
	watcher, err := w.e.store.kv.Watch(ctx, "u."+tenantToken(w.tenant.ID)+".>")
	if err != nil {
		return fmt.Errorf("watch user states: %w", err)
	}
	defer func() { _ = watcher.Stop() }()
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
			if entry == nil || entry.Operation() != jetstream.KeyValuePut {
				continue
			}
			w.watched.Store(entry.Revision())
			var st UserState
			if err := json.Unmarshal(entry.Value(), &st); err != nil {
				w.log.Error("undecodable user state", "key", entry.Key(), "err", err)
				continue
			}
			w.observe(st, entry.Revision())
		case r := <-w.results:
			w.inFlight--
			w.handle(r)
		case r := <-w.readDone:
			w.finishRead(r, w.e.opts.Clock.Now())
		case <-ticker.C:
		}
		now := w.e.opts.Clock.Now()
		w.fireTimers(now)
		w.dispatch(ctx, now)
		w.startRead(ctx, now)
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
}

// observe takes a version of a user's state; an older one than the
// writer holds (its own record of a call, arriving after a newer event)
// is ignored.
func (w *writer) observe(st UserState, rev uint64) {
	t := w.users[st.UserID]
	if t == nil {
		t = &tracked{}
		w.users[st.UserID] = t
	}
	if rev <= t.rev {
		return
	}
	t.state, t.rev = st, rev
	if t.inFlight {
		t.dirty = true
		return
	}
	w.evaluate(st.UserID, w.e.opts.Clock.Now())
}

// evaluate decides whether a user needs a Graph call now or later.
func (w *writer) evaluate(userID string, now time.Time) {
	t := w.users[userID]
	if t == nil || t.inFlight {
		return
	}
	if t.retryAt.After(now) {
		w.schedule(t, userID, t.retryAt)
		return
	}
	want, next := t.state.Desired(w.e.opts.Rules, now)
	told := t.state.Told
	switch {
	case t.state.Failed != nil && samePair(t.state.Failed.Pair, want):
		// Graph refused exactly this; wait for the claims to change.
	case t.state.Pending != nil:
		w.changes.push(userID) // an earlier call's outcome is unknown
	case !samePair(toldPair(told), want) && !(told == nil && want == nil):
		w.changes.push(userID)
	case want != nil:
		refresh := told.At.Add(w.e.opts.Expiration * 2 / 3)
		if !now.Before(refresh) {
			w.keepAlives.push(userID)
		} else if next.IsZero() || refresh.Before(next) {
			next = refresh
		}
	}
	w.schedule(t, userID, next)
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

// fenceAt sets when the writer stops calling Graph unless the lease is
// renewed again; t must come from w.mono (time.Now keeps the monotonic
// reading that Before and Sub then use).
func (w *writer) fenceAt(t time.Time) { w.leaseUntil.Store(&t) }

// leaseLeft is how long the writer may still call Graph: zero or less once
// the lease may have passed to another instance.
func (w *writer) leaseLeft() time.Duration {
	until := w.leaseUntil.Load()
	if until == nil {
		return 0
	}
	return until.Sub(w.mono())
}

// fenced reports whether the lease may have passed to another instance.
func (w *writer) fenced() bool { return w.leaseLeft() <= 0 }

// dispatch starts Graph calls while the lease, the budget, the breaker and
// the tenant's pause allow: state changes first, then keep-alives.
func (w *writer) dispatch(ctx context.Context, now time.Time) {
	if w.fenced() {
		return
	}
	for w.inFlight < maxInFlight && !now.Before(w.pausedUntil) && w.breaker.State() != gobreaker.StateOpen {
		from := &w.changes
		userID, ok := from.pop()
		if !ok {
			from = &w.keepAlives
			if userID, ok = from.pop(); !ok {
				return
			}
		}
		t := w.users[userID]
		if t == nil || t.inFlight {
			continue
		}
		want, _ := t.state.Desired(w.e.opts.Rules, now)
		if t.state.Told == nil && t.state.Pending == nil && want == nil {
			continue
		}
		if !w.limiter.AllowN(now, 1) {
			from.pushFront(userID)
			return
		}
		t.inFlight = true
		w.inFlight++
		go w.call(ctx, userID, want, now)
	}
}

// call makes one Graph call and records what Graph was told. The intent
// is written first, so that a crash between the call and the record
// leaves a trace the next writer reconciles.
func (w *writer) call(ctx context.Context, userID string, want *adapters.Pair, at time.Time) {
	exp := w.e.opts.Expiration
	r := result{userID: userID, want: want}
	defer func() { w.results <- r }() // buffered for every call in flight
	if _, _, err := w.e.store.update(ctx, w.tenant.ID, userID, func(s *UserState) bool {
		s.Pending = &Told{Pair: want, At: at}
		return true
	}); err != nil {
		r.err, r.class = err, Retryable
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
	// Record the outcome even while shutting down: Graph has acted.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	r.err = err
	switch {
	case err == nil:
		st, rev, uerr := w.e.store.update(recordCtx, w.tenant.ID, userID, func(s *UserState) bool {
			s.Told, s.Pending = &Told{Pair: want, At: at}, nil
			if want != nil {
				s.Told.Expires = at.Add(exp)
			} else {
				s.Manual = nil // only recorded while there is a session to hide
			}
			return true
		})
		if uerr != nil {
			r.err, r.class = uerr, Retryable
		} else {
			r.updated, r.rev = &st, rev
		}
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		r.class, r.after = Retryable, w.e.opts.BreakerTimeout
	default:
		r.class, r.after = w.e.opts.Classify(err)
		if r.class == Permanent {
			r.updated, r.rev = w.refuse(recordCtx, userID, want, err, at)
		}
	}
}

// refuse records a permanent refusal and dead-letters it; it returns the
// state as written.
func (w *writer) refuse(ctx context.Context, userID string, want *adapters.Pair, err error, at time.Time) (*UserState, uint64) {
	st, rev, uerr := w.e.store.update(ctx, w.tenant.ID, userID, func(s *UserState) bool {
		s.Failed = &Failure{Pair: want, Reason: "graph refused the change", At: at}
		s.Pending = nil
		return true
	})
	if uerr != nil {
		w.log.Error("record refusal", "user", userID, "err", uerr)
	}
	d := DeadLetter{Tenant: w.tenant.ID, UserID: userID, Event: st.LastEvent, Reason: "graph refused the change", GraphError: err.Error(), At: at}
	if derr := w.e.opts.DeadLetter(ctx, d); derr != nil {
		w.log.Error("dead letter", "user", userID, "err", derr)
	}
	if uerr != nil {
		return nil, 0
	}
	return &st, rev
}

// handle takes a call's result back into the loop.
func (w *writer) handle(r result) {
	t := w.users[r.userID]
	if t == nil {
		return
	}
	t.inFlight = false
	now := w.e.opts.Clock.Now()
	if r.updated != nil && r.rev > t.rev {
		t.state, t.rev = *r.updated, r.rev
	}
	switch {
	case r.err == nil:
		t.failures, t.retryAt = 0, time.Time{}
	case r.class == Throttled:
		after := max(r.after, time.Second)
		w.pausedUntil = now.Add(after)
		w.persistPause(w.pausedUntil)
		w.log.Warn("throttled by graph; tenant paused", "retry_after", after)
		w.changes.pushFront(r.userID)
		t.dirty = false
		return
	case r.class == Retryable:
		t.failures++
		delay := w.e.opts.RetryDelay << min(t.failures-1, 6)
		t.retryAt = now.Add(min(max(delay, r.after), time.Minute))
		w.log.Warn("graph call failed; will retry", "user", r.userID, "err", r.err, "retry_at", t.retryAt)
	}
	t.dirty = false
	w.evaluate(r.userID, now)
}

func samePair(a, b *adapters.Pair) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func toldPair(t *Told) *adapters.Pair {
	if t == nil {
		return nil
	}
	return t.Pair
}

// queue is a FIFO of user ids in which a user stands at most once, so a
// busy user can not crowd out the others.
type queue struct {
	items []string
	in    map[string]bool
}

func (q *queue) push(id string) {
	if q.in == nil {
		q.in = map[string]bool{}
	}
	if !q.in[id] {
		q.in[id] = true
		q.items = append(q.items, id)
	}
}

func (q *queue) pushFront(id string) {
	if q.in == nil {
		q.in = map[string]bool{}
	}
	if !q.in[id] {
		q.in[id] = true
		q.items = append([]string{id}, q.items...)
	}
}

func (q *queue) pop() (string, bool) {
	if len(q.items) == 0 {
		return "", false
	}
	id := q.items[0]
	q.items = q.items[1:]
	delete(q.in, id)
	return id, true
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
