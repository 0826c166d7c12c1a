// Package lease lets one bridge instance at a time act for a key: a
// tenant's writer ("tenant.<token>"), a connect-out source
// ("source.<name>"), a tenant's watcher ("watch.<tenant>"). Every lease is
// a key of one KV bucket, PRESENCE_LEASES, naming its holder; Hold runs
// the holder's work while the lease is held and cancels it the moment the
// lease is no longer provably held.
//
// The holder renews the key (compare-and-set on its revision) every third
// of the TTL and acts only until two thirds of the TTL after its last
// successful renewal was sent: the fence. A contender that sees the key's
// revision unchanged for three quarters of the TTL, by its own clock,
// takes the key over with compare-and-set. A dead holder is therefore
// replaced within about 0.95 TTL of its last renewal and has stopped
// acting before that; a released key is taken at once; no two hosts'
// clocks are ever compared. The bucket's TTL removes a key nobody renews.
//
// Both ends are measured on a monotonic clock (time.Now readings, compared
// with Sub), never on the wall clock, so a clock step on either host moves
// neither the fence nor the takeover. The margin between them,
// (3/4 - 2/3) TTL, 0.83 s at the default 10 s, is for a deposed holder's
// last request to cross the network.
package lease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/internal/wait"
)

// Bucket is the KV bucket every lease is a key of.
const Bucket = "PRESENCE_LEASES"

const (
	renewEvery    = 3  // the holder renews every TTL / renewEvery
	contendEvery  = 10 // contenders look every TTL / contendEvery
	fenceFraction = 2.0 / 3
	takeFraction  = 3.0 / 4
)

// Open creates or updates the lease bucket, with ttl as its keys' TTL.
func Open(ctx context.Context, js jetstream.JetStream, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "Which bridge acts for each tenant writer, connect-out source and watcher.",
		History: 1, TTL: ttl, Replicas: max(1, replicas), Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", Bucket, err)
	}
	return kv, nil
}

// Clock is the monotonic time a lease measures its fence and takeover
// on, and waits on.
type Clock interface {
	Now() time.Time
	// Wait waits d or until ctx ends, and reports whether ctx is still
	// live.
	Wait(ctx context.Context, d time.Duration) bool
}

// systemClock is the real time; time.Now keeps the monotonic reading that
// Sub then uses.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) Wait(ctx context.Context, d time.Duration) bool {
	return wait.Sleep(ctx, d)
}

// Lease is one key's lease as one instance competes for it.
type Lease struct {
	kv       jetstream.KeyValue
	key      string
	instance string
	ttl      time.Duration
	clock    Clock
	log      *slog.Logger

	// until is the fence: when this instance must stop acting unless the
	// lease is renewed; nil while it does not hold the lease.
	until atomic.Pointer[time.Time]
}

