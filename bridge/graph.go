package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/directory"
	"github.com/presence-bridge/presence-bridge/bridge/engine"
	"github.com/presence-bridge/presence-bridge/bridge/worker"
	"github.com/presence-bridge/presence-bridge/graphclient"
)

// graphTenants holds one Graph client per configured tenant and serves the
// worker, the directory and the calendar adapter.
type graphTenants struct {
	clients map[string]*graphclient.Client
}

// newGraphTenants builds the clients; emulatorURL, when set, is used for
// every tenant that names no explicit URLs.
func newGraphTenants(cfg config.Graph, emulatorURL string) (*graphTenants, error) {
	g := &graphTenants{clients: map[string]*graphclient.Client{}}
	for i, t := range cfg.Tenants {
		gc := graphclient.Config{
			TenantID:          t.ID,
			ClientID:          t.ClientID,
			ClientSecret:      t.ClientSecret,
			ClientCertificate: []byte(t.ClientCertificate),
			Cloud:             t.Cloud,
			GraphBaseURL:      t.GraphURL,
			LoginBaseURL:      t.LoginURL,
			Timeout:           cfg.Timeout,
			UserAgent:         "presence-bridge",
		}
		if gc.GraphBaseURL == "" && emulatorURL != "" {
			gc.GraphBaseURL = emulatorURL + "/v1.0"
			gc.LoginBaseURL = emulatorURL
		}
		client, err := graphclient.New(gc)
		if err != nil {
			return nil, fmt.Errorf("graph.tenants[%d]: %w", i, err)
		}
		g.clients[t.ID] = client
	}
	return g, nil
}

// closeIdleConnections closes every client's idle connections.
func (g *graphTenants) closeIdleConnections() {
	for _, c := range g.clients {
		c.CloseIdleConnections()
	}
}

func (g *graphTenants) client(tenant string) (*graphclient.Client, error) {
	c, ok := g.clients[tenant]
	if !ok {
		return nil, fmt.Errorf("tenant %q is not configured", tenant)
	}
	return c, nil
}

// SetPresence sets the application's session for a user.
func (g *graphTenants) SetPresence(ctx context.Context, tenant, userID string, p adapters.Pair, expiration time.Duration) error {
	c, err := g.client(tenant)
	if err != nil {
		return err
	}
	return c.SetPresence(ctx, userID, graphclient.Pair{Availability: p.Availability, Activity: p.Activity}, expiration)
}

// ClearPresence removes the application's session for a user.
func (g *graphTenants) ClearPresence(ctx context.Context, tenant, userID string) error {
	c, err := g.client(tenant)
	if err != nil {
		return err
	}
	return c.ClearPresence(ctx, userID)
}

// GetPresences reads the aggregated presence of users, keyed by id.
func (g *graphTenants) GetPresences(ctx context.Context, tenant string, userIDs []string) (map[string]adapters.Pair, error) {
	c, err := g.client(tenant)
	if err != nil {
		return nil, err
	}
	presences, err := c.GetPresencesByUserID(ctx, userIDs)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]adapters.Pair, len(presences))
	for _, p := range presences {
		seen[p.ID] = adapters.Pair{Availability: p.Availability, Activity: p.Activity}
	}
	return seen, nil
}

// lookupUser resolves a UPN to an object id for the directory. It makes
// one request; userLookups puts it behind a breaker.
func (g *graphTenants) lookupUser(ctx context.Context, tenant, upn string) (string, error) {
	c, err := g.client(tenant)
	if err != nil {
		return "", err
	}
	user, err := c.GetUser(ctx, upn)
	if err != nil {
		return "", err
	}
	return user.ID, nil
}

// userLookups resolves UPNs through Graph behind one circuit breaker per
// tenant, so that a Graph outage costs a few probes instead of a request
// per event and redelivery. The breaker opens on 5xx, timeouts and network
// failures (as the engine's does), never on 404 or 429.
type userLookups struct {
	graph    *graphTenants
	breakers map[string]*lookupBreaker
}

// lookupBreaker is one tenant's breaker and when it closes for probes.
type lookupBreaker struct {
	cb        *gobreaker.CircuitBreaker[string]
	timeout   time.Duration
	openUntil atomic.Int64 // Unix nanoseconds
}

