// Package writer is the last stage: one writer per tenant, held by one
// bridge instance at a time through its lease (package lease), watches the user states
// the state stage stores and reconciles the session each user should have
// with what Graph was last told: coalescing, within the tenant's budget,
// behind a circuit breaker, with keep-alives before the session expires.
package writer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/lease"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/graphclient/graphlimits"
)

// GraphWriter is what the writers need from Graph.
type GraphWriter interface {
	SetPresence(ctx context.Context, tenant, userID string, p adapters.Pair, expiration time.Duration) error
	ClearPresence(ctx context.Context, tenant, userID string) error
}

// PresenceReader reads Graph's aggregated presence of many users, keyed
// by user id. A GraphWriter that also implements it lets the writers
// notice statuses users set by hand.
type PresenceReader interface {
	GetPresences(ctx context.Context, tenant string, userIDs []string) (map[string]Aggregate, error)
}

// Aggregate is a user's presence as Graph shows it to the application:
// the aggregated pair and the text of the status message, "" when none.
type Aggregate struct {
	Pair       adapters.Pair
	StatusText string
}

// StatusMessenger sets and clears users' status messages. The writers
// set status messages (Options.StatusMessages) through a GraphWriter
// that is also a StatusMessenger and a PresenceReader.
type StatusMessenger interface {
	SetStatusMessage(ctx context.Context, tenant, userID, text string, expires time.Time) error
	ClearStatusMessage(ctx context.Context, tenant, userID string) error
}

// DeadLetter is a change Graph refused for good.
type DeadLetter struct {
	Tenant, UserID string
	Event          *adapters.Event
	Reason         string
	GraphError     string
	At             time.Time
}

// TenantOptions set one tenant's Graph budget: at most Budget calls per
// Window, Graph's published limit (graphlimits.PresenceRequests per
// graphlimits.PresenceWindow) when zero; a writer held to less learns it
// from 429s (see budget.go).
type TenantOptions struct {
	ID     string
	Budget int
	Window time.Duration
}

// Options configure a Pool.
type Options struct {
	JetStream jetstream.JetStream
	// State is the store of user states the writers watch and record
	// what Graph was told in.
	State *state.Store
	// Rules derive the session each user should have; they are the rules
	// State applies events with.
	Rules      state.Rules
	Replicas   int
	InstanceID string
	Graph      GraphWriter
	DeadLetter func(ctx context.Context, d DeadLetter) error
	Tenants    []TenantOptions
	// Expiration is the expirationDuration sent with setPresence. A
	// session is refreshed between a half and two thirds of it when no
	// change waits, and ahead of the changes when its expiry comes near
	// (see writer and SessionCapacity).
	Expiration time.Duration
	// LeaseTTL is how long a dead writer's lease lasts.
	LeaseTTL time.Duration
	// BreakerFailures consecutive retryable failures open the breaker for
	// BreakerTimeout.
	BreakerFailures uint32
	BreakerTimeout  time.Duration
	// RetryDelay is the first delay after a retryable failure, doubling up
	// to MaxRetryDelay (default a minute).
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// RefusalProbe is how long a tenant Graph refused (Refused errors)
	// waits before one probing call; the wait doubles after every refused
	// probe up to RefusalProbeMax. Defaults 30 s and 10 min.
	RefusalProbe    time.Duration
	RefusalProbeMax time.Duration
	// ObserveEvery is how often a writer reads Graph's aggregate for the
	// users it holds a session for, to record manual statuses; zero turns
	// it off, and so does a Graph that is no PresenceReader.
	ObserveEvery time.Duration
	// StatusMessages is the status message set while a kind of claim
	// ("call", "conference_call", "ringing", "meeting") sets the session,
	// none for a kind left out; empty turns status messages off. Each
	// message expires StatusExpiry after it was set (default an hour) and
	// is set again before that while the claim lasts (status.go).
	StatusMessages map[string]string
	StatusExpiry   time.Duration
	// Tick is how often writers look at their timers and queues.
	Tick   time.Duration
	Clock  state.Clock
	Logger *slog.Logger
	// History records each decision in the user's history; nil records
	// nothing.
	History history.Recorder
	// EventToGraph, when set, is told, once for each event taken into a
	// user's state, how long after the bridge accepted it Graph answered
	// the call that carried its effect (latency.go).
	EventToGraph func(time.Duration)
	// EventOutcome, when set, is told the fate of each event taken into a
	// user's state: OutcomeGraph (timed by EventToGraph), OutcomeNoCall or
	// OutcomeGraphRefused.
	EventOutcome func(outcome string)
}

