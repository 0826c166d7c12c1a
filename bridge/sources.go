package bridge

import (
	"fmt"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/catalog"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/ingest"
)

// ingestSources turns the configured sources into what the HTTP front
// needs: bearer tokens for /v1/events and an adapter per webhook path.
func (b *Bridge) ingestSources() ([]ingest.Source, error) {
	return b.buildSources(b.cfg.Sources)
}

// buildSources builds the HTTP front's sources from configured ones; the
// sources that connect out have none.
func (b *Bridge) buildSources(sources []config.Source) ([]ingest.Source, error) {
	out := make([]ingest.Source, 0, len(sources))
	for i, s := range sources {
		if catalog.ConnectsOut(s.Type) {
			continue // no webhook: it runs (sources_run.go)
		}
		deps := catalog.Deps{CalendarLifecycle: b.calendarSubs.lifecycle()}
		adapter, err := catalog.Webhook(sourceConfig(s, b.cfg.HTTP), deps)
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
