package bridge

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/presence-bridge/presence-bridge/bridge/admin"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/ingest"
	"github.com/presence-bridge/presence-bridge/bridge/sources"
)

// live is what a reload changes while the bridge runs.
type live struct {
	mu      sync.Mutex
	sources *ingest.SourceSet // nil until HTTP is up
	config  []config.Source   // the sources as last loaded
}

// Reload applies what may change while the bridge runs, from a freshly
// loaded configuration: the directory, and the sources' tokens, secrets
// and other adapter settings. Each is swapped at once, so no event is
// dropped or judged by a mix of old and new. Adding, removing or moving a
// source (name, type, tenant or path) needs a restart: Reload then changes
// nothing and says so. Other keys are read only at start.
func (b *Bridge) Reload(cfg *config.Config) error {
	b.live.mu.Lock()
	defer b.live.mu.Unlock()
	if b.live.sources == nil || b.directory == nil {
		return errors.New("reload: the bridge is not started")
	}
	if !sources.Same(b.live.config, cfg.Sources) {
		return errors.New("reload: sources were added, removed or moved (name, type, tenant or path); restart the bridge for that")
	}
	webhooks, err := sources.Webhooks(cfg.Sources, b.cfg.HTTP, b.calendarSubs.Lifecycle())
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	b.directory.Replace(cfg.Directory)
	b.entries.Store(&cfg.Directory)
	b.teams.Load().Reload()
	b.live.sources.Replace(webhooks)
	b.live.config = slices.Clone(cfg.Sources)
	b.log.Info("configuration reloaded", "directory_entries", len(cfg.Directory), "sources", len(webhooks))
	return nil
}

// startLive keeps the sources HTTP starts with, for Reload to swap.
func (b *Bridge) startLive(sources []ingest.Source) *ingest.SourceSet {
	b.live.mu.Lock()
	defer b.live.mu.Unlock()
	b.live.sources, b.live.config = ingest.NewSourceSet(sources), slices.Clone(b.cfg.Sources)
	return b.live.sources
}

// adminSources lists the sources as last loaded, for the admin API.
func (b *Bridge) adminSources() []admin.Source {
	b.live.mu.Lock()
	defer b.live.mu.Unlock()
	return sources.Describe(b.live.config)
}
