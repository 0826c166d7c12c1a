package history

import (
	"log/slog"

	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// FromConfig returns the Options cfg sets (admin.history and the KV
// replicas), logging to log.
func FromConfig(cfg *config.Config, log *slog.Logger) Options {
	return Options{
		Replicas:   cfg.NATS.Replicas,
		MaxPerUser: cfg.Admin.History.MaxEntries,
		MaxAge:     cfg.Admin.History.MaxAge,
		MaxRate:    cfg.Admin.History.MaxRate,
		Log:        log,
	}
}
