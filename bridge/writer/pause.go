package writer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/bridge/lease"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// holdTenant runs the tenant's writer while this instance holds the
// tenant's lease (package lease): the writer calls Graph only while the
// lease is provably held, and a Graph call in flight is cut off at the
// lease's fence too (its context's deadline is the fence's). The new
// holder starts with an empty token bucket and honours a Retry-After its
// predecessor was given (pause keys, below), so a handover adds nothing to
// the tenant's budget.
func (e *Pool) holdTenant(ctx context.Context, t TenantOptions) {
	log := e.opts.Logger.With("tenant", t.ID)
	l := lease.New(e.leases, "tenant."+state.TenantToken(t.ID), e.opts.InstanceID, e.opts.LeaseTTL, nil, log)
	l.Hold(ctx, func(ctx context.Context) error {
		w := newWriter(e, t)
		w.lease = l
		w.gate.pausedUntil = e.loadPause(ctx, t.ID, log)
		e.mu.Lock()
		e.writers[t.ID] = w
		e.mu.Unlock()
		defer func() {
			e.mu.Lock()
			delete(e.writers, t.ID)
			e.mu.Unlock()
		}()
		if err := w.run(ctx); err != nil {
			return fmt.Errorf("writer stopped: %w", err)
		}
		return nil
	})
}

// pauseKey is the state bucket's key that keeps a tenant's Retry-After, so
// that the next holder of its lease honours it. It lives beside the user
// states rather than in the lease bucket, whose TTL (the lease's) is often
// shorter than a Retry-After.
func pauseKey(tenant string) string { return "pause." + state.TenantToken(tenant) }

// pause holds every call of the tenant back until until, as a 429's
// Retry-After asks, and records the pause for the next writer.
func (w *writer) pause(until time.Time, reason string) {
	if w.gate.pause(until) {
		w.persistPause(until)
	}
	w.budget.quiet(until)
	w.log.Warn(reason+"; tenant paused", "until", until)
}

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
