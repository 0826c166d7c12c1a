package writer

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// The writer lease is a KV key per tenant naming its holder. The holder
// renews it (compare-and-set on its revision) every third of LeaseTTL and
// writes to Graph only until two thirds of LeaseTTL after its last renewal
// was sent. A contender that sees the key's revision unchanged for three
// quarters of LeaseTTL, by its own clock, takes the key over with
// compare-and-set. A dead holder is therefore replaced within about 0.95
// LeaseTTL of its last renewal, and has stopped writing before that; no
// two hosts' clocks are ever compared. The bucket's TTL removes a lease
// nobody watches.
//
// Both ends are measured on Go's monotonic clock (time.Now readings,
// compared with Sub and Before), never on the wall clock, so a clock step
// on either host moves neither the fence nor the takeover. A Graph call in
// flight is cut off at the fence too (its context's deadline is the
// fence's), so the last request of a deposed holder has left it at least
// (takeFraction - fenceFraction) * LeaseTTL, 0.83 s at the default 10 s,
// before the new holder may send its first: that margin is for the request
// to cross the network. The new holder also starts with an empty token
// bucket and honours a Retry-After its predecessor was given (pause keys,
// below), so the handover adds nothing to the tenant's budget.
const (
	renewEvery    = 3  // renew every LeaseTTL / renewEvery
	contendEvery  = 10 // contenders look every LeaseTTL / contendEvery
	fenceFraction = 2.0 / 3
	takeFraction  = 3.0 / 4
)

// holdTenant competes for the tenant's writer lease and runs the writer
// while this instance holds it. A writer that stops on its own (it can no
// longer follow the users' states) is logged, its lease released so that
// another instance can take the tenant, and this instance competes again
// after a pause.
func (e *Pool) holdTenant(ctx context.Context, t TenantOptions) {
	key := "tenant." + state.TenantToken(t.ID)
	ttl := e.opts.LeaseTTL
	log := e.opts.Logger.With("tenant", t.ID, "instance", e.opts.InstanceID)
	var seenRev uint64
	var seenAt time.Time
	for ctx.Err() == nil {
		sent := time.Now()
		rev, err := e.acquire(ctx, key, &seenRev, &seenAt, log)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("lease", "err", err)
			}
		}
		if rev == 0 {
			sleep(ctx, ttl/contendEvery)
			continue
		}
		log.Info("writer lease acquired")
		writerCtx, stop := context.WithCancel(ctx)
		w := newWriter(e, t)
		w.fenceAt(sent.Add(time.Duration(float64(ttl) * fenceFraction)))
		w.pausedUntil = e.loadPause(ctx, t.ID, log)
		e.mu.Lock()
		e.writers[t.ID] = w
		e.mu.Unlock()
		done := make(chan error, 1)
		go func() { done <- w.run(writerCtx) }()
		stopped, running := e.renew(ctx, key, &rev, w, done, log)
		stop()
		if running {
			<-done
		}
		e.mu.Lock()
		delete(e.writers, t.ID)
		e.mu.Unlock()
		seenRev, seenAt = 0, time.Time{}
		if ctx.Err() != nil || stopped != nil {
			// Hand the tenant over at once rather than after the TTL.
			releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			if err := e.leases.Delete(releaseCtx, key, jetstream.LastRevision(rev)); err != nil {
				log.Warn("writer lease not released; another instance takes over after its TTL", "err", err, "ttl", ttl)
			} else {
				log.Info("writer lease released", "why", releaseReason(ctx))
			}
			cancel()
		}
		if stopped != nil {
			backoff := ttl / renewEvery
			log.Error("writer stopped; lease released, competing again", "err", stopped, "retry_in", backoff)
			sleep(ctx, backoff)
		}
	}
}

