// Package bridge is the presence bridge's runtime, embeddable in tests:
// New builds it from a configuration, Start brings up NATS, the Graph
// emulator when configured, the worker and the HTTP server, and Stop takes
// them down again in reverse order.
package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/directory"
	"github.com/presence-bridge/presence-bridge/bridge/engine"
	"github.com/presence-bridge/presence-bridge/bridge/ingest"
	"github.com/presence-bridge/presence-bridge/bridge/queue"
	"github.com/presence-bridge/presence-bridge/bridge/worker"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

// Bridge is one running presence bridge.
type Bridge struct {
	cfg     *config.Config
	log     *slog.Logger
	metrics *metrics

	emulator *emulator.Emulator
	queue    *queue.Queue
	graph    *graphTenants
	server   *http.Server
	listener net.Listener

	engine      *engine.Engine
	rules       engine.Rules
	directory   *directory.Directory
	stopEngine  func()
	stopConsume func()
	serveDone   chan error
	stopOnce    sync.Once
	stopErr     error
}

// New returns a bridge for cfg; nothing runs until Start.
func New(cfg *config.Config, log *slog.Logger) (*Bridge, error) {
	if cfg == nil {
		return nil, errors.New("bridge: nil config")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Bridge{cfg: cfg, log: log, metrics: newMetrics()}, nil
}

// Start brings the bridge up. On error, whatever was started is stopped.
func (b *Bridge) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			_ = b.Stop(context.Background())
		}
	}()
	emulatorURL := ""
	if b.cfg.Graph.Emulator.Enabled {
		em, err := emulator.New(b.cfg.Graph.Emulator, emulator.WithLogger(b.log.With("component", "emulator")))
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
	b.graph, err = newGraphTenants(b.cfg.Graph, emulatorURL)
	if err != nil {
		return err
	}
	b.queue, err = queue.Open(ctx, b.cfg.NATS, b.log.With("component", "nats"))
	if err != nil {
		return err
	}
	if err := b.startWorker(ctx); err != nil {
		return err
	}
	return b.startHTTP()
}

func (b *Bridge) startWorker(ctx context.Context) error {
	rules, err := engineRules(b.cfg)
	if err != nil {
		return err
	}
	b.rules = rules
	b.directory = directory.New(b.cfg.Directory, b.graph.lookupUser, b.cfg.Graph.UserCacheTTL)
	tenants := make([]engine.TenantOptions, len(b.cfg.Graph.Tenants))
	for i, t := range b.cfg.Graph.Tenants {
		tenants[i] = engine.TenantOptions{ID: t.ID, Budget: t.Budget, Window: t.BudgetWindow}
	}
	hostname, _ := os.Hostname()
	b.engine, err = engine.New(ctx, engine.Options{
		JetStream:       b.queue.JetStream(),
		Replicas:        b.cfg.NATS.Replicas,
		InstanceID:      fmt.Sprintf("%s-%d-%d", hostname, os.Getpid(), time.Now().UnixNano()),
		Graph:           b.graph,
		Classify:        classifyGraph,
		DeadLetter:      b.deadLetter,
		Tenants:         tenants,
		Rules:           rules,
		Expiration:      b.cfg.Presence.Expiration,
		LeaseTTL:        b.cfg.Presence.LeaseTTL,
		ObserveEvery:    b.cfg.Presence.ObserveInterval,
		BreakerFailures: b.cfg.Graph.Breaker.Failures,
		BreakerTimeout:  b.cfg.Graph.Breaker.OpenTimeout,
		RetryDelay:      b.cfg.Graph.Retry.MinDelay,
		RefusalProbe:    b.cfg.Graph.RefusalProbe.First,
		RefusalProbeMax: b.cfg.Graph.RefusalProbe.Max,
		Logger:          b.log.With("component", "engine"),
	})
	if err != nil {
		return err
	}
	engineCtx, stopEngine := context.WithCancel(context.Background())
	engineDone := make(chan struct{})
	go func() { defer close(engineDone); _ = b.engine.Run(engineCtx) }()
	b.stopEngine = func() { stopEngine(); <-engineDone }

	sourceTenants, identity := map[string]string{}, map[string]adapters.IdentityHints{}
	for _, s := range b.cfg.Sources {
		sourceTenants[s.Name] = s.Tenant
		identity[s.Name] = s.Identity
	}
	w := worker.New(worker.Options{
		SubjectPrefix: b.cfg.NATS.SubjectPrefix,
		Tenants:       sourceTenants,
		Identity:      identity,
		Resolver:      resolver{dir: b.directory},
		Applier:       b.engine,
		DeadLetters:   b.queue,
		MinDelay:      b.cfg.Graph.Retry.MinDelay,
		MaxDelay:      b.cfg.Graph.Retry.MaxDelay,
		Log:           b.log.With("component", "worker"),
		Observe:       b.metrics.workerOutcome,
	})
	stop, err := b.queue.Consume(ctx, w.Handle)
	if err != nil {
		return err
	}
	b.stopConsume = stop
	return nil
}