// New returns the lease of key in kv (the bucket Open returns) as
// instance competes for it. A nil clock is the real time, a nil log
// discards.
func New(kv jetstream.KeyValue, key, instance string, ttl time.Duration, clock Clock, log *slog.Logger) *Lease {
	if clock == nil {
		clock = systemClock{}
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Lease{kv: kv, key: key, instance: instance, ttl: ttl, clock: clock, log: log.With("lease", key, "instance", instance)}
}

// Left is how long this instance may still act: zero or less once the
// lease may have passed to another instance.
func (l *Lease) Left() time.Duration {
	until := l.until.Load()
	if until == nil {
		return 0
	}
	return until.Sub(l.clock.Now())
}

// Held reports whether this instance holds the lease now.
func (l *Lease) Held() bool { return l.Left() > 0 }

// Hold competes for the lease until ctx ends, and runs work while it
// holds it. work's context ends when the lease is lost, fenced or ctx
// ends, and Hold waits for work to return before it lets the lease go.
// Work that returns on its own (an error, or nil while its context is
// live) releases the lease, is logged, and Hold competes again after a
// TTL, so that another instance may take the key.
func (l *Lease) Hold(ctx context.Context, work func(context.Context) error) {
	var seenRev uint64
	var seenAt time.Time
	for ctx.Err() == nil {
		sent := l.clock.Now()
		rev, err := l.acquire(ctx, &seenRev, &seenAt)
		if err != nil && ctx.Err() == nil {
			l.log.Warn("lease", "err", err)
		}
		if rev == 0 {
			l.clock.Wait(ctx, l.ttl/contendEvery)
			continue
		}
		seenRev, seenAt = 0, time.Time{}
		l.extend(sent)
		l.log.Info("lease acquired")
		if err := l.run(ctx, rev, work); err != nil {
			l.log.Error("work stopped; lease released, competing again", "err", err, "retry_in", l.ttl)
			l.clock.Wait(ctx, l.ttl)
		}
	}
}

// run runs work while it renews the lease at rev, and releases the lease
// when work has returned. It returns work's error when work stopped on
// its own, nil when ctx ended or the lease was lost or fenced. Each of
// its goroutines (the work, the fence, the renewals) waits on at most
// one timer at a time.
func (l *Lease) run(ctx context.Context, rev uint64, work func(context.Context) error) error {
	// The fence ends fenceCtx: the work and a renewal under way. The
	// work's own return ends workCtx only, so that a renewal under way
	// completes and the release below deletes the revision it wrote.
	fenceCtx, fenceStop := context.WithCancel(ctx)
	defer fenceStop()
	workCtx, stop := context.WithCancel(fenceCtx)
	defer stop()
	fenced := make(chan struct{})
	go func() { defer close(fenced); l.fence(workCtx, fenceStop) }()
	renewed := make(chan uint64, 1)
	go func() { renewed <- l.renew(workCtx, fenceCtx, stop, rev) }()
	stopped := work(workCtx)
	switch {
	case workCtx.Err() != nil:
		stopped = nil // it returned because its context ended
	case stopped == nil:
		stopped = errors.New("the work returned")
	}
	stop()
	rev = <-renewed
	<-fenced
	l.until.Store(nil)
	if ctx.Err() != nil {
		stopped = nil // stopped with ctx, not on its own
	}
	// Hand the key over at once rather than after the TTL. Only the
	// revision this instance wrote is deleted, so a key another instance
	// has taken over stays.
	releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := l.kv.Delete(releaseCtx, l.key, jetstream.LastRevision(rev)); err == nil {
		why := "lost"
		switch {
		case ctx.Err() != nil:
			why = "stopping"
		case stopped != nil:
			why = "work stopped"
		}
		l.log.Info("lease released", "why", why)
	}
	return stopped
}

// renew renews the lease at rev every renewEvery-th of the TTL until ctx
// ends, and moves the fence after each renewal; a renewal under way ends
// with fenceCtx (or its timeout), not with ctx. When a renewal fails it
// drops the fence and ends the work (stop). It returns the last revision
// it wrote.
func (l *Lease) renew(ctx, fenceCtx context.Context, stop func(), rev uint64) uint64 {
	for l.clock.Wait(ctx, l.ttl/renewEvery) {
		sent := l.clock.Now()
		renewCtx, cancel := context.WithTimeout(fenceCtx, l.ttl/renewEvery)
		next, err := l.kv.Update(renewCtx, l.key, []byte(l.instance), rev)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("lease lost; stopping", "err", err)
			}
			l.until.Store(nil)
			stop()
			return rev
		}
		rev = next
		if ctx.Err() == nil {
			l.extend(sent)
		}
	}
	return rev
}

// fence ends the work (stop) once the lease's time left runs out, until
// ctx ends.
func (l *Lease) fence(ctx context.Context, stop func()) {
	for {
		left := l.Left()
		if left <= 0 {
			if ctx.Err() == nil {
				l.log.Warn("lease not renewed in time; stopping")
			}
			stop()
			return
		}
		if !l.clock.Wait(ctx, left) {
			return
		}
	}
}

// extend moves the fence to a fenceFraction of the TTL after sent, when
// the renewal (or creation) that succeeded was sent.
func (l *Lease) extend(sent time.Time) {
	until := sent.Add(time.Duration(float64(l.ttl) * fenceFraction))
	l.until.Store(&until)
}

// acquire tries once to take the lease: it creates the key when there is
// none, and takes it over when its revision has not changed for
// takeFraction of the TTL. It returns the key's revision, 0 when another
// instance holds it.
func (l *Lease) acquire(ctx context.Context, seenRev *uint64, seenAt *time.Time) (uint64, error) {
	rev, err := l.kv.Create(ctx, l.key, []byte(l.instance))
	if err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
		return rev, err
	}
	entry, err := l.kv.Get(ctx, l.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil // released or expired just now; try again
	}
	if err != nil {
		return 0, err
	}
	now := l.clock.Now()
	if entry.Revision() != *seenRev {
		*seenRev, *seenAt = entry.Revision(), now
		return 0, nil
	}
	if now.Sub(*seenAt) < time.Duration(float64(l.ttl)*takeFraction) {
		return 0, nil
	}
	rev, err = l.kv.Update(ctx, l.key, []byte(l.instance), entry.Revision())
	if err != nil {
		return 0, nil // another contender was quicker, or the holder renewed
	}
	l.log.Warn("lease taken over from a silent holder", "holder", string(entry.Value()))
	return rev, nil
}
