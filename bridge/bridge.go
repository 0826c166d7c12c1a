// Package bridge is the presence bridge's runtime, embeddable in tests:
// New builds it from a configuration, Start brings up NATS, the Graph
// emulator when configured, the worker and the HTTP server, and Stop takes
// them down again in reverse order. With external NATS servers that can
// not be reached at start, the bridge serves HTTP anyway (not ready, ingest
// answers 503) and connects when they come. It is wiring only: each
// stage's job lives in the stage's package (sources, subscriptions,
// identity, graph, writer, lease, ...), each maps its own configuration
// (FromConfig), the listeners are bridge/server's and the metrics
// bridge/metrics'.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/admin"
	"github.com/presence-bridge/presence-bridge/bridge/apply"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
	"github.com/presence-bridge/presence-bridge/bridge/graph"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/identity"
	"github.com/presence-bridge/presence-bridge/bridge/lease"
	"github.com/presence-bridge/presence-bridge/bridge/lookup"
	"github.com/presence-bridge/presence-bridge/bridge/metrics"
	"github.com/presence-bridge/presence-bridge/bridge/server"
	"github.com/presence-bridge/presence-bridge/bridge/sources"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/bridge/subscriptions"
	"github.com/presence-bridge/presence-bridge/bridge/twoway"
	"github.com/presence-bridge/presence-bridge/bridge/writer"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

// Bridge is one running presence bridge.
type Bridge struct {
	cfg     *config.Config
	log     *slog.Logger
	metrics *metrics.Metrics
	clock   state.Clock // nil: the real time
	// version and revision label presence_bridge_build_info (WithVersion).
	version, revision string

	emulator *emulator.Emulator
	events   *eventlog.Queue
	graph    *graph.Tenants
	http     *server.Server // the public and operations listeners

	// mu serialises bringing the pipeline's stages up (connect) with
	// taking them down (Stop); running says they run, for readers that do
	// not take mu.
	mu          sync.Mutex
	running     atomic.Bool
	state       *state.Store
	history     *history.Store
	writers     *writer.Pool
	rules       state.Rules
	directory   *identity.Directory
	lookups     *identity.Lookups // each tenant's lookup budget and breaker, for user, phone and calendar reads
	stopWriters func()
	stopConsume func()
	connectOut  *sources.Runners             // nil when no source connects out
	teams       atomic.Pointer[twoway.Teams] // the Teams watchers and outputs; nil until the worker runs
	// views are the lookup API's presence views, which the watchers keep;
	// entries is the directory they resolve keys such as ext:1001 with.
	views   *lookup.Views
	entries atomic.Pointer[map[string]string]
	// live is the webhook sources Reload swaps, nil until HTTP is up;
	// reloadMu serialises Reload with setting it.
	reloadMu sync.Mutex
	live     *sources.Live

	stopConnecting func(context.Context) error // ends eventlog.KeepConnecting
	stopOnce       sync.Once
	stopErr        error

	// calendarSubs keeps graphcalendar sources' subscriptions; nil when
	// no source asks for it.
	calendarSubs *subscriptions.Managed
}

// Option changes how New builds a Bridge.
type Option func(*Bridge)

// WithClock makes the state and writer stages, and the in-process Graph emulator when one
// is configured, tell time by c instead of the real time, so that tests
// can move hours ahead with one fake clock. Leases, retries and timeouts
// still run on the real time.
func WithClock(c state.Clock) Option { return func(b *Bridge) { b.clock = c } }

// WithVersion sets the version and revision the metrics report; by
// default they come from the Go build information.
func WithVersion(version, revision string) Option {
	return func(b *Bridge) { b.version, b.revision = version, revision }
}

// New returns a bridge for cfg; nothing runs until Start.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) (*Bridge, error) {
	if cfg == nil {
		return nil, errors.New("bridge: nil config")
	}
	if log == nil {
		log = slog.Default()
	}
	b := &Bridge{cfg: cfg, log: log}
	for _, o := range opts {
		o(b)
	}
	b.metrics = metrics.FromConfig(cfg, b.version, b.revision, func() metrics.Queue { return b.events }, func() []writer.TenantStatus {
		if _, w, _ := b.runningStages(); w != nil {
			return w.Status()
		}
		return nil
	}, b.watchState, b.outputState)
	b.entries.Store(&cfg.Directory)
	b.views = lookup.NewViews(lookup.Options{Resolve: twoway.DirectoryResolver(func() map[string]string { return *b.entries.Load() })})
	return b, nil
}

