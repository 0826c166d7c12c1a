package bridge

import (
	"errors"
	"fmt"

	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// Reload applies what may change while the bridge runs, from a freshly
// loaded configuration: the directory, and the sources' tokens, secrets
// and other adapter settings. Each is swapped at once, so no event is
// dropped or judged by a mix of old and new. Adding, removing or moving a
// source (name, type, tenant or path) needs a restart: Reload then changes
// nothing and says so. Other keys are read only at start.
func (b *Bridge) Reload(cfg *config.Config) error {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	if b.live == nil || b.directory == nil {
		return errors.New("reload: the bridge is not started")
	}
	n, err := b.live.Reload(cfg.Sources)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	b.directory.Replace(cfg.Directory)
	b.entries.Store(&cfg.Directory)
	b.teams.Load().Reload()
	b.log.Info("configuration reloaded", "directory_entries", len(cfg.Directory), "sources", n)
	return nil
}
