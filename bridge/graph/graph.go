// Package graph holds the bridge's Graph clients, one per configured
// tenant, and serves every stage that talks to Graph: identity lookups,
// the writers' calls and reads, and adapters that fetch from Graph.
package graph

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/writer"
	"github.com/presence-bridge/presence-bridge/graphclient"
)

// Tenants holds one Graph client per configured tenant.
//
// It is what the writers need of Graph: a writer.GraphWriter, a
// writer.PresenceReader and a writer.StatusMessenger.
type Tenants struct {
	clients map[string]*graphclient.Client
}

// New builds the clients; emulatorURL, when set, is used for every tenant
// that names no explicit URLs.
func New(cfg config.Graph, emulatorURL string, opts ...Option) (*Tenants, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	g := &Tenants{clients: map[string]*graphclient.Client{}}
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
		if o.observe != nil {
			gc.HTTPClient = observedClient(t.ID, cfg.Timeout, o.observe)
		}
		client, err := graphclient.New(gc)
		if err != nil {
			return nil, fmt.Errorf("graph.tenants[%d]: %w", i, err)
		}
		g.clients[t.ID] = client
	}
	return g, nil
}

// observedClient is the HTTP client graphclient would make itself, with
// every request reported to observe.
func observedClient(tenant string, timeout time.Duration, observe Observer) *http.Client {
	if timeout <= 0 {
		timeout = graphclient.DefaultTimeout
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: &observed{tenant: tenant, next: tr, observe: observe}, Timeout: timeout}
}

// CloseIdleConnections closes every client's idle connections.
func (g *Tenants) CloseIdleConnections() {
	for _, c := range g.clients {
		c.CloseIdleConnections()
	}
}

// Client returns tenant's client.
func (g *Tenants) Client(tenant string) (*graphclient.Client, error) {
	c, ok := g.clients[tenant]
	if !ok {
		return nil, fmt.Errorf("tenant %q is not configured", tenant)
	}
	return c, nil
}

// SetPresence sets the application's session for a user.
func (g *Tenants) SetPresence(ctx context.Context, tenant, userID string, p adapters.Pair, expiration time.Duration) error {
	c, err := g.Client(tenant)
	if err != nil {
		return err
	}
	return c.SetPresence(ctx, userID, graphclient.Pair{Availability: p.Availability, Activity: p.Activity}, expiration)
}

// ClearPresence removes the application's session for a user.
func (g *Tenants) ClearPresence(ctx context.Context, tenant, userID string) error {
	c, err := g.Client(tenant)
	if err != nil {
		return err
	}
	return c.ClearPresence(ctx, userID)
}

// GetPresences reads the aggregated presence of users and the text of
// their status messages, keyed by id.
func (g *Tenants) GetPresences(ctx context.Context, tenant string, userIDs []string) (map[string]writer.Aggregate, error) {
	c, err := g.Client(tenant)
	if err != nil {
		return nil, err
	}
	presences, err := c.GetPresencesByUserID(ctx, userIDs)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]writer.Aggregate, len(presences))
	for _, p := range presences {
		seen[p.ID] = writer.Aggregate{Pair: adapters.Pair{Availability: p.Availability, Activity: p.Activity}, StatusText: p.StatusText()}
	}
	return seen, nil
}

// SetStatusMessage shows text under a user's name until expires.
func (g *Tenants) SetStatusMessage(ctx context.Context, tenant, userID, text string, expires time.Time) error {
	c, err := g.Client(tenant)
	if err != nil {
		return err
	}
	return c.SetStatusMessage(ctx, userID, text, expires)
}

// ClearStatusMessage removes a user's status message.
func (g *Tenants) ClearStatusMessage(ctx context.Context, tenant, userID string) error {
	c, err := g.Client(tenant)
	if err != nil {
		return err
	}
	return c.ClearStatusMessage(ctx, userID)
}

var (
	_ writer.GraphWriter     = (*Tenants)(nil)
	_ writer.PresenceReader  = (*Tenants)(nil)
	_ writer.StatusMessenger = (*Tenants)(nil)
)

// LookupUser resolves a UPN to an object id. It makes one request;
// identity.Lookups puts it behind a breaker.
func (g *Tenants) LookupUser(ctx context.Context, tenant, upn string) (string, error) {
	c, err := g.Client(tenant)
	if err != nil {
		return "", err
	}
	user, err := c.GetUser(ctx, upn)
	if err != nil {
		return "", err
	}
	return user.ID, nil
}

// GetEvent reads a user's calendar event: its window, free/busy status and
// whether it was cancelled.
func (g *Tenants) GetEvent(ctx context.Context, tenant, userID, eventID string) (graphclient.CalendarEvent, error) {
	c, err := g.Client(tenant)
	if err != nil {
		return graphclient.CalendarEvent{}, err
	}
	return c.GetEvent(ctx, userID, eventID)
}
