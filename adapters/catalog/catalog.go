// Package catalog knows every source type and builds its adapter, so that
// nothing outside adapters/ names a vendor.
package catalog

import (
	"fmt"
	"slices"
	"sort"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/generic"
	"github.com/presence-bridge/presence-bridge/adapters/graphcalendar"
	"github.com/presence-bridge/presence-bridge/adapters/ringcentral"
	"github.com/presence-bridge/presence-bridge/adapters/twilio"
	"github.com/presence-bridge/presence-bridge/adapters/webex"
	"github.com/presence-bridge/presence-bridge/adapters/zoomphone"
	"github.com/presence-bridge/presence-bridge/graphclient"
)

// Deps are what some adapters need beyond their configuration.
type Deps struct {
	// Graph is the source's tenant's Graph client (graphcalendar fetches
	// the events its notifications name).
	Graph *graphclient.Client
	// CalendarLifecycle receives graphcalendar sources' lifecycle
	// notifications (the bridge's subscription manager); optional.
	CalendarLifecycle graphcalendar.LifecycleFunc
}

var webhooks = map[string]func(adapters.SourceConfig, Deps) (adapters.Adapter, error){
	"generic":     func(c adapters.SourceConfig, _ Deps) (adapters.Adapter, error) { return generic.New(c) },
	"twilio":      func(c adapters.SourceConfig, _ Deps) (adapters.Adapter, error) { return twilio.New(c) },
	"zoomphone":   func(c adapters.SourceConfig, _ Deps) (adapters.Adapter, error) { return zoomphone.New(c) },
	"webex":       func(c adapters.SourceConfig, _ Deps) (adapters.Adapter, error) { return webex.New(c) },
	"ringcentral": func(c adapters.SourceConfig, _ Deps) (adapters.Adapter, error) { return ringcentral.New(c) },
	"graphcalendar": func(c adapters.SourceConfig, d Deps) (adapters.Adapter, error) {
		if d.Graph == nil {
			return nil, fmt.Errorf("graphcalendar source %s: no Graph client for its tenant", c.Name)
		}
		a, err := graphcalendar.New(c, graphcalendar.GraphFetcher{Client: d.Graph})
		if err != nil {
			return nil, err
		}
		if d.CalendarLifecycle != nil {
			a.OnLifecycle(d.CalendarLifecycle)
		}
		return a, nil
	},
}

// Webhook builds the adapter of a webhook source of type cfg.Type.
func Webhook(cfg adapters.SourceConfig, deps Deps) (adapters.Adapter, error) {
	build, ok := webhooks[cfg.Type]
	if !ok {
		return nil, fmt.Errorf("no adapter for type %q (known: %v)", cfg.Type, Types())
	}
	return build(cfg, deps)
}

// Types lists the source types, sorted.
func Types() []string {
	types := make([]string, 0, len(webhooks))
	for t := range webhooks {
		types = append(types, t)
	}
	sort.Strings(types)
	return slices.Clip(types)
}