// Start brings the bridge up and returns once HTTP listens. With the
// embedded NATS server, or external servers that answer, the stages and the
// worker run too when it returns. When external servers can not be reached
// (or JetStream refuses to set up the streams), Start still returns nil:
// /readyz and ingest answer 503 saying why, and the bridge keeps trying in
// the background until it connects and becomes ready; Ready tells when.
// On error, whatever was started is stopped.
func (b *Bridge) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			_ = b.Stop(context.Background())
		}
	}()
	var emulatorURL string
	b.emulator, emulatorURL, err = graph.StartEmulator(ctx, b.cfg.Graph.Emulator, b.clock, b.log)
	if err != nil {
		return err
	}
	b.graph, err = graph.New(b.cfg.Graph, emulatorURL, graph.WithObserver(b.metrics.GraphRequest))
	if err != nil {
		return err
	}
	b.calendarSubs = subscriptions.FromConfig(b.cfg.Sources, subscriptions.Options{
		Client: func(tenant string) (subscriptions.Client, error) { return b.graph.Client(tenant) },
		Now:    b.now,
		Log:    b.log.With("component", "calendar-subscriptions"),
	})
	b.directory, b.lookups = identity.FromConfig(b.cfg, b.graph.LookupUser,
		func(tenant string) (identity.UserFinder, error) { return b.graph.Client(tenant) }, b.log.With("component", "identity"))
	b.events = eventlog.New(b.cfg.NATS, max(1, b.cfg.Worker.Lanes*b.cfg.Worker.LaneDepth/2), b.log.With("component", "nats"))
	connectErr := b.connect(ctx)
	if connectErr != nil && b.cfg.NATS.Embedded {
		return connectErr // nothing outside the process to wait for
	}
	if err := b.startHTTP(); err != nil {
		return err
	}
	if connectErr != nil {
		b.log.Warn("NATS not available; serving HTTP (not ready, ingest answers 503) and retrying", "err", connectErr)
		b.stopConnecting = eventlog.KeepConnecting(context.WithoutCancel(ctx), b.connect, b.log)
	}
	return nil
}

// connect connects to NATS and starts the apply, state and writer stages. On
// failure nothing of it is left running, and it may be tried again.
func (b *Bridge) connect(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.events.Connect(ctx); err != nil {
		return err
	}
	if err := b.startWorker(ctx); err != nil {
		b.stopWorker(context.Background())
		b.events.Close()
		return err
	}
	b.running.Store(true)
	return nil
}

// Ready reports whether the bridge takes and processes events: NATS
// connected, JetStream with room, the apply and writer stages running. The
// error says what is missing; /readyz answers it.
func (b *Bridge) Ready(ctx context.Context) error {
	if b.events == nil {
		return errors.New("not started")
	}
	if err := b.events.Ready(ctx); err != nil {
		return err
	}
	if !b.running.Load() {
		return errors.New("NATS is connected; the apply and writer stages are starting")
	}
	return nil
}

