package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
const (
	renewEvery    = 3  // renew every LeaseTTL / renewEvery
	contendEvery  = 10 // contenders look every LeaseTTL / contendEvery
	fenceFraction = 2.0 / 3
	takeFraction  = 3.0 / 4
)

// holdTenant competes for the tenant's writer lease and runs the writer
// while this instance holds it.
func (e *Engine) holdTenant(ctx context.Context, t TenantOptions) {
	key := "tenant." + tenantToken(t.ID)
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
		e.mu.Lock()
		e.writers[t.ID] = w
		e.mu.Unlock()
		done := make(chan struct{})
		go func() { defer close(done); w.run(writerCtx) }()
		for {
			sleep(ctx, ttl/renewEvery)
			if ctx.Err() != nil {
				break
			}
			sent = time.Now()
			// A slow renewal only fences the writer (fenceAt); the lease
			// is lost when the renewal fails or can no longer matter.
			renewCtx, cancel := context.WithTimeout(ctx, ttl)
			rev, err = e.leases.Update(renewCtx, key, []byte(e.opts.InstanceID), rev)
			cancel()
			if err != nil {
				log.Warn("writer lease lost", "err", err)
				break
			}
			w.fenceAt(sent.Add(time.Duration(float64(ttl) * fenceFraction)))
		}
		stop()
		<-done
		e.mu.Lock()
		delete(e.writers, t.ID)
		e.mu.Unlock()
		seenRev, seenAt = 0, time.Time{}
		if ctx.Err() != nil {
			// Hand the tenant over at once rather than after the TTL.
			releaseCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = e.leases.Delete(releaseCtx, key, jetstream.LastRevision(rev))
			cancel()
		}
	}
}

// acquire tries once to take the lease: it creates the key when there is
// none, and takes it over when its revision has not changed for
// takeFraction of the TTL. It returns the lease's revision, 0 when another
// instance holds it.
func (e *Engine) acquire(ctx context.Context, key string, seenRev *uint64, seenAt *time.Time, log *slog.Logger) (uint64, error) {
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

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
