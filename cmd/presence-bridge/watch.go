package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// defaultWatchEvery is how often run looks for a changed configuration
// or directory file.
const defaultWatchEvery = 5 * time.Second

// watchConfig reloads the configuration at path on each signal from hup,
// and when the configuration file or its directory_file changes (seen by
// polling their modification time and size every interval), until ctx
// ends. A configuration that does not load, or that reload refuses, is
// logged and the running one kept.
func watchConfig(ctx context.Context, path string, hup <-chan os.Signal, every time.Duration, reload func(*config.Config) error, log *slog.Logger) {
	if every <= 0 {
		every = defaultWatchEvery
	}
	files := watchedFiles(path)
	seen := stamps(files)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		why := ""
		select {
		case <-ctx.Done():
			return
		case <-hup:
			why = "SIGHUP"
		case <-tick.C:
			now := stamps(files)
			if now == seen {
				continue
			}
			why = "file changed"
		}
		files = watchedFiles(path)
		seen = stamps(files)
		cfg, err := config.Load(path)
		if err != nil {
			log.Error("configuration not reloaded; keeping the running one", "trigger", why, "err", err)
			continue
		}
		if err := reload(cfg); err != nil {
			log.Error("configuration not reloaded; keeping the running one", "trigger", why, "err", err)
			continue
		}
		log.Info("configuration reloaded", "trigger", why)
	}
}

// watchedFiles returns the configuration file and the directory file it
// names, if any.
func watchedFiles(path string) []string {
	files := []string{path}
	data, err := os.ReadFile(path)
	if err != nil {
		return files
	}
	if dir := config.DirectoryFileOf(data); dir != "" {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(path), dir)
		}
		files = append(files, dir)
	}
	return files
}

// stamps sums up the files' modification times and sizes in a comparable
// string.
func stamps(files []string) string {
	s := ""
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			s += f + "@" + fi.ModTime().String() + "#" + strconv.FormatInt(fi.Size(), 10) + ";"
		} else {
			s += f + "@missing;"
		}
	}
	return s
}