// newUserLookups builds a breaker per configured tenant; each state change
// is logged once, not each event it turns away.
func newUserLookups(g *graphTenants, cfg config.Breaker, log *slog.Logger) *userLookups {
	l := &userLookups{graph: g, breakers: map[string]*lookupBreaker{}}
	for tenant := range g.clients {
		b := &lookupBreaker{timeout: cfg.OpenTimeout}
		b.cb = gobreaker.NewCircuitBreaker[string](gobreaker.Settings{
			Name:        "user lookups:" + tenant,
			MaxRequests: 1,
			Timeout:     cfg.OpenTimeout,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.Failures },
			IsSuccessful: func(err error) bool {
				class, _ := classifyGraph(err)
				return err == nil || class != engine.Retryable
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

// lookup resolves upn in tenant for the directory. While the breaker is
// open it fails at once, asking for the event to come back when the next
// probe may go; a user Graph does not know is permanent.
func (l *userLookups) lookup(ctx context.Context, tenant, upn string) (string, error) {
	b, ok := l.breakers[tenant]
	if !ok {
		return "", fmt.Errorf("tenant %q is not configured", tenant)
	}
	id, err := b.cb.Execute(func() (string, error) { return l.graph.lookupUser(ctx, tenant, upn) })
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return "", &worker.RetryError{After: b.remaining(), Quiet: true, Err: fmt.Errorf("user lookups in tenant %s are paused while Graph fails: %w", tenant, err)}
	}
	var gerr *graphclient.Error
	if errors.As(err, &gerr) && gerr.StatusCode == http.StatusNotFound {
		return "", &worker.PermanentError{Reason: "unknown user", GraphError: gerr.Error(), Err: fmt.Errorf("%w: %s", directory.ErrUnknownUser, upn)}
	}
	return "", classifiedError(err)
}

// classifyGraph sorts a graphclient error for the engine. A token that
// can not be had (a wrong or expired secret) is an outage to fix in the
// configuration: the desired states wait for it instead of being
// dead-lettered. So is a Graph answer of 401 (a token Graph does not
// accept) or 403: the presence permission is granted to the application
// for the whole tenant (Graph's 403 for a missing permission or admin
// consent often has no message), and Graph answers a problem with one
// user with 400 or 404. Such refusals pause the tenant (engine.Refused).
func classifyGraph(err error) (engine.ErrorClass, time.Duration) {
	var tokenErr *graphclient.TokenError
	if errors.As(err, &tokenErr) {
		return engine.Retryable, graphclient.RetryAfter(err)
	}
	var gerr *graphclient.Error
	if errors.As(err, &gerr) && (gerr.StatusCode == http.StatusUnauthorized || gerr.StatusCode == http.StatusForbidden) {
		return engine.Refused, 0
	}
	switch graphclient.Classify(err) {
	case graphclient.Throttled:
		return engine.Throttled, graphclient.RetryAfter(err)
	case graphclient.Permanent:
		return engine.Permanent, 0
	default:
		return engine.Retryable, graphclient.RetryAfter(err)
	}
}

// classifiedError wraps a Graph error as the worker's retry or permanent
// error; a refusal stays permanent here, as before tenant pauses.
func classifiedError(err error) error {
	class, after := classifyGraph(err)
	if class == engine.Permanent || class == engine.Refused {
		return &worker.PermanentError{Reason: "graph refused the request", GraphError: err.Error(), Err: err}
	}
	return &worker.RetryError{After: after, Err: err}
}

// resolver adapts the directory to the worker: an unknown user is
// permanent, anything else is retried.
type resolver struct {
	dir *directory.Directory
}

func (r resolver) Resolve(ctx context.Context, tenant, user string) (string, error) {
	id, err := r.dir.Resolve(ctx, tenant, user)
	if err == nil {
		return id, nil
	}
	var permanent *worker.PermanentError
	var retry *worker.RetryError
	switch {
	case errors.As(err, &permanent), errors.As(err, &retry):
		return "", err
	case errors.Is(err, directory.ErrUnknownUser):
		return "", &worker.PermanentError{Reason: "unknown user", Err: err}
	default:
		return "", &worker.RetryError{Err: err}
	}
}