// engineRules turns the presence configuration into the engine's rules.
func engineRules(cfg *config.Config) (engine.Rules, error) {
	m := cfg.Presence.Mapping
	rules := engine.Rules{
		MeetingShowAs:   m.MeetingShowAs,
		Priority:        cfg.Presence.Priority,
		MaxCallDuration: cfg.Presence.MaxCallDuration,
		SourceLapse:     map[string]time.Duration{},
	}
	for _, s := range cfg.Sources {
		if s.Lapse > 0 {
			rules.SourceLapse[s.Name] = s.Lapse
		}
	}
	for _, entry := range []struct {
		value string
		into  **adapters.Pair
	}{{m.Call, &rules.Call}, {m.ConferenceCall, &rules.ConferenceCall}, {m.Ringing, &rules.Ringing}, {m.Meeting, &rules.Meeting}} {
		if entry.value == "" {
			continue
		}
		p, err := config.ParsePair(entry.value)
		if err != nil {
			return rules, err
		}
		*entry.into = &p
	}
	return rules, nil
}

// deadLetter stores a change Graph refused, with the event that asked for
// it, so that it can be listed and replayed.
func (b *Bridge) deadLetter(ctx context.Context, d engine.DeadLetter) error {
	record := queue.DeadLetter{Reason: d.Reason + " for user " + d.UserID, GraphError: d.GraphError, At: d.At.UTC(), Data: []byte("null")}
	if d.Event != nil {
		data, err := json.Marshal(d.Event)
		if err != nil {
			return fmt.Errorf("encode dead-lettered event: %w", err)
		}
		record.Data, record.Source, record.Subject = data, d.Event.Source, b.queue.Subject(d.Event.Source)
	}
	return b.queue.PublishDeadLetter(ctx, record)
}

func (b *Bridge) startHTTP() error {
	sources, err := b.ingestSources()
	if err != nil {
		return err
	}
	router := ingest.NewRouter(ingest.Options{
		Publisher: b.queue,
		Sources:   sources,
		BodyLimit: b.cfg.HTTP.BodyLimit,
		Ready:     b.queue.Ready,
		Log:       b.log.With("component", "http"),
		Observe:   b.metrics.httpRequest,
	})
	b.metrics.register(router)
	b.registerAdmin(router)
	ln, err := net.Listen("tcp", b.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	b.listener = ln
	b.server = &http.Server{
		Handler:           router,
		ReadHeaderTimeout: b.cfg.HTTP.ReadTimeout,
		ReadTimeout:       b.cfg.HTTP.ReadTimeout,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
	}
	b.serveDone = make(chan error, 1)
	go func() { b.serveDone <- b.server.Serve(ln) }()
	b.log.Info("presence bridge listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the HTTP server's address, once started.
func (b *Bridge) Addr() string {
	if b.listener == nil {
		return ""
	}
	return b.listener.Addr().String()
}

// Emulator returns the in-process Graph emulator, or nil.
func (b *Bridge) Emulator() *emulator.Emulator { return b.emulator }

// Queue returns the JetStream connection, once started.
func (b *Bridge) Queue() *queue.Queue { return b.queue }

// Run starts the bridge, waits until ctx ends or the HTTP server fails,
// then stops it within the configured shutdown timeout.
func (b *Bridge) Run(ctx context.Context) error {
	if err := b.Start(ctx); err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-b.serveDone:
		b.serveDone <- serveErr
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), b.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	stopErr := b.Stop(stopCtx)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return errors.Join(fmt.Errorf("http server: %w", serveErr), stopErr)
	}
	return stopErr
}

// Stop takes the bridge down: first the HTTP server (no new events), then
// the consumer (messages in hand are settled), then NATS and the emulator.
// It is idempotent and bounded by ctx.
func (b *Bridge) Stop(ctx context.Context) error {
	b.stopOnce.Do(func() {
		var errs []error
		if b.server != nil {
			if err := b.server.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop http: %w", err))
				_ = b.server.Close()
			}
		}
		if b.stopConsume != nil {
			done := make(chan struct{})
			go func() { b.stopConsume(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				errs = append(errs, errors.New("stop worker: timed out draining"))
			}
		}
		if b.stopEngine != nil {
			b.stopEngine()
		}
		if b.graph != nil {
			b.graph.closeIdleConnections()
		}
		if b.queue != nil {
			b.queue.Close()
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

// Writing reports whether this bridge currently holds the tenant's Graph
// writer.
func (b *Bridge) Writing(tenant string) bool {
	return b.engine != nil && b.engine.Writing(tenant)
}
