// Package writer is the last stage: one writer per tenant, held by one
// bridge instance at a time through its lease (package lease), watches
// the user states the state stage stores and reconciles the session each
// user should have with what Graph was last told: coalescing, within the
// tenant's budget, behind a circuit breaker, with keep-alives before the
// session expires.
//
// The Pool (pool.go) runs a writer (writer.go) per tenant it holds the
// lease of (pause.go). The writer composes one part per job: the users'
// states as watched (users.go), the budget (budget.go), the gate of 429
// pauses and refusal probes (gate.go), the breaker and the lease's bound
// on every call (guard.go), keep-alive deadlines (sessions.go), the calls
// and their results (call.go), status messages (status.go), the events'
// latency (latency.go), the
// numbers for Status (snapshot.go) and users with nothing left to
// remember (forget.go), over two containers: a queue (queue.go) and
// deadlines and timers (timers.go). What an aggregate read of Graph means
// (a status set by hand, a lost session) is recorded by ObserveAggregate
// (manual.go), which the tenant's Teams watcher (package watch) calls.
package writer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/lease"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// GraphWriter is what the writers need from Graph.
type GraphWriter interface {
	SetPresence(ctx context.Context, tenant, userID string, p adapters.Pair, expiration time.Duration) error
	ClearPresence(ctx context.Context, tenant, userID string) error
}

// PresenceReader reads Graph's aggregated presence of many users, keyed
// by user id. A GraphWriter that also implements it lets the writers
// keep status messages (status.go).
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
// Window (the configuration's graph.tenants budget keys, Graph's
// published limit by default); a writer held to less learns it from 429s
// (see budget.go).
type TenantOptions struct {
	ID     string
	Budget int
	Window time.Duration
}

// Options configure a Pool. Every count and duration below that zero
// does not turn off is required (New fails without it, Options.check);
// their defaults are config.Default's.
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
	// to MaxRetryDelay.
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// RefusalProbe is how long a tenant Graph refused (Refused errors)
	// waits before one probing call; the wait doubles after every refused
	// probe up to RefusalProbeMax.
	RefusalProbe    time.Duration
	RefusalProbeMax time.Duration
	// StatusMessages is the status message set while a kind of claim
	// ("call", "conference_call", "ringing", "meeting") sets the session,
	// none for a kind left out; empty turns status messages off. Each
	// message expires StatusExpiry after it was set and
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
	if err := opts.check(); err != nil {
		return nil, err
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

// check reports the settings that are missing. Their defaults are
// config.Default's (the one place they are set); New applies none of its
// own but for Tick, Clock, Logger, DeadLetter and InstanceID, which no
// configuration key sets.
func (o Options) check() error {
	var missing []string
	for _, d := range []struct {
		name string
		ok   bool
	}{
		{"Replicas", o.Replicas > 0},
		{"Expiration", o.Expiration > 0},
		{"LeaseTTL", o.LeaseTTL > 0},
		{"BreakerFailures", o.BreakerFailures > 0},
		{"BreakerTimeout", o.BreakerTimeout > 0},
		{"RetryDelay", o.RetryDelay > 0},
		{"MaxRetryDelay", o.MaxRetryDelay > 0},
		{"RefusalProbe", o.RefusalProbe > 0},
		{"RefusalProbeMax", o.RefusalProbeMax > 0},
		{"StatusExpiry", len(o.StatusMessages) == 0 || o.StatusExpiry > 0},
	} {
		if !d.ok {
			missing = append(missing, d.name)
		}
	}
	for _, t := range o.Tenants {
		if t.Budget <= 0 || t.Window <= 0 {
			missing = append(missing, "Budget and Window of tenant "+t.ID)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("writer: settings must be positive: %s", strings.Join(missing, ", "))
	}
	if len(o.StatusMessages) > 0 {
		if _, ok := o.Graph.(statusGraph); !ok {
			return errors.New("writer: status messages need a Graph that reads presence and sets status messages")
		}
	}
	return nil
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
	return w.gate.refused()
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
