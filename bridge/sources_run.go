package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/catalog"
	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// Connect-out sources (a PBX's dialog subscriptions, a calendar's polls)
// run on one bridge at a time. Each has a key in the writers' lease bucket
// ("source.<name>"), created by the bridge that runs it and renewed with
// compare-and-set every third of presence.lease_ttl. The bucket's TTL (the
// lease TTL) removes the key of a bridge that died, and the others, which
// try to create it every tenth of the TTL, take the source over within
// about 1.1 TTL; a bridge stopping hands it over at once. A holder whose
// renewal fails, or takes longer than a third of the TTL, stops the
// source. A handover may still overlap for a moment: the sources' event
// ids are deterministic, so JetStream stores the events both publish
// once, and applying one again changes nothing.
//
// One bridge rather than all of them, because every bridge running every
// source would multiply the load on the PBX (a subscription per entity per
// bridge) and on the calendar servers for nothing.

// leaseBucket is the writers' lease bucket (writer.Options' default),
// created with them.
const leaseBucket = "PRESENCE_LEASES"

const (
	sourceRenewEvery   = 3  // renew every LeaseTTL / sourceRenewEvery
	sourceContendEvery = 10 // try to take a free lease every LeaseTTL / sourceContendEvery
)

// sourceRunners runs the connect-out sources whose leases this bridge
// holds.
type sourceRunners struct {
	mu      sync.Mutex
	running map[string]bool
	stop    func()
}

// startSources competes for the lease of every connect-out source and
// runs those it holds, publishing into the event log, until stopSources.
// It checks first that every such source can be built.
func (b *Bridge) startSources(ctx context.Context, instance string) error {
	var sources []config.Source
	for i, s := range b.cfg.Sources {
		if !catalog.ConnectsOut(s.Type) {
			continue
		}
		if _, err := b.buildRunner(s); err != nil {
			return fmt.Errorf("sources[%d] (%s): %w", i, s.Name, err)
		}
		sources = append(sources, s)
	}
	if len(sources) == 0 {
		return nil
	}
	leases, err := b.events.JetStream().KeyValue(ctx, leaseBucket)
	if err != nil {
		return fmt.Errorf("source leases: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	r := &sourceRunners{running: map[string]bool{}}
	for _, s := range sources {
		wg.Go(func() { b.holdSource(runCtx, r, leases, s, instance) })
	}
	r.stop = func() { cancel(); wg.Wait() }
	b.sources = r
	return nil
}

// stopSources stops the sources this bridge runs and releases their
// leases. b.mu must be held.
func (b *Bridge) stopSources() {
	if b.sources != nil {
		b.sources.stop()
		b.sources = nil
	}
}

// Running reports whether this bridge currently runs the connect-out
// source named name.
func (b *Bridge) Running(name string) bool {
	b.mu.Lock()
	r := b.sources
	b.mu.Unlock()
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running[name]
}

func (b *Bridge) buildRunner(s config.Source) (adapters.Runner, error) {
	return catalog.Runner(catalog.RunnerConfig{Name: s.Name, Type: s.Type, Settings: s.Settings(), Logger: b.log.With("component", "source")})
}

// holdSource takes the source's lease whenever it is free and runs the
// source while it holds it, until ctx ends.
func (b *Bridge) holdSource(ctx context.Context, r *sourceRunners, leases jetstream.KeyValue, s config.Source, instance string) {
	key := "source." + s.Name
	ttl := b.cfg.Presence.LeaseTTL
	log := b.log.With("source", s.Name, "instance", instance)
	for ctx.Err() == nil {
		rev, err := leases.Create(ctx, key, []byte(instance))
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
				log.Warn("source lease", "err", err)
			}
			sleep(ctx, ttl/sourceContendEvery)
			continue
		}
		log.Info("source lease acquired; running the source")
		b.setRunning(r, s.Name, true)
		err = b.runHeld(ctx, leases, key, rev, s, instance, log)
		b.setRunning(r, s.Name, false)
		b.metrics.SourceEntities(s.Name, 0, -1)
		if err != nil {
			log.Error("source stopped; lease released, competing again", "err", err, "retry_in", ttl)
			sleep(ctx, ttl)
		}
	}
}

func (b *Bridge) setRunning(r *sourceRunners, name string, on bool) {
	r.mu.Lock()
	r.running[name] = on
	r.mu.Unlock()
	b.metrics.SourceRunning(name, on)
}

// runHeld runs the source while the lease at rev is renewed. It returns
// when ctx ends or the lease is lost (nil), or when the source stopped on
// its own (its error); in the first and last case it releases the lease.
func (b *Bridge) runHeld(ctx context.Context, leases jetstream.KeyValue, key string, rev uint64, s config.Source, instance string, log *slog.Logger) error {
	ttl := b.cfg.Presence.LeaseTTL
	release := func() {
		releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = leases.Delete(releaseCtx, key, jetstream.LastRevision(rev))
		cancel()
	}
	runner, err := b.buildRunner(s)
	if err != nil {
		release()
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- runner.Run(runCtx, b.events.Publish) }()
	ticker := time.NewTicker(ttl / sourceRenewEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			stop()
			<-done
			release()
			return nil
		case err := <-done:
			release()
			if err == nil {
				err = errors.New("the source returned")
			}
			return err
		case <-ticker.C:
		}
		b.countWatched(s.Name, runner)
		renewCtx, cancel := context.WithTimeout(ctx, ttl/sourceRenewEvery)
		next, err := leases.Update(renewCtx, key, []byte(instance), rev)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("source lease lost; stopping the source", "err", err)
			}
			stop()
			<-done
			return nil
		}
		rev = next
	}
}

// countWatched updates the metric of the entities the source watches.
func (b *Bridge) countWatched(name string, r adapters.Runner) {
	live, total, ok := catalog.Watched(r)
	if !ok {
		return
	}
	b.metrics.SourceEntities(name, live, total)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
