package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

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

// lookupUser resolves a UPN to an object id for the directory.
func (g *graphTenants) lookupUser(ctx context.Context, tenant, upn string) (string, error) {
	c, err := g.client(tenant)
	if err != nil {
		return "", err
	}
	user, err := c.GetUser(ctx, upn)
	if err == nil {
		return user.ID, nil
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
