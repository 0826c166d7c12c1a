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
	"github.com/presence-bridge/presence-bridge/bridge/internal/logthrottle"
	"github.com/presence-bridge/presence-bridge/graphclient"
)

// Lookups resolves UPNs through Graph behind one circuit breaker per
// tenant, so that a Graph outage costs a few probes instead of a request
// per event and redelivery. The breaker opens on 5xx, timeouts and network
// failures (as the writers' does), never on 404 or 429.
//
// Each tenant's lookups also spend a budget (graph.tenants[].lookup_budget
// per lookup_budget_window): a lookup beyond it is not made, and the
// event that needed it is dead-lettered with reason ReasonLookupBudget,
// so that events naming made-up users can not become a flood of Graph
// calls. Allow and Wait let other calls made for a sender (such as
// reading a calendar event) spend the same budget.
type Lookups struct {
	lookup   LookupFunc
	breakers map[string]*lookupBreaker
	budgets  map[string]*budget
	limits   map[string]config.Tenant
	now      func() time.Time
	log      *slog.Logger
	// overBudget logs a tenant's spent budget once per window, not once
	// per event.
	overBudget *logthrottle.Throttle
}

// ReasonLookupBudget is the dead-letter reason of an event whose user
// would have needed a lookup beyond the tenant's lookup budget.
const ReasonLookupBudget = "lookup_budget"

// errBudgetSpent is a lookup not made for lack of budget; the breaker
// ignores it.
var errBudgetSpent = errors.New("lookup budget spent")

// lookupBreaker is one tenant's breaker and when it closes for probes.
type lookupBreaker struct {
	cb        *gobreaker.CircuitBreaker[string]
	timeout   time.Duration
	openUntil atomic.Int64 // Unix nanoseconds
}

// NewLookups puts lookup behind a breaker and a budget per tenant; each
// breaker state change is logged once, not each event it turns away. A
// tenant without a lookup budget gets config.DefaultLookupBudget per
// config.DefaultLookupBudgetWindow.
func NewLookups(tenants []config.Tenant, lookup LookupFunc, cfg config.Breaker, log *slog.Logger) *Lookups {
	l := &Lookups{
		lookup: lookup, breakers: map[string]*lookupBreaker{}, budgets: map[string]*budget{}, limits: map[string]config.Tenant{},
		now: time.Now, log: log, overBudget: logthrottle.New(config.DefaultLookupBudgetWindow),
	}
	for _, t := range tenants {
		tenant := t.ID
		if t.LookupBudget <= 0 || t.LookupBudgetWindow <= 0 {
			t.LookupBudget, t.LookupBudgetWindow = config.DefaultLookupBudget, config.DefaultLookupBudgetWindow
		}
		l.limits[tenant] = t
		l.budgets[tenant] = newBudget(t.LookupBudget, t.LookupBudgetWindow)
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
			IsExcluded: func(err error) bool { return errors.Is(err, errBudgetSpent) },
			OnStateChange: func(_ string, from, to gobreaker.State) {
				b.stateChanged(log.With("tenant", tenant), from, to)
			},
		})
		l.breakers[tenant] = b
	}
	return l
}

// WithClock makes l's budgets tell time by now; for tests.
func (l *Lookups) WithClock(now func() time.Time) *Lookups {
	l.now = now
	l.overBudget.WithClock(now)
	return l
}

// Allow takes one Graph call from tenant's lookup budget and reports
// whether there was room. When there was none it took nothing and
// returns how long until there is; a tenant not configured has no budget
// (false, 0).
func (l *Lookups) Allow(tenant string) (time.Duration, bool) {
	b, ok := l.budgets[tenant]
	if !ok {
		return 0, false
	}
	wait := b.take(l.now())
	return wait, wait == 0
}

// Wait takes one Graph call from tenant's lookup budget, waiting up to
// most for room. Without room in time it takes nothing and returns a
// *fault.Error to retry after the budget has room again, with reason
// ReasonLookupBudget.
func (l *Lookups) Wait(ctx context.Context, tenant string, most time.Duration) error {
	for {
		wait, ok := l.Allow(tenant)
		switch {
		case ok:
			return nil
		case wait == 0:
			return fmt.Errorf("tenant %q is not configured", tenant)
		case wait > most:
			return &fault.Error{Class: fault.Retry, After: wait, Reason: ReasonLookupBudget, Quiet: true,
				Err: fmt.Errorf("tenant %s spent its lookup budget (graph.tenants[].lookup_budget)", tenant)}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
			most -= wait
		}
	}
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
	var room time.Duration // until the budget has room, when it had none
	id, err := b.cb.Execute(func() (string, error) {
		wait, ok := l.Allow(tenant)
		if !ok {
			room = wait
			return "", errBudgetSpent
		}
		return find(ctx, tenant, upn)
	})
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, errBudgetSpent):
		t := l.limits[tenant]
		l.overBudget.Log(ctx, l.log, slog.LevelWarn, tenant, "user lookups over budget: events naming users not yet resolved are dead-lettered (lookup_budget)",
			"tenant", tenant, "lookup_budget", t.LookupBudget, "lookup_budget_window", t.LookupBudgetWindow)
		return "", &fault.Error{Class: fault.Permanent, After: room, Reason: ReasonLookupBudget, Quiet: true,
			Err: fmt.Errorf("%s not looked up: tenant %s made %d lookups in the last %s (graph.tenants[].lookup_budget)", upn, tenant, t.LookupBudget, t.LookupBudgetWindow)}
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return "", &fault.Error{Class: fault.Retry, After: b.remaining(), Quiet: true, Err: fmt.Errorf("user lookups in tenant %s are paused while Graph fails: %w", tenant, err)}
	}
	var gerr *graphclient.Error
	if errors.As(err, &gerr) && gerr.StatusCode == http.StatusNotFound {
		return "", unknownUser(upn, "Graph has no such user", gerr.Error())
	}
	return "", err
}
