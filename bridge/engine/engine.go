// Package engine makes the bridge correct instead of a relay. It keeps, per
// user, what every source claims in a JetStream KV bucket (updated with
// compare-and-set), derives the one app session the user should have, and
// runs one writer per tenant (held by one bridge instance at a time through
// a KV lease) that reconciles desired against what Graph was last told:
// coalescing, within the tenant's budget, behind a circuit breaker, with
// keep-alives before the session expires.
package engine

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
)

// GraphWriter is what the engine needs from Graph.
type GraphWriter interface {
	SetPresence(ctx context.Context, tenant, userID string, p adapters.Pair, expiration time.Duration) error
	ClearPresence(ctx context.Context, tenant, userID string) error
}

// PresenceReader reads Graph's aggregated presence of many users, keyed
// by user id. A GraphWriter that also implements it lets the writers
// notice statuses users set by hand.
type PresenceReader interface {
	GetPresences(ctx context.Context, tenant string, userIDs []string) (map[string]adapters.Pair, error)
}

// ErrorClass sorts Graph errors.
type ErrorClass int

// Error classes.
const (
	// Retryable errors (5xx, timeouts, network) trip the breaker.
	Retryable ErrorClass = iota
	// Throttled errors (429) pause the tenant for Retry-After.
	Throttled
	// Permanent errors (400, 404) are dead-lettered.
	Permanent
	// Refused errors concern the whole tenant, not one user: a token
	// Graph does not accept (401) or a permission the application lacks
	// (403). The writer pauses the tenant and probes with one call at a
	// growing interval; desired states wait, nothing is dead-lettered.
	Refused
)

// Classifier sorts a Graph error and returns its Retry-After.
type Classifier func(err error) (ErrorClass, time.Duration)

// DeadLetter is a change Graph refused for good.
type DeadLetter struct {
	Tenant, UserID string
	Event          *adapters.Event
	Reason         string
	GraphError     string
	At             time.Time
}

// Clock tells the time; tests use a fake one.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Default budget: Microsoft's published presence limit, 10,000 requests
// per 30 s per application per tenant (raised from 1,500 in September
// 2025). A writer held to less learns it from 429s (see budget.go).
const (
	DefaultBudget       = 10000
	DefaultBudgetWindow = 30 * time.Second
)

// TenantOptions set one tenant's Graph budget: at most Budget calls per
// Window, DefaultBudget per DefaultBudgetWindow when zero.
type TenantOptions struct {
	ID     string
	Budget int
	Window time.Duration
}

// Options configure an Engine.
type Options struct {
	JetStream   jetstream.JetStream
	Bucket      string // per-user state, default PRESENCE_STATE
	LeaseBucket string // writer leases, default PRESENCE_LEASES
	Replicas    int
	InstanceID  string
	Graph       GraphWriter
	Classify    Classifier
	DeadLetter  func(ctx context.Context, d DeadLetter) error
	Tenants     []TenantOptions
	Rules       Rules
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
	// Tick is how often writers look at their timers and queues.
	Tick   time.Duration
	Clock  Clock
	Logger *slog.Logger
	// MaxStateSize caps a user's encoded state in bytes (default
	// DefaultMaxStateSize, and never more than the NATS server's maximum
	// payload less some room); see Apply.
	MaxStateSize int
}

// Engine applies events to user states and runs the tenants' writers.
type Engine struct {
	opts   Options
	store  *store
	leases jetstream.KeyValue

	mu      sync.Mutex
	writers map[string]*writer
}