// renew keeps the lease while the writer runs. It returns the writer's
// error when the writer stopped on its own (running false), and a nil
// error with running true when ctx ended or the lease was lost.
func (e *Pool) renew(ctx context.Context, key string, rev *uint64, w *writer, done <-chan error, log *slog.Logger) (stopped error, running bool) {
	ttl := e.opts.LeaseTTL
	for {
		timer := time.NewTimer(ttl / renewEvery)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, true
		case err := <-done:
			timer.Stop()
			if ctx.Err() != nil {
				return nil, false
			}
			if err == nil {
				err = errors.New("the writer returned")
			}
			return err, false
		case <-timer.C:
		}
		sent := time.Now()
		// A slow renewal only fences the writer (fenceAt); the lease is
		// lost when the renewal fails or can no longer matter.
		renewCtx, cancel := context.WithTimeout(ctx, ttl)
		next, err := e.leases.Update(renewCtx, key, []byte(e.opts.InstanceID), *rev)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("writer lease lost", "err", err)
			}
			return nil, true
		}
		*rev = next
		w.fenceAt(sent.Add(time.Duration(float64(ttl) * fenceFraction)))
	}
}

// pauseKey is the state bucket's key that keeps a tenant's Retry-After, so
// that the next holder of its lease honours it. It lives beside the user
// states rather than in the lease bucket, whose TTL (the lease's) is often
// shorter than a Retry-After.
func pauseKey(tenant string) string { return "pause." + state.TenantToken(tenant) }

// persistPause records that Graph asked the tenant to wait until until
// (wall-clock time, RFC 3339). A failure is logged: the pause still holds
// in this writer.
func (w *writer) persistPause(until time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := w.e.store.KV().Put(ctx, pauseKey(w.tenant.ID), []byte(until.UTC().Format(time.RFC3339Nano))); err != nil {
		w.log.Error("record the tenant's pause for the next writer", "until", until, "err", err)
	}
}

// loadPause returns until when a Retry-After given to an earlier writer
// of the tenant is still in force, zero otherwise.
func (e *Pool) loadPause(ctx context.Context, tenant string, log *slog.Logger) time.Time {
	getCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	entry, err := e.store.KV().Get(getCtx, pauseKey(tenant))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}
	}
	if err != nil {
		log.Warn("read the tenant's pause", "err", err)
		return time.Time{}
	}
	until, err := time.Parse(time.RFC3339Nano, string(entry.Value()))
	if err != nil {
		log.Warn("undecodable tenant pause", "value", string(entry.Value()), "err", err)
		return time.Time{}
	}
	if !until.After(e.opts.Clock.Now()) {
		return time.Time{}
	}
	log.Warn("tenant paused by a Retry-After given to the previous writer", "until", until)
	return until
}

// acquire tries once to take the lease: it creates the key when there is
// none, and takes it over when its revision has not changed for
// takeFraction of the TTL. It returns the lease's revision, 0 when another
// instance holds it.
func (e *Pool) acquire(ctx context.Context, key string, seenRev *uint64, seenAt *time.Time, log *slog.Logger) (uint64, error) {
	rev, err := e.leases.Create(ctx, key, []byte(e.opts.InstanceID))
	if err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
		return rev, err
	}
	entry, err := e.leases.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil // released or expired just now; try again
	}
	if err != nil {
		return 0, err
	}
	now := time.Now()
	if entry.Revision() != *seenRev {
		*seenRev, *seenAt = entry.Revision(), now
		return 0, nil
	}
	if now.Sub(*seenAt) < time.Duration(float64(e.opts.LeaseTTL)*takeFraction) {
		return 0, nil
	}
	rev, err = e.leases.Update(ctx, key, []byte(e.opts.InstanceID), entry.Revision())
	if err != nil {
		return 0, nil // another contender was quicker, or the holder renewed
	}
	log.Warn("writer lease taken over from a silent holder", "holder", string(entry.Value()))
	return rev, nil
}

// releaseReason says why a held lease is released.
func releaseReason(ctx context.Context) string {
	if ctx.Err() != nil {
		return "stopping"
	}
	return "the writer stopped"
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
