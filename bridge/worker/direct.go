package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// Graph is what the Direct applier needs from Microsoft Graph.
type Graph interface {
	SetPresence(ctx context.Context, tenant, userID string, p adapters.Pair, expiration time.Duration) error
	ClearPresence(ctx context.Context, tenant, userID string) error
}

// ErrorClass sorts Graph errors by what to do about them.
type ErrorClass int

// Error classes.
const (
	// Retryable errors (5xx, timeouts, network) trip the breaker.
	Retryable ErrorClass = iota
	// Throttled errors (429) wait for Retry-After and do not trip it.
	Throttled
	// Permanent errors (400, 403, 404) are dead-lettered.
	Permanent
)

// Classifier sorts a Graph error and returns its Retry-After, if any.
type Classifier func(err error) (ErrorClass, time.Duration)

// Mapping names the pair each kind of activity sets; nil sets nothing.
type Mapping struct {
	Call, ConferenceCall, Ringing, Meeting *adapters.Pair
	// MeetingShowAs lists the showAs values that make a meeting count.
	MeetingShowAs []string
}

// BreakerSettings configure the per-tenant circuit breakers.
type BreakerSettings struct {
	Failures    uint32
	OpenTimeout time.Duration
}

// Direct applies each event to Graph as it comes, through a circuit
// breaker per tenant. It keeps the time of the newest event applied per
// user and call (or source), so an event that arrives after a newer one
// about the same thing changes nothing.
type Direct struct {
	graph      Graph
	classify   Classifier
	mapping    Mapping
	expiration time.Duration
	breaker    BreakerSettings
	now        func() time.Time
	log        *slog.Logger

	mu       sync.Mutex
	breakers map[string]*gobreaker.CircuitBreaker[struct{}]
	newest   map[string]time.Time
}

// NewDirect returns a Direct applier.
func NewDirect(graph Graph, classify Classifier, mapping Mapping, expiration time.Duration, breaker BreakerSettings, log *slog.Logger) *Direct {
	return &Direct{
		graph: graph, classify: classify, mapping: mapping, expiration: expiration,
		breaker: breaker, now: time.Now, log: log,
		breakers: map[string]*gobreaker.CircuitBreaker[struct{}]{},
		newest:   map[string]time.Time{},
	}
}

// action is what an event asks of Graph.
type action struct {
	set   *adapters.Pair
	clear bool
}

// Action maps an event to the Graph call it needs; neither set nor clear
// means nothing to do.
func (m Mapping) action(ev adapters.Event, now time.Time) action {
	switch ev.Type {
	case adapters.TypeCall:
		switch ev.State {
		case adapters.CallActive, adapters.CallHeld:
			if ev.Conference {
				return action{set: m.ConferenceCall}
			}
			return action{set: m.Call}
		case adapters.CallRinging:
			return action{set: m.Ringing}
		case adapters.CallEnded:
			return action{clear: true}
		}
	case adapters.TypeMeeting:
		if ev.ShowAs != "" && !slices.Contains(m.MeetingShowAs, ev.ShowAs) {
			return action{}
		}
		state := ev.State
		if state == "" && ev.Start != nil && ev.End != nil {
			switch {
			case now.Before(*ev.Start):
				return action{} // scheduling future windows is the engine's job
			case now.Before(*ev.End):
				state = adapters.MeetingStarted
			default:
				state = adapters.MeetingEnded
			}
		}
		if state == adapters.MeetingStarted {
			return action{set: m.Meeting}
		}
		return action{clear: true}
	case adapters.TypePresence:
		if ev.State == adapters.PresenceSet {
			return action{set: &adapters.Pair{Availability: ev.Availability, Activity: ev.Activity}}
		}
		return action{clear: true}
	}
	return action{}
}

// Apply makes ev take effect for userID in tenant.
func (d *Direct) Apply(ctx context.Context, tenant, userID string, ev adapters.Event) error {
	// Order events per call (calls) or per source and type (meetings and
	// explicit presence): a late event of one call must not be dropped
	// because another call of the same person moved on.
	key := tenant + "/" + userID + "/" + ev.Source + "/" + ev.Type + "/" + ev.CallID
	d.mu.Lock()
	if newest, ok := d.newest[key]; ok && ev.OccurredAt.Before(newest) {
		d.mu.Unlock()
		d.log.Debug("stale event ignored", "event", ev.Key(), "user", userID)
		return nil
	}
	d.mu.Unlock()

	act := d.mapping.action(ev, d.now())
	if act.set == nil && !act.clear {
		return nil
	}
	_, err := d.breakerFor(tenant).Execute(func() (struct{}, error) {
		if act.clear {
			return struct{}{}, d.graph.ClearPresence(ctx, tenant, userID)
		}
		return struct{}{}, d.graph.SetPresence(ctx, tenant, userID, *act.set, d.expiration)
	})
	if err == nil {
		d.mu.Lock()
		if ev.OccurredAt.After(d.newest[key]) {
			d.newest[key] = ev.OccurredAt
		}
		d.mu.Unlock()
		return nil
	}
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return &RetryError{After: d.breaker.OpenTimeout, Err: fmt.Errorf("graph breaker for tenant %s: %w", tenant, err)}
	}
	switch class, after := d.classify(err); class {
	case Throttled, Retryable:
		return &RetryError{After: after, Err: err}
	default:
		return &PermanentError{Reason: "graph refused the change", GraphError: err.Error(), Err: err}
	}
}

func (d *Direct) breakerFor(tenant string) *gobreaker.CircuitBreaker[struct{}] {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cb, ok := d.breakers[tenant]; ok {
		return cb
	}
	cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "graph:" + tenant,
		MaxRequests: 1,
		Timeout:     d.breaker.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= d.breaker.Failures },
		IsSuccessful: func(err error) bool {
			if err == nil {
				return true
			}
			class, _ := d.classify(err)
			return class != Retryable
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			d.log.Warn("circuit breaker", "breaker", name, "from", from.String(), "to", to.String())
		},
	})
	d.breakers[tenant] = cb
	return cb
}
