package engine

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// holdTenant competes for the tenant's writer lease and runs the writer
// while this instance holds it. The lease is a KV key in a bucket whose
// entries expire after LeaseTTL: the holder renews it every third of that,
// and when the holder dies the key expires and another instance creates it.
func (e *Engine) holdTenant(ctx context.Context, t TenantOptions) {
	key := "tenant." + tenantToken(t.ID)
	renew := e.opts.LeaseTTL / 3
	// Contenders look often, so that a dead holder's tenant is taken over
	// soon after its lease expires.
	contend := e.opts.LeaseTTL / 10
	log := e.opts.Logger.With("tenant", t.ID, "instance", e.opts.InstanceID)
	for ctx.Err() == nil {
		rev, err := e.leases.Create(ctx, key, []byte(e.opts.InstanceID))
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
				log.Warn("lease", "err", err)
			}
			sleep(ctx, contend)
			continue
		}
		log.Info("writer lease acquired")
		writerCtx, stop := context.WithCancel(ctx)
		w := newWriter(e, t)
		e.mu.Lock()
		e.writers[t.ID] = w
		e.mu.Unlock()
		done := make(chan struct{})
		go func() { defer close(done); w.run(writerCtx) }()
		for {
			sleep(ctx, renew)
			if ctx.Err() != nil {
				break
			}
			rev, err = e.leases.Update(ctx, key, []byte(e.opts.InstanceID), rev)
			if err != nil {
				log.Warn("writer lease lost", "err", err)
				break
			}
		}
		stop()
		<-done
		e.mu.Lock()
		delete(e.writers, t.ID)
		e.mu.Unlock()
		if ctx.Err() != nil {
			// Hand the tenant over at once rather than after the TTL.
			releaseCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = e.leases.Delete(releaseCtx, key, jetstream.LastRevision(rev))
			cancel()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