// New creates or updates the KV buckets and returns an Engine.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.JetStream == nil || opts.Graph == nil || opts.Classify == nil {
		return nil, errors.New("engine: JetStream, Graph and Classify are required")
	}
	if opts.Bucket == "" {
		opts.Bucket = "PRESENCE_STATE"
	}
	if opts.LeaseBucket == "" {
		opts.LeaseBucket = "PRESENCE_LEASES"
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
			opts.Tenants[i].Budget = DefaultBudget
		}
		if opts.Tenants[i].Window <= 0 {
			opts.Tenants[i].Window = DefaultBudgetWindow
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
	if opts.Rules.MaxClaims == 0 {
		opts.Rules.MaxClaims = DefaultMaxClaims
	}
	if opts.MaxStateSize == 0 {
		opts.MaxStateSize = DefaultMaxStateSize
	}
	if nc := opts.JetStream.Conn(); nc != nil {
		if room := int(nc.MaxPayload()) - 4<<10; room > 0 && opts.MaxStateSize > room {
			opts.MaxStateSize = room
		}
	}
	if opts.InstanceID == "" {
		opts.InstanceID = fmt.Sprintf("bridge-%d", time.Now().UnixNano())
	}
	kv, err := opts.JetStream.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: opts.Bucket, Description: "Per-user presence state.", History: 1, Replicas: opts.Replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("state bucket %s: %w", opts.Bucket, err)
	}
	leases, err := opts.JetStream.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: opts.LeaseBucket, Description: "Which bridge writes for each tenant.", History: 1, TTL: opts.LeaseTTL, Replicas: opts.Replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", opts.LeaseBucket, err)
	}
	return &Engine{opts: opts, store: &store{kv: kv}, leases: leases, writers: map[string]*writer{}}, nil
}

// keepClaims is how long claims are remembered after they stopped
// counting (ended calls, past meetings), so that a late event about them
// changes nothing.
const keepClaims = time.Hour

// Bounds on one user's state, whatever the sources send.
const (
	// DefaultMaxClaims is Rules.MaxClaims when unset.
	DefaultMaxClaims = 64
	// DefaultMaxStateSize is Options.MaxStateSize when unset: well under
	// NATS's default maximum payload of 1 MiB, and large enough for
	// DefaultMaxClaims claims of ordinary size.
	DefaultMaxStateSize = 64 << 10
)

// Apply records ev for the user and returns once the state is persisted;
// the caller acks the event after that. Older and duplicate events change
// nothing, but still count as a sign of life from their source and let a
// change Graph refused be tried again (a dead letter's replay).
//
// The state stays bounded, so that every event costs about the same: old
// claims are pruned, at most Rules.MaxClaims are kept (see
// UserState.Evict), and more are evicted while the encoded state is over
// Options.MaxStateSize. The claim ev is about is never evicted; when the
// state can not fit with it, Apply returns an error wrapping
// ErrStateTooLarge, which the caller must not retry. Any other error is
// worth retrying.
func (e *Engine) Apply(ctx context.Context, tenant, userID string, ev adapters.Event) error {
	now := e.opts.Clock.Now()
	r := e.opts.Rules
	protect := claimID(ev)
	_, _, err := e.store.updateWithin(ctx, tenant, userID, e.opts.MaxStateSize, func(s *UserState) bool {
		s.Tenant, s.UserID = tenant, userID
		return applyEvent(s, ev, r, now)
	}, func(s *UserState) bool {
		return s.Evict(r, now, s.Claims()-1, protect) > 0
	})
	return err
}

// applyEvent is Apply's change to a state read from the store: it records
// ev, prunes and evicts claims, and reports whether the state must be
// written.
func applyEvent(s *UserState, ev adapters.Event, r Rules, now time.Time) bool {
	lastSeen := s.SourceSeen[ev.Source]
	changed := s.Apply(ev, now)
	if !changed && s.Failed != nil {
		s.Failed = nil
		changed = true
	}
	forgot := s.Prune(r, now, keepClaims)
	if r.MaxClaims > 0 {
		forgot += s.Evict(r, now, r.MaxClaims, claimID(ev))
	}
	return changed || forgot > 0 || now.Sub(lastSeen) > time.Minute
}

// State returns a user's state, for admin views and tests.
func (e *Engine) State(ctx context.Context, tenant, userID string) (UserState, error) {
	st, _, err := e.store.get(ctx, tenant, userID)
	return st, err
}

// Run runs a writer for every tenant whose lease this instance holds,
// until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
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
func (e *Engine) Writing(tenant string) bool {
	return e.writer(tenant) != nil
}

func (e *Engine) writer(tenant string) *writer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.writers[tenant]
}

// TenantPaused reports why and until when this instance's writer holds
// tenant's Graph calls back because Graph refused the whole tenant (a
// missing permission or consent, a token Graph does not accept); the
// reason is empty when it does not. For readiness and admin views.
func (e *Engine) TenantPaused(tenant string) (reason string, until time.Time) {
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
func (e *Engine) SessionCapacity(tenant string) int {
	for _, t := range e.opts.Tenants {
		if t.ID == tenant {
			return sessionCapacity(t.Budget, t.Window, e.opts.Expiration)
		}
	}
	return 0
}
