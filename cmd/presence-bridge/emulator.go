package main

import (
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

// loadEmulatorConfig reads the emulator's configuration from a bridge
// configuration (its graph.emulator section) or from a standalone emulator
// file, told apart by whether the file has a top-level graph key.
func loadEmulatorConfig(path string) (emulator.Config, config.Log, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return emulator.Config{}, config.Log{}, fmt.Errorf("read config: %w", err)
	}
	var probe map[string]yaml.Node
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return emulator.Config{}, config.Log{}, fmt.Errorf("%s: %w", path, err)
	}
	if _, isBridge := probe["graph"]; isBridge {
		cfg, err := config.Parse(data, filepath.Dir(path))
		if err != nil {
			return emulator.Config{}, config.Log{}, err
		}
		return cfg.Graph.Emulator, cfg.Log, nil
	}
	em, err := config.ParseEmulator(data)
	if err != nil {
		return emulator.Config{}, config.Log{}, fmt.Errorf("%s: %w", path, err)
	}
	return em, config.Log{Level: "info", Format: "text"}, nil
}
