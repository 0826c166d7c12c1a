// Package bridge is the presence bridge's runtime, embeddable in tests:
// New builds it from a configuration, Start brings up NATS, the Graph
// emulator when configured, the worker and the HTTP server, and Stop takes
// them down again in reverse order. With external NATS servers that can
// not be reached at start, the bridge serves HTTP anyway (not ready, ingest
// answers 503) and connects when they come. It is wiring only: each
// stage's job lives in the stage's package (sources, subscriptions,
// identity, graph, writer, lease, ...).
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

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/admin"
	"github.com/presence-bridge/presence-bridge/bridge/apply"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
	"github.com/presence-bridge/presence-bridge/bridge/graph"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/identity"
	"github.com/presence-bridge/presence-bridge/bridge/ingest"
	"github.com/presence-bridge/presence-bridge/bridge/lease"
	"github.com/presence-bridge/presence-bridge/bridge/lookup"
	"github.com/presence-bridge/presence-bridge/bridge/metrics"
	"github.com/presence-bridge/presence-bridge/bridge/server"
	"github.com/presence-bridge/presence-bridge/bridge/sources"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/bridge/subscriptions"
	"github.com/presence-bridge/presence-bridge/bridge/twoway"
	"github.com/presence-bridge/presence-bridge/bridge/watch"
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
	connectOut  *sources.Runners // nil when no source connects out
	teams       *twoway.Teams    // the Teams watchers; nil until the worker runs
	// views are the lookup API's presence views, which the watchers keep;
	// entries is the directory they resolve keys such as ext:1001 with.
	views   *lookup.Views
	entries atomic.Pointer[map[string]string]
	// live is the webhook sources Reload swaps, nil until HTTP is up;
	// reloadMu serialises Reload with setting it.
	reloadMu sync.Mutex
	live     *sources.Live

	stopConnecting func()        // ends eventlog.KeepConnecting
	connecting     chan struct{} // closed when it returns
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
	b.metrics = metrics.FromConfig(cfg, metrics.Options{
		Version: b.version, Revision: b.revision,
		Consumer: func(ctx context.Context) (metrics.Consumer, error) {
			st, err := b.events.ConsumerState(ctx)
			return metrics.Consumer{Pending: st.Pending, AckPending: st.AckPending}, err
		},
		DeadLetters: func(ctx context.Context) (uint64, error) { return b.events.DeadLetterCount(ctx) },
	}, func() []writer.TenantStatus {
		if _, w, _ := b.runningStages(); w != nil {
			return w.Status()
		}
		return nil
	})
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
	emulatorURL := ""
	if b.cfg.Graph.Emulator.Enabled {
		emOpts := []emulator.Option{emulator.WithLogger(b.log.With("component", "emulator"))}
		if b.clock != nil {
			emOpts = append(emOpts, emulator.WithClock(b.clock))
		}
		em, err := emulator.New(b.cfg.Graph.Emulator, emOpts...)
		if err != nil {
			return fmt.Errorf("graph emulator: %w", err)
		}
		if err := em.Start(ctx); err != nil {
			return fmt.Errorf("graph emulator: %w", err)
		}
		b.emulator = em
		emulatorURL = "http://" + em.Addr()
		b.log.Info("graph emulator listening", "addr", em.Addr())
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
	b.lookups = identity.NewLookups(b.cfg.Graph.Tenants, b.graph.LookupUser, b.cfg.Graph.Breaker, b.log.With("component", "identity"))
	phoneLookup, phoneTenants := identity.PhoneLookups(b.cfg.Graph.Tenants,
		func(tenant string) (identity.UserFinder, error) { return b.graph.Client(tenant) }, b.lookups)
	b.directory = identity.New(identity.Options{
		Entries:      b.cfg.Directory,
		Lookup:       b.lookups.Lookup,
		TTL:          b.cfg.Graph.UserCacheTTL,
		UnknownTTL:   b.cfg.Graph.UnknownUserTTL,
		PhoneLookup:  phoneLookup,
		PhoneTenants: phoneTenants,
	})
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
		connectCtx, stopConnecting := context.WithCancel(context.WithoutCancel(ctx))
		b.stopConnecting = stopConnecting
		b.connecting = make(chan struct{})
		go func() { defer close(b.connecting); eventlog.KeepConnecting(connectCtx, b.connect, b.log) }()
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
	b.history, err = history.Open(ctx, b.events.JetStream(), history.Options{
		Replicas:   b.cfg.NATS.Replicas,
		MaxPerUser: b.cfg.Admin.History.MaxEntries,
		MaxAge:     b.cfg.Admin.History.MaxAge,
		MaxRate:    b.cfg.Admin.History.MaxRate,
		Log:        b.log.With("component", "history"),
	})
	if err != nil {
		return err
	}
	if !b.cfg.Worker.Enabled {
		b.log.Info("worker.enabled is false: this bridge takes events in and applies none")
		return nil
	}
	tenants := make([]writer.TenantOptions, len(b.cfg.Graph.Tenants))
	for i, t := range b.cfg.Graph.Tenants {
		tenants[i] = writer.TenantOptions{ID: t.ID, Budget: t.Budget, Window: t.BudgetWindow}
	}
	hostname, _ := os.Hostname()
	instance := fmt.Sprintf("%s-%d-%d", hostname, os.Getpid(), time.Now().UnixNano())
	b.writers, err = writer.New(ctx, writer.Options{
		JetStream:       b.events.JetStream(),
		State:           b.state,
		Replicas:        b.cfg.NATS.Replicas,
		InstanceID:      instance,
		Graph:           b.graph,
		DeadLetter:      writer.StoreDeadLetters(b.events, b.metrics.GraphRefused),
		Tenants:         tenants,
		Rules:           rules,
		Expiration:      b.cfg.Presence.Expiration,
		LeaseTTL:        b.cfg.Presence.LeaseTTL,
		StatusMessages:  b.cfg.Presence.StatusMessages.ByKind(),
		StatusExpiry:    b.cfg.Presence.StatusMessages.Expiry,
		BreakerFailures: b.cfg.Graph.Breaker.Failures,
		BreakerTimeout:  b.cfg.Graph.Breaker.OpenTimeout,
		RetryDelay:      b.cfg.Graph.Retry.MinDelay,
		MaxRetryDelay:   b.cfg.Graph.Retry.MaxDelay,
		Clock:           b.clock,
		RefusalProbe:    b.cfg.Graph.RefusalProbe.First,
		RefusalProbeMax: b.cfg.Graph.RefusalProbe.Max,
		Logger:          b.log.With("component", "writer"),
		History:         b.history,
		EventToGraph:    b.metrics.EventToGraph,
		EventOutcome:    b.metrics.EventOutcome,
	})
	if err != nil {
		return err
	}
	writersCtx, stopWriters := context.WithCancel(context.Background())
	writersDone := make(chan struct{})
	go func() { defer close(writersDone); _ = b.writers.Run(writersCtx) }()
	b.stopWriters = func() { stopWriters(); <-writersDone }
	b.calendarSubs.Start(b.writers.Writing)

	sourceTenants, hints := map[string]string{}, map[string]adapters.IdentityHints{}
	for _, s := range b.cfg.Sources {
		sourceTenants[s.Name] = s.Tenant
		hints[s.Name] = s.Identity
	}
	now := time.Now
	if b.clock != nil {
		now = b.clock.Now
	}
	w := apply.New(apply.Options{
		SubjectPrefix: b.cfg.NATS.SubjectPrefix,
		Tenants:       sourceTenants,
		Identity:      hints,
		Resolver:      identity.Resolver{Directory: b.directory},
		Applier:       b.state,
		History:       b.history,
		Now:           now,
		Untimed:       b.metrics.EventOutcome,
		DeadLetters:   b.events,
		// Graph calendar notifications are read here, not when they come.
		CalendarReaders: b.graph.CalendarReaders(b.cfg.Sources, b.lookups),
		MinDelay:        b.cfg.Graph.Retry.MinDelay,
		MaxDelay:        b.cfg.Graph.Retry.MaxDelay,
		MaxFutureSkew:   b.cfg.HTTP.MaxFutureSkew,
		Lanes:           b.cfg.Worker.Lanes,
		LaneDepth:       b.cfg.Worker.LaneDepth,
		AckWait:         b.cfg.NATS.AckWait,
		Log:             b.log.With("component", "worker"),
		Count:           b.metrics.EventSettled,
	})
	leases, err := lease.Open(ctx, b.events.JetStream(), b.cfg.Presence.LeaseTTL, b.cfg.NATS.Replicas)
	if err != nil {
		w.Stop()
		return err
	}
	b.teams, err = twoway.Start(ctx, twoway.Options{
		Config: b.cfg, JetStream: b.events.JetStream(),
		Graph: func(tenant string) (watch.Graph, error) {
			c, err := b.graph.Client(tenant)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		State: b.state, Rules: rules, Directory: b.directory, History: b.history,
		Leases: leases, Instance: instance, Views: b.views, Clock: b.clock,
		Log: b.log.With("component", "watch"),
	})
	if err != nil {
		w.Stop()
		return err
	}
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
	tenantIDs := make([]string, len(b.cfg.Graph.Tenants))
	for i, t := range b.cfg.Graph.Tenants {
		tenantIDs[i] = t.ID
	}
	b.http, err = server.Start(server.Options{
		Listen: b.cfg.HTTP.Listen, AdminListen: b.cfg.Admin.Listen, ReadTimeout: b.cfg.HTTP.ReadTimeout,
		Ingest: ingest.Options{
			Publisher:       b.events,
			Live:            live.Set(),
			BodyLimit:       b.cfg.HTTP.BodyLimit,
			MaxFutureSkew:   b.cfg.HTTP.MaxFutureSkew,
			Ready:           b.Ready,
			Down:            b.events.Down,
			DuplicateWindow: b.cfg.NATS.DuplicateWindow,
			Log:             b.log.With("component", "http"),
			Count:           b.metrics.HTTPRequest,
			Observe:         b.metrics.WebhookRequest,
			Accepted:        b.metrics.EventsAccepted,
		},
		Lookup: lookup.HTTPOptions{Token: b.cfg.Lookup.Token, Views: b.views, Now: b.now, Log: b.log.With("component", "lookup")},
		Admin: admin.Deps{
			Token:       b.cfg.Admin.Token,
			DeadLetters: b.events,
			Resolve:     b.resolveForAdmin,
			Stages:      b.runningStages,
			Tenants:     tenantIDs,
			History:     b.userHistory,
			Sources:     live.Describe,
			Metrics:     b.metrics.Registry(),
			Now:         b.now,
		},
		Metrics: b.metrics.Handler(),
		Log:     b.log,
	})
	return err
}

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
			b.stopConnecting()
		}
		if b.connecting != nil {
			select {
			case <-b.connecting:
			case <-ctx.Done():
				errs = append(errs, errors.New("stop: timed out waiting for the NATS connection attempt"))
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
	b.teams.Stop()
	b.teams = nil
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