func (b *Bridge) startWorker(ctx context.Context) error {
	rules, err := b.cfg.Rules()
	if err != nil {
		return err
	}
	b.rules = rules
	b.state, err = state.Open(ctx, b.events.JetStream(), state.Options{
		Replicas:     b.cfg.NATS.Replicas,
		Rules:        rules,
		MaxStateSize: b.cfg.Presence.MaxStateSize,
		Clock:        b.clock,
	})
	if err != nil {
		return err
	}
	b.history, err = history.Open(ctx, b.events.JetStream(), history.FromConfig(b.cfg, b.log.With("component", "history")))
	if err != nil {
		return err
	}
	if !b.cfg.Worker.Enabled {
		b.log.Info("worker.enabled is false: this bridge takes events in and applies none")
		return nil
	}
	hostname, _ := os.Hostname()
	instance := fmt.Sprintf("%s-%d-%d", hostname, os.Getpid(), time.Now().UnixNano())
	b.writers, err = writer.New(ctx, writer.FromConfig(b.cfg, writer.Options{
		JetStream:    b.events.JetStream(),
		State:        b.state,
		InstanceID:   instance,
		Graph:        b.graph,
		DeadLetter:   writer.StoreDeadLetters(b.events, b.metrics.GraphRefused),
		Rules:        rules,
		Clock:        b.clock,
		Logger:       b.log.With("component", "writer"),
		History:      b.history,
		EventToGraph: b.metrics.EventToGraph,
		EventOutcome: b.metrics.EventOutcome,
	}))
	if err != nil {
		return err
	}
	writersCtx, stopWriters := context.WithCancel(context.Background())
	writersDone := make(chan struct{})
	go func() { defer close(writersDone); _ = b.writers.Run(writersCtx) }()
	b.stopWriters = func() { stopWriters(); <-writersDone }
	b.calendarSubs.Start(b.writers.Writing)

	w := apply.New(apply.FromConfig(b.cfg, apply.Options{
		Resolver:    identity.Resolver{Directory: b.directory},
		Applier:     b.state,
		History:     b.history,
		Now:         b.now,
		Untimed:     b.metrics.EventOutcome,
		DeadLetters: b.events,
		// Graph calendar notifications are read here, not when they come.
		CalendarReaders: b.graph.CalendarReaders(b.cfg.Sources, b.lookups),
		Log:             b.log.With("component", "worker"),
		Count:           b.metrics.EventSettled,
	}))
	leases, err := lease.Open(ctx, b.events.JetStream(), b.cfg.Presence.LeaseTTL, b.cfg.NATS.Replicas)
	if err != nil {
		w.Stop()
		return err
	}
	teams, err := twoway.Start(ctx, twoway.Options{
		Config: b.cfg, JetStream: b.events.JetStream(),
		Graph: b.graph.Client,
		State: b.state, Rules: rules, Directory: b.directory, History: b.history,
		Entries: func() map[string]string { return *b.entries.Load() },
		Leases:  leases, Instance: instance, Views: b.views, Clock: b.clock,
		Log: b.log.With("component", "watch"),
		DeadLetter: func(ctx context.Context, subject, source string, data []byte, reason string) error {
			return b.events.PublishDeadLetter(ctx, eventlog.DeadLetter{Subject: subject, Source: source, Data: data, Reason: reason, At: time.Now()})
		},
	})
	if err != nil {
		w.Stop()
		return err
	}
	b.teams.Store(teams)
	stop, err := b.events.Consume(ctx, b.events.ObserveDelivery(w.Dispatch, b.metrics.Redelivered, b.metrics.EventStored))
	if err != nil {
		w.Stop()
		return err
	}
	// The consumer stops first, so no message comes into a lane after the
	// lanes stop.
	b.stopConsume = func() { stop(); w.Stop() }
	b.connectOut, err = sources.Start(sources.Options{
		Sources: b.cfg.Sources, Leases: leases, TTL: b.cfg.Presence.LeaseTTL, Instance: instance,
		Publish: b.events.Publish, Metrics: b.metrics, Log: b.log,
	})
	return err
}

// startHTTP serves ingest, the lookup API and the operations routes
// (bridge/server).
func (b *Bridge) startHTTP() error {
	live, err := sources.NewLive(b.cfg.Sources, b.cfg.HTTP, b.calendarSubs.Lifecycle())
	if err != nil {
		return err
	}
	b.reloadMu.Lock()
	b.live = live
	b.reloadMu.Unlock()
	b.http, err = server.Start(b.cfg, server.Deps{
		Events: b.events, Sources: live, Views: b.views, Metrics: b.metrics, Ready: b.Ready,
		Resolve: b.resolveForAdmin, Stages: b.runningStages, History: b.userHistory, Now: b.now, Log: b.log,
		Watch: b.watchState, Outputs: b.outputState,
	})
	return err
}

// watchState and outputState are the Teams side's figures, nil while it
// does not run.
func (b *Bridge) watchState() []metrics.WatchStatus   { return b.teams.Load().WatchMetrics() }
func (b *Bridge) outputState() []metrics.OutputStatus { return b.teams.Load().OutputMetrics() }

// userHistory reads a user's history, once the stages run.
func (b *Bridge) userHistory(ctx context.Context, tenant, userID string) ([]history.Entry, error) {
	if !b.running.Load() {
		return nil, errors.New("the history is not open (NATS not connected yet)")
	}
	return b.history.List(ctx, tenant, userID)
}

