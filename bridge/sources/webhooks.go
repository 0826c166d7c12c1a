// Package sources turns the configured sources into running ones: an
// adapter per webhook source for the HTTP front (Webhooks, kept swappable
// by a reload in Live), and a runner per connect-out source, run by one
// bridge at a time under its lease (Start).
package sources

import (
	"fmt"
	"slices"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/catalog"
	"github.com/presence-bridge/presence-bridge/adapters/graphcalendar"
	"github.com/presence-bridge/presence-bridge/bridge/admin"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/ingest"
)

// Webhooks builds the HTTP front's sources from configured ones: bearer
// tokens for /v1/events and an adapter per webhook path. The sources
// that connect out have none (Start runs them). lifecycle is where
// graphcalendar sources send lifecycle notifications; nil without
// managed subscriptions.
func Webhooks(sources []config.Source, h config.HTTP, lifecycle graphcalendar.LifecycleFunc) ([]ingest.Source, error) {
	out := make([]ingest.Source, 0, len(sources))
	for i, s := range sources {
		if catalog.ConnectsOut(s.Type) {
			continue
		}
		adapter, err := catalog.Webhook(sourceConfig(s, h), catalog.Deps{CalendarLifecycle: lifecycle})
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

// Same reports whether a and b configure the same sources in the same
// places (name, type, tenant, path), whatever their credentials: what a
// reload may not change.
func Same(a, b []config.Source) bool {
	return slices.EqualFunc(a, b, func(x, y config.Source) bool {
		return x.Name == y.Name && x.Type == y.Type && x.Tenant == y.Tenant && x.Path == y.Path
	})
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

// Describe lists sources for the admin API: where each is, and which
// credentials it has, never their values.
func Describe(sources []config.Source) []admin.Source {
	out := make([]admin.Source, 0, len(sources))
	for _, s := range sources {
		v := admin.Source{Name: s.Name, Type: s.Type, Tenant: s.Tenant, Path: s.Path, Auth: []string{}}
		if s.Token != "" {
			v.Auth = append(v.Auth, "token")
		}
		if s.Secret != "" {
			v.Auth = append(v.Auth, "secret")
		}
		out = append(out, v)
	}
	return out
}
