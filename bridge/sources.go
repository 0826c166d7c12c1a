package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/generic"
	"github.com/presence-bridge/presence-bridge/adapters/graphcalendar"
	"github.com/presence-bridge/presence-bridge/adapters/ringcentral"
	"github.com/presence-bridge/presence-bridge/adapters/twilio"
	"github.com/presence-bridge/presence-bridge/adapters/webex"
	"github.com/presence-bridge/presence-bridge/adapters/zoomphone"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/ingest"
	"github.com/presence-bridge/presence-bridge/graphclient"
)

// adapterConstructors builds each source type's adapter; graphcalendar
// also needs a way to fetch events from Graph.
var adapterConstructors = map[string]func(adapters.SourceConfig, *graphTenants, string) (adapters.Adapter, error){
	"generic": func(c adapters.SourceConfig, _ *graphTenants, _ string) (adapters.Adapter, error) {
		return generic.New(c)
	},
	"twilio": func(c adapters.SourceConfig, _ *graphTenants, _ string) (adapters.Adapter, error) {
		return twilio.New(c)
	},
	"zoomphone": func(c adapters.SourceConfig, _ *graphTenants, _ string) (adapters.Adapter, error) {
		return zoomphone.New(c)
	},
	"webex": func(c adapters.SourceConfig, _ *graphTenants, _ string) (adapters.Adapter, error) {
		return webex.New(c)
	},
	"ringcentral": func(c adapters.SourceConfig, _ *graphTenants, _ string) (adapters.Adapter, error) {
		return ringcentral.New(c)
	},
	"graphcalendar": func(c adapters.SourceConfig, g *graphTenants, tenant string) (adapters.Adapter, error) {
		return graphcalendar.New(c, calendarFetcher{graph: g, tenant: tenant})
	},
}

// ingestSources turns the configured sources into what the HTTP front
// needs: bearer tokens for /v1/events and an adapter per webhook path.
func (b *Bridge) ingestSources() ([]ingest.Source, error) {
	out := make([]ingest.Source, 0, len(b.cfg.Sources))
	for i, s := range b.cfg.Sources {
		build, ok := adapterConstructors[s.Type]
		if !ok {
			return nil, fmt.Errorf("sources[%d]: no adapter for type %q", i, s.Type)
		}
		adapter, err := build(sourceConfig(s, b.cfg.HTTP), b.graph, s.Tenant)
		if err != nil {
			return nil, fmt.Errorf("sources[%d] (%s): %w", i, s.Name, err)
		}
		src := ingest.Source{Name: s.Name, Path: s.Path, Adapter: adapter}
		if s.Type == "generic" {
			src.Token = s.Token
		}
		out = append(out, src)
	}
	return out, nil
}

func sourceConfig(s config.Source, h config.HTTP) adapters.SourceConfig {
	return adapters.SourceConfig{
		Name:          s.Name,
		Type:          s.Type,
		Secret:        s.Secret,
		Token:         s.Token,
		PublicURL:     s.PublicURL,
		States:        s.States,
		ReplayWindow:  adapters.DefaultReplayWindow,
		BodyLimit:     h.BodyLimit,
		MaxFutureSkew: h.MaxFutureSkew,
	}
}

// calendarFetcher lets the Graph calendar adapter read events through the
// tenant's Graph client without depending on it.
type calendarFetcher struct {
	graph  *graphTenants
	tenant string
}

func (f calendarFetcher) FetchEvent(ctx context.Context, userID, eventID string) (graphcalendar.Meeting, error) {
	c, err := f.graph.client(f.tenant)
	if err != nil {
		return graphcalendar.Meeting{}, err
	}
	e, err := c.GetEvent(ctx, userID, eventID)
	var gerr *graphclient.Error
	if errors.As(err, &gerr) && gerr.StatusCode == http.StatusNotFound {
		return graphcalendar.Meeting{}, fmt.Errorf("%w: %v", graphcalendar.ErrEventNotFound, err)
	}
	if err != nil {
		return graphcalendar.Meeting{}, err
	}
	return graphcalendar.Meeting{ID: e.ID, Start: e.Start, End: e.End, ShowAs: e.ShowAs, IsCancelled: e.IsCancelled}, nil
}
