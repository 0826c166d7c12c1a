package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// fakeTime is a clock tests move by hand; each lease gets its own view
// (owned), so that a test can see which of a lease's goroutines wait on
// the clock, and move the clock further only once all of them do.
type fakeTime struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
}

// fakeWaiter is one goroutine blocked in Wait: it waits until at, on ctx.
type fakeWaiter struct {
	owner string
	ctx   context.Context
	at    time.Time
	fired chan struct{}
}

type owned struct {
	t     *fakeTime
	owner string
}

func (c owned) Now() time.Time {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	return c.t.now
}

// Wait blocks until advance moves the clock d on, or ctx ends; a wait
// whose ctx has ended no longer counts as a waiter.
func (c owned) Wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	c.t.mu.Lock()
	w := &fakeWaiter{owner: c.owner, ctx: ctx, at: c.t.now.Add(d), fired: make(chan struct{})}
	c.t.waiters = append(c.t.waiters, w)
	c.t.mu.Unlock()
	select {
	case <-w.fired:
		return ctx.Err() == nil
	case <-ctx.Done():
		c.t.mu.Lock()
		defer c.t.mu.Unlock()
		c.t.waiters = slices.DeleteFunc(c.t.waiters, func(o *fakeWaiter) bool { return o == w })
		return false
	}
}

// advance moves the clock by d and ends the waits that are due.
func (f *fakeTime) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	f.waiters = slices.DeleteFunc(f.waiters, func(w *fakeWaiter) bool {
		if w.at.After(f.now) {
			return false
		}
		close(w.fired)
		return true
	})
}

// waiting counts the goroutines of owner blocked in Wait on a live
// context: those waiting on ctx (Hold's own context), and the others
// (the fence and the renewals, on the work's context).
func (f *fakeTime) waiting(owner string, ctx context.Context) (onCtx, others int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.waiters {
		switch {
		case w.owner != owner || w.ctx.Err() != nil:
		case w.ctx == ctx:
			onCtx++
		default:
			others++
		}
	}
	return onCtx, others
}

// partitionKV is a lease bucket that, once cut, answers nothing: every
// call hangs until its context ends, as across a network partition.
type partitionKV struct {
	jetstream.KeyValue
	cut atomic.Bool
	// busy counts the calls under way.
	busy atomic.Int32
	// wrote is the fake time of the last successful Create or Update.
	clock owned
	wrote atomic.Pointer[time.Time]
}

func (k *partitionKV) written(rev uint64, err error) (uint64, error) {
	if err == nil {
		now := k.clock.Now()
		k.wrote.Store(&now)
	}
	return rev, err
}