// AdminAddr returns the operations listener's address: admin.listen's
// once started, else the HTTP server's.
func (b *Bridge) AdminAddr() string { return b.http.AdminAddr() }

// Addr returns the HTTP server's address, once started.
func (b *Bridge) Addr() string { return b.http.Addr() }

// Emulator returns the in-process Graph emulator, or nil.
func (b *Bridge) Emulator() *emulator.Emulator { return b.emulator }

// Queue returns the JetStream connection, once started.
func (b *Bridge) Queue() *eventlog.Queue { return b.events }

// Run starts the bridge, waits until ctx ends or the HTTP server fails,
// then stops it within the configured shutdown timeout.
func (b *Bridge) Run(ctx context.Context) error {
	if err := b.Start(ctx); err != nil {
		return err
	}
	serveErr := b.http.Wait(ctx)
	stopCtx, cancel := context.WithTimeout(context.Background(), b.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	stopErr := b.Stop(stopCtx)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return errors.Join(fmt.Errorf("http server: %w", serveErr), stopErr)
	}
	return stopErr
}

// Stop takes the bridge down: first the HTTP server (no new events), then
// any connection attempt still going on, the consumer (messages in hand are
// settled), the writers, NATS and the emulator.
// It is idempotent and bounded by ctx.
func (b *Bridge) Stop(ctx context.Context) error {
	b.stopOnce.Do(func() {
		var errs []error
		b.views.Close() // long-polls end now, not when Shutdown gives up on them
		if err := b.http.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		if b.stopConnecting != nil {
			if err := b.stopConnecting(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		b.mu.Lock()
		b.running.Store(false)
		if err := b.stopWorker(ctx); err != nil {
			errs = append(errs, err)
		}
		b.mu.Unlock()
		if b.graph != nil {
			b.graph.CloseIdleConnections()
		}
		if b.events != nil {
			b.events.Close()
		}
		if b.emulator != nil {
			if err := b.emulator.Close(); err != nil {
				errs = append(errs, fmt.Errorf("stop emulator: %w", err))
			}
		}
		b.stopErr = errors.Join(errs...)
		b.log.Info("presence bridge stopped")
	})
	return b.stopErr
}

// stopWorker stops the consumer (messages in hand are settled, bounded by
// ctx) and then the writers. b.mu must be held.
func (b *Bridge) stopWorker(ctx context.Context) error {
	b.connectOut.Stop() // they publish; they stop first
	b.connectOut = nil
	var err error
	if b.stopConsume != nil {
		done := make(chan struct{})
		go func() { b.stopConsume(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = errors.New("stop worker: timed out draining")
		}
		b.stopConsume = nil
	}
	b.calendarSubs.Stop()
	b.teams.Swap(nil).Stop()
	if b.stopWriters != nil {
		b.stopWriters()
		b.stopWriters = nil
	}
	if b.history != nil {
		b.history.Close()
	}
	return err
}

// runningStages returns the state store, the writers and their rules, or
// nils while they do not run.
func (b *Bridge) runningStages() (*state.Store, *writer.Pool, state.Rules) {
	if !b.running.Load() {
		return nil, nil, state.Rules{}
	}
	return b.state, b.writers, b.rules
}

// resolveForAdmin resolves a user given as object id, UPN or directory key.
func (b *Bridge) resolveForAdmin(ctx context.Context, tenant, user string) (string, error) {
	if _, err := b.graph.Client(tenant); err != nil {
		return "", fmt.Errorf("%w: %w", admin.ErrUnknownTenant, err)
	}
	return b.directory.Resolve(ctx, tenant, user)
}

// Running reports whether this bridge currently runs the connect-out
// source named name.
func (b *Bridge) Running(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.connectOut.Running(name)
}

// now is the bridge's clock: WithClock's, else the real time.
func (b *Bridge) now() time.Time {
	if b.clock != nil {
		return b.clock.Now()
	}
	return time.Now()
}

// Writing reports whether this bridge currently holds the tenant's Graph
// writer.
func (b *Bridge) Writing(tenant string) bool {
	_, w, _ := b.runningStages()
	return w != nil && w.Writing(tenant)
}
