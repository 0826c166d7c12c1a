package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// TestWatchConfig reloads on SIGHUP and when the directory file changes,
// and keeps the running configuration when the file turns invalid.
func TestWatchConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	people := filepath.Join(dir, "people.csv")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(path, "graph:\n  tenants: [{id: t.example, client_id: app, client_secret: s}]\ndirectory_file: people.csv\n")
	write(people, "ext:1,a@t.example\n")

	reloads := make(chan *config.Config, 10)
	hup := make(chan os.Signal, 1)
	logs := &syncWriter{w: &bytes.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchConfig(ctx, path, hup, 10*time.Millisecond, func(c *config.Config) error { reloads <- c; return nil }, slog.New(slog.NewTextHandler(logs, nil)))
	}()
	defer func() { cancel(); <-done }()
	next := func(why string) *config.Config {
		t.Helper()
		select {
		case c := <-reloads:
			return c
		case <-time.After(30 * time.Second):
			t.Fatalf("no reload after %s", why)
			return nil
		}
	}

	hup <- os.Interrupt // any signal on the channel stands for SIGHUP
	if c := next("SIGHUP"); c.Directory["ext:1"] != "a@t.example" {
		t.Fatalf("directory after SIGHUP: %v", c.Directory)
	}
	write(people, "ext:1,a@t.example\next:2,b@t.example\n")
	if c := next("a directory change"); c.Directory["ext:2"] != "b@t.example" {
		t.Fatalf("directory after the change: %v", c.Directory)
	}
	write(people, "ext:1,a@t.example\next:2,nobody\n")
	testpoll.Until(t, "the invalid directory reported", func() bool { return strings.Contains(logs.String(), "configuration not reloaded") })
	select {
	case c := <-reloads:
		t.Fatalf("an invalid configuration was applied: %v", c.Directory)
	default:
	}
	if !strings.Contains(logs.String(), "row 2") {
		t.Fatalf("the log does not name the row: %s", logs.String())
	}
}