func (k *partitionKV) hang(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func (k *partitionKV) Create(ctx context.Context, key string, v []byte, o ...jetstream.KVCreateOpt) (uint64, error) {
	k.busy.Add(1)
	defer k.busy.Add(-1)
	if k.cut.Load() {
		return 0, k.hang(ctx)
	}
	return k.written(k.KeyValue.Create(ctx, key, v, o...))
}

func (k *partitionKV) Update(ctx context.Context, key string, v []byte, rev uint64) (uint64, error) {
	k.busy.Add(1)
	defer k.busy.Add(-1)
	if k.cut.Load() {
		return 0, k.hang(ctx)
	}
	return k.written(k.KeyValue.Update(ctx, key, v, rev))
}

func (k *partitionKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	k.busy.Add(1)
	defer k.busy.Add(-1)
	if k.cut.Load() {
		return nil, k.hang(ctx)
	}
	return k.KeyValue.Get(ctx, key)
}

func (k *partitionKV) Delete(ctx context.Context, key string, o ...jetstream.KVDeleteOpt) error {
	k.busy.Add(1)
	defer k.busy.Add(-1)
	if k.cut.Load() {
		return k.hang(ctx)
	}
	return k.KeyValue.Delete(ctx, key, o...)
}

// holder is one instance competing for the lease in a test, with what
// its work saw, in fake time.
type holder struct {
	name    string
	lease   *Lease
	nc      *nats.Conn
	kv      *partitionKV
	ctx     context.Context // Hold's
	cancel  func()
	done    chan struct{}
	quit    chan struct{} // closed: the work returns an error
	mu      sync.Mutex
	started []time.Time
	ended   []time.Time
}

// TestTakeoverAndFence is the lease's protocol, once for every holder
// (the writers, the connect-out sources, the watchers): with real NATS and
// a fake clock, instance a holds the key, b contends, then a stops in one
// of the ways an instance stops. In every case b acts only after a has
// stopped acting, and never while a's lease counts as held; a released
// lease is taken at once, a silent holder's after three quarters of the
// TTL and within the TTL, and a holder that can not renew stops at its
// fence, before anyone may take over.
func TestTakeoverAndFence(t *testing.T) {
	const ttl = time.Hour // the bucket's own TTL (real time) never runs out here
	step := ttl / 60
	for _, tc := range []struct {
		name string
		stop func(t *testing.T, a *holder)
		// atOnce: b takes the key without waiting for a takeover.
		atOnce bool
		// fenced: a stops acting by its fence, not when it stops.
		fenced bool
	}{
		{name: "released", stop: func(t *testing.T, a *holder) { a.cancel(); <-a.done }, atOnce: true},
		// The work's return is waited for: the clock must not move on
		// while a has yet to see quit (no wait on the clock says so).
		{name: "work stopped", stop: func(t *testing.T, a *holder) {
			close(a.quit)
			testpoll.Until(t, "a's work to return", func() bool { a.mu.Lock(); defer a.mu.Unlock(); return len(a.ended) > 0 })
		}, atOnce: true},
		{name: "dead", stop: func(t *testing.T, a *holder) { a.nc.Close(); a.cancel(); <-a.done }},
		{name: "connection closed", stop: func(t *testing.T, a *holder) { a.nc.Close() }, fenced: true},
		{name: "partitioned", stop: func(t *testing.T, a *holder) { a.kv.cut.Store(true) }, fenced: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := natstest.Server(t)
			clock := &fakeTime{now: time.Date(2024, 5, 6, 9, 0, 0, 0, time.UTC)}
			var overlap atomic.Value
			var a, b *holder
			start := func(name string, other **holder) *holder {
				// Real-time timeouts far beyond what a busy machine takes
				// (the defaults, 2 s to connect and 5 s a request, are not).
				nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(0), nats.Timeout(time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(nc.Close)
				js, _ := jetstream.New(nc, jetstream.WithDefaultTimeout(time.Minute))
				kv, err := Open(context.Background(), js, ttl, 1)
				if err != nil {
					t.Fatal(err)
				}
				h := &holder{name: name, nc: nc, kv: &partitionKV{KeyValue: kv, clock: owned{clock, ""}}, done: make(chan struct{}), quit: make(chan struct{})}
				h.lease = New(h.kv, "tenant.contoso", name, ttl, owned{clock, name}, nil)
				ctx, cancel := context.WithCancel(context.Background())
				h.ctx, h.cancel = ctx, cancel
				go func() {
					defer close(h.done)
					h.lease.Hold(ctx, func(ctx context.Context) error {
						if o := *other; o != nil && o.lease.Held() {
							overlap.Store(fmt.Sprintf("%s began to act at %s while the other still held the lease", name, owned{clock, ""}.Now()))
						}
						h.mu.Lock()
						h.started = append(h.started, owned{clock, ""}.Now())
						h.mu.Unlock()
						var err error
						select {
						case <-ctx.Done():
						case <-h.quit:
							err = errors.New("quit")
						}
						h.mu.Lock()
						h.ended = append(h.ended, owned{clock, ""}.Now())
						h.mu.Unlock()
						return err
					})
				}()
				t.Cleanup(func() { cancel(); <-h.done })
				return h
			}
			acting := func(h *holder) (bool, []time.Time, []time.Time) {
				h.mu.Lock()
				defer h.mu.Unlock()
				return len(h.started) > len(h.ended), append([]time.Time(nil), h.started...), append([]time.Time(nil), h.ended...)
			}
			// settled: every goroutine of h's has done all it must at the
			// current fake time, and waits on the clock, on the work's
			// context or on a cut bucket; only then may the clock move on,
			// so that each wait ends at the fake time it is due.
			settled := func(h *holder) bool {
				select {
				case <-h.done:
					return true
				default:
				}
				on, _, _ := acting(h)
				onHold, onWork := clock.waiting(h.name, h.ctx)
				hung := h.kv.cut.Load() && h.kv.busy.Load() > 0
				if on { // the fence and the renewals wait, or one renewal hangs
					return onHold == 0 && (onWork == 2 || onWork == 1 && hung)
				}
				return onWork == 0 && (onHold == 1 || onHold == 0 && hung)
			}
			a = start("a", &b)
			testpoll.Until(t, "a to act, its fence and its renewals waiting on the clock", func() bool { on, _, _ := acting(a); return on && a.lease.Held() && settled(a) })
			b = start("b", &a)
			testpoll.Until(t, "b to contend", func() bool { return settled(b) })
			// Let a renew a few times while b watches.
			for range 30 {
				clock.advance(step)
				testpoll.Until(t, "both to settle", func() bool { return settled(a) && settled(b) })
			}
			if on, _, _ := acting(b); on {
				t.Fatal("b acts while a renews the lease")
			}
			now := owned{clock, ""}.Now
			stoppedAt := now()
			tc.stop(t, a)
			testpoll.Until(t, "a and b to settle after a stopped", func() bool { return settled(a) && settled(b) })
			for {
				if on, _, _ := acting(b); on {
					break
				}
				if now().Sub(stoppedAt) > 2*ttl {
					t.Fatal("b never took the lease over")
				}
				clock.advance(step)
				// Each step is taken once both have done what the last one
				// asked: a's fence and b's takeover happen at the fake time
				// they are due.
				testpoll.Until(t, "a and b to settle", func() bool { return settled(a) && settled(b) })
			}
			if o := overlap.Load(); o != nil {
				t.Fatal(o)
			}
			aOn, _, aEnded := acting(a)
			_, bStarted, _ := acting(b)
			if aOn || a.lease.Held() {
				t.Fatal("a still acts after b took over")
			}
			// The fake clock stands still while a renews, so the renewal
			// a's KV last answered was sent at the time it recorded.
			renewed := *a.kv.wrote.Load()
			lastEnd := aEnded[len(aEnded)-1]
			if lastEnd.After(bStarted[0]) {
				t.Fatalf("a stopped acting at %s, after b began at %s", lastEnd, bStarted[0])
			}
			fence := time.Duration(float64(ttl) * fenceFraction)
			if tc.fenced && lastEnd.Sub(renewed) > fence {
				t.Fatalf("a acted %s after its last renewal, past its fence (%s)", lastEnd.Sub(renewed), fence)
			}
			switch took, silent, take := bStarted[0].Sub(stoppedAt), bStarted[0].Sub(renewed), time.Duration(float64(ttl)*takeFraction); {
			case tc.atOnce && took > 2*ttl/contendEvery:
				t.Fatalf("a released lease was taken %s later, not at once", took)
			case !tc.atOnce && silent <= fence:
				t.Fatalf("a silent holder's lease was taken %s after its last renewal, within its fence %s", silent, fence)
			case !tc.atOnce && silent < take:
				t.Fatalf("a silent holder's lease was taken %s after its last renewal, before %s", silent, take)
			case !tc.atOnce && silent > ttl:
				t.Fatalf("a silent holder's lease was taken %s after its last renewal, beyond the TTL %s", silent, ttl)
			}
			t.Logf("b acts %s (fake) after a's last renewal; a stopped acting %s after it", bStarted[0].Sub(renewed), lastEnd.Sub(renewed))
		})
	}
}

// TestSystemClockIsMonotonic: the real clock's readings keep Go's
// monotonic reading ("m=" in their String form), so Left, which subtracts
// them, is untouched by a step of the wall clock.
func TestSystemClockIsMonotonic(t *testing.T) {
	l := New(nil, "k", "i", time.Minute, nil, nil)
	l.extend(l.clock.Now())
	if until := l.until.Load(); !strings.Contains(until.String(), " m=") {
		t.Fatalf("the fence %s has no monotonic reading", until)
	}
	if left := l.Left(); left <= 0 || left > time.Minute {
		t.Fatalf("Left is %s right after a renewal, want up to 40s", left)
	}
}
