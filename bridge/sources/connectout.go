package sources

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
	"github.com/presence-bridge/presence-bridge/bridge/lease"
)

// Connect-out sources (a PBX's dialog subscriptions, a calendar's polls)
// run on one bridge at a time, each under its lease ("source.<name>",
// package lease): a bridge stopping hands a source over at once, a dead
// one's is taken over within about a lease TTL, and a holder that can
// not renew stops the source before another may start it.
//
// One bridge rather than all of them, because every bridge running every
// source would multiply the load on the PBX (a subscription per entity per
// bridge) and on the calendar servers for nothing.

// Metrics is what the runners report.
type Metrics interface {
	SourceRunning(source string, on bool)
	SourceEntities(source string, live, total int)
}

// Options configure Start.
type Options struct {
	// Sources are all the configured sources; Start runs those that
	// connect out.
	Sources []config.Source
	// Leases is the lease bucket (lease.Open); TTL its keys' TTL.
	Leases   jetstream.KeyValue
	TTL      time.Duration
	Instance string
	// Publish takes the events the sources produce.
	Publish adapters.Publish
	Metrics Metrics
	Log     *slog.Logger
}

// Runners run the connect-out sources whose leases this bridge holds.
type Runners struct {
	opts    Options
	mu      sync.Mutex
	running map[string]bool
	stop    func()
}

// Start checks that every connect-out source can be built, then competes
// for the lease of each and runs those it holds until Stop. It returns
// nil runners when no source connects out.
func Start(opts Options) (*Runners, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	opts.Log = opts.Log.With("component", "source")
	var sources []config.Source
	for i, s := range opts.Sources {
		if !catalog.ConnectsOut(s.Type) {
			continue
		}
		if _, err := build(s, opts.Log); err != nil {
			return nil, fmt.Errorf("sources[%d] (%s): %w", i, s.Name, err)
		}
		sources = append(sources, s)
	}
	if len(sources) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runners{opts: opts, running: map[string]bool{}}
	var wg sync.WaitGroup
	for _, s := range sources {
		l := lease.New(opts.Leases, "source."+s.Name, opts.Instance, opts.TTL, nil, opts.Log.With("source", s.Name))
		wg.Go(func() { l.Hold(ctx, func(ctx context.Context) error { return r.run(ctx, s) }) })
	}
	r.stop = func() { cancel(); wg.Wait() }
	return r, nil
}

// Stop stops the sources and releases their leases. Stopping nil
// runners does nothing.
func (r *Runners) Stop() {
	if r != nil {
		r.stop()
	}
}

// Running reports whether this bridge currently runs the source named
// name.
func (r *Runners) Running(name string) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running[name]
}

// run runs the source until ctx ends (nil) or it stops on its own (its
// error), counting the entities it watches every third of the TTL.
func (r *Runners) run(ctx context.Context, s config.Source) error {
	runner, err := build(s, r.opts.Log)
	if err != nil {
		return err
	}
	r.set(s.Name, true)
	defer r.set(s.Name, false)
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx, r.opts.Publish) }()
	ticker := time.NewTicker(r.opts.TTL / 3)
	defer ticker.Stop()
	for {
		select {
		case err := <-done:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("the source returned")
			}
			return err
		case <-ticker.C:
			if live, total, ok := catalog.Watched(runner); ok {
				r.opts.Metrics.SourceEntities(s.Name, live, total)
			}
		}
	}
}

func (r *Runners) set(name string, on bool) {
	r.mu.Lock()
	r.running[name] = on
	r.mu.Unlock()
	r.opts.Metrics.SourceRunning(name, on)
	if !on {
		r.opts.Metrics.SourceEntities(name, 0, -1)
	}
}

func build(s config.Source, log *slog.Logger) (adapters.Runner, error) {
	return catalog.Runner(catalog.RunnerConfig{Name: s.Name, Type: s.Type, Settings: s.Settings(), Logger: log})
}