// Pool runs the writers of the tenants whose leases this instance holds.
type Pool struct {
	opts   Options
	rules  state.Rules
	store  *state.Store
	leases jetstream.KeyValue

	mu      sync.Mutex
	writers map[string]*writer
}

// New creates or updates the lease bucket (lease.Open) and returns a Pool.
func New(ctx context.Context, opts Options) (*Pool, error) {
	if opts.JetStream == nil || opts.State == nil || opts.Graph == nil {
		return nil, errors.New("writer: JetStream, State and Graph are required")
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Expiration == 0 {
		opts.Expiration = 15 * time.Minute
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = 10 * time.Second
	}
	if opts.BreakerFailures == 0 {
		opts.BreakerFailures = 5
	}
	if opts.BreakerTimeout == 0 {
		opts.BreakerTimeout = 30 * time.Second
	}
	if opts.RetryDelay == 0 {
		opts.RetryDelay = time.Second
	}
	if opts.MaxRetryDelay == 0 {
		opts.MaxRetryDelay = time.Minute
	}
	if opts.RefusalProbe == 0 {
		opts.RefusalProbe = 30 * time.Second
	}
	if opts.RefusalProbeMax == 0 {
		opts.RefusalProbeMax = 10 * time.Minute
	}
	for i := range opts.Tenants {
		if opts.Tenants[i].Budget <= 0 {
			opts.Tenants[i].Budget = graphlimits.PresenceRequests
		}
		if opts.Tenants[i].Window <= 0 {
			opts.Tenants[i].Window = graphlimits.PresenceWindow
		}
	}
	if len(opts.StatusMessages) > 0 {
		if _, ok := opts.Graph.(statusGraph); !ok {
			return nil, errors.New("writer: status messages need a Graph that reads presence and sets status messages")
		}
		if opts.StatusExpiry <= 0 {
			opts.StatusExpiry = DefaultStatusExpiry
		}
	}
	if opts.Tick == 0 {
		opts.Tick = 10 * time.Millisecond
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.DeadLetter == nil {
		opts.DeadLetter = func(context.Context, DeadLetter) error { return nil }
	}
	if opts.InstanceID == "" {
		opts.InstanceID = fmt.Sprintf("bridge-%d", time.Now().UnixNano())
	}
	leases, err := lease.Open(ctx, opts.JetStream, opts.LeaseTTL, opts.Replicas)
	if err != nil {
		return nil, err
	}
	return &Pool{opts: opts, rules: opts.Rules, store: opts.State, leases: leases, writers: map[string]*writer{}}, nil
}

// Run runs a writer for every tenant whose lease this instance holds,
// until ctx ends.
func (e *Pool) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, t := range e.opts.Tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.holdTenant(ctx, t)
		}()
	}
	wg.Wait()
	return nil
}

// Writing reports whether this instance currently writes for tenant.
func (e *Pool) Writing(tenant string) bool {
	return e.writer(tenant) != nil
}

// CaughtUp reports whether this instance writes for tenant and its writer
// has read every user state stored before it started: from then on each
// event it sees is new, and its latency is measured (latency.go).
func (e *Pool) CaughtUp(tenant string) bool {
	w := e.writer(tenant)
	return w != nil && w.caughtUpShared.Load()
}

func (e *Pool) writer(tenant string) *writer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.writers[tenant]
}

// TenantPaused reports why and until when this instance's writer holds
// tenant's Graph calls back because Graph refused the whole tenant (a
// missing permission or consent, a token Graph does not accept); the
// reason is empty when it does not. For readiness and admin views.
func (e *Pool) TenantPaused(tenant string) (reason string, until time.Time) {
	w := e.writer(tenant)
	if w == nil {
		return "", time.Time{}
	}
	if r := w.refusal.Load(); r != nil {
		return r.reason, r.until
	}
	return "", time.Time{}
}

// SessionCapacity is how many app sessions tenant's configured budget can
// keep alive: the calls the budget allows during the five sixths of
// Expiration after which a keep-alive goes ahead of every change. It
// counts keep-alives alone; state changes spend the same budget. Zero for
// a tenant that is not configured.
func (e *Pool) SessionCapacity(tenant string) int {
	for _, t := range e.opts.Tenants {
		if t.ID == tenant {
			return sessionCapacity(t.Budget, t.Window, e.opts.Expiration)
		}
	}
	return 0
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
