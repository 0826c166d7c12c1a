package graph

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

// StartEmulator starts the in-process Graph emulator cfg enables, telling
// time by clock when it is not nil, and returns it with the URL New
// takes; nil and "" when cfg does not enable one.
func StartEmulator(ctx context.Context, cfg emulator.Config, clock emulator.Clock, log *slog.Logger) (*emulator.Emulator, string, error) {
	if !cfg.Enabled {
		return nil, "", nil
	}
	opts := []emulator.Option{emulator.WithLogger(log.With("component", "emulator"))}
	if clock != nil {
		opts = append(opts, emulator.WithClock(clock))
	}
	em, err := emulator.New(cfg, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("graph emulator: %w", err)
	}
	if err := em.Start(ctx); err != nil {
		return nil, "", fmt.Errorf("graph emulator: %w", err)
	}
	log.Info("graph emulator listening", "addr", em.Addr())
	return em, "http://" + em.Addr(), nil
}
