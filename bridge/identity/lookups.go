package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/graphclient"
)

// Lookups resolves UPNs through Graph behind one circuit breaker per
// tenant, so that a Graph outage costs a few probes instead of a request
// per event and redelivery. The breaker opens on 5xx, timeouts and network
// failures (as the writers' does), never on 404 or 429.
type Lookups struct {
	lookup   LookupFunc
	breakers map[string]*lookupBreaker
}

// lookupBreaker is one tenant's breaker and when it closes for probes.
type lookupBreaker struct {
	cb        *gobreaker.CircuitBreaker[string]
	timeout   time.Duration
	openUntil atomic.Int64 // Unix nanoseconds
}

// NewLookups puts lookup behind a breaker per tenant; each state change
// is logged once, not each event it turns away.
func NewLookups(tenants []string, lookup LookupFunc, cfg config.Breaker, log *slog.Logger) *Lookups {
	l := &Lookups{lookup: lookup, breakers: map[string]*lookupBreaker{}}
	for _, tenant := range tenants {
		b := &lookupBreaker{timeout: cfg.OpenTimeout}
		b.cb = gobreaker.NewCircuitBreaker[string](gobreaker.Settings{
			Name:        "user lookups:" + tenant,
			MaxRequests: 1,
			Timeout:     cfg.OpenTimeout,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.Failures },
			IsSuccessful: func(err error) bool {
				class, _ := fault.Of(err)
				return err == nil || class != fault.Retry
			},
			OnStateChange: func(_ string, from, to gobreaker.State) {
				b.stateChanged(log.With("tenant", tenant), from, to)
			},
		})
		l.breakers[tenant] = b
	}
	return l
}

// stateChanged records when an opened breaker lets a probe through and
// logs the change: an outage's start once as a warning, its end once.
func (b *lookupBreaker) stateChanged(log *slog.Logger, from, to gobreaker.State) {
	switch to {
	case gobreaker.StateOpen:
		b.openUntil.Store(time.Now().Add(b.timeout).UnixNano())
		if from == gobreaker.StateClosed {
			log.Warn("user lookups paused: Graph keeps failing; events for users not yet resolved wait", "probe_every", b.timeout)
		} else {
			log.Debug("user lookup probe failed; still paused", "probe_in", b.timeout)
		}
	case gobreaker.StateHalfOpen:
		log.Debug("user lookups: probing Graph")
	case gobreaker.StateClosed:
		log.Info("user lookups resumed: Graph answers again")
	}
}

// remaining is how long the breaker stays open, zero once a probe may go.
func (b *lookupBreaker) remaining() time.Duration {
	return max(0, time.Until(time.Unix(0, b.openUntil.Load())))
}

// Lookup resolves upn in tenant for the directory. While the breaker is
// open it fails at once, asking for the event to come back when the next
// probe may go; a user Graph does not know is permanent.
func (l *Lookups) Lookup(ctx context.Context, tenant, upn string) (string, error) {
	return l.through(ctx, tenant, upn, l.lookup)
}

// Through puts another lookup (such as Phones.Find) behind the same
// breakers, so that UPN and phone lookups pause together while Graph
// fails.
func (l *Lookups) Through(find LookupFunc) LookupFunc {
	return func(ctx context.Context, tenant, key string) (string, error) {
		return l.through(ctx, tenant, key, find)
	}
}

// through runs find behind tenant's breaker.
func (l *Lookups) through(ctx context.Context, tenant, upn string, find LookupFunc) (string, error) {
	b, ok := l.breakers[tenant]
	if !ok {
		return "", fmt.Errorf("tenant %q is not configured", tenant)
	}
	id, err := b.cb.Execute(func() (string, error) { return find(ctx, tenant, upn) })
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return "", &fault.Error{Class: fault.Retry, After: b.remaining(), Quiet: true, Err: fmt.Errorf("user lookups in tenant %s are paused while Graph fails: %w", tenant, err)}
	}
	var gerr *graphclient.Error
	if errors.As(err, &gerr) && gerr.StatusCode == http.StatusNotFound {
		return "", &fault.Error{Class: fault.Permanent, Reason: "unknown user", GraphError: gerr.Error(), Err: fmt.Errorf("%w: %s", ErrUnknownUser, upn)}
	}
	return "", err
}
