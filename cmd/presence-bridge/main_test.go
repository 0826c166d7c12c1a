package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("log: {level: loud}\nsurprise: 1\n"), 0o600)
	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"example is ok", []string{"check-config", "--config", "../../config.example.yaml"}, 0, "ok\n"},
		{"unknown key", []string{"check-config", "--config", bad}, 2, "surprise: unknown key (line 2)"},
		{"missing file", []string{"check-config", "--config", filepath.Join(dir, "none.yaml")}, 2, "no such file"},
		{"unknown command", []string{"frobnicate"}, 2, ""},
		{"bad flag", []string{"check-config", "--nope"}, 2, ""},
		{"flag after a word", []string{"check-config", "stray", "--config", "../../config.example.yaml"}, 2, "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errOut)
			if code != tt.code || !strings.Contains(out.String()+errOut.String(), tt.out) {
				t.Fatalf("exit %d (want %d), output %q %q", code, tt.code, out.String(), errOut.String())
			}
		})
	}
}

// TestRunStopsOnSignal runs the whole program on a test configuration and
// cancels it as SIGTERM would: it must stop cleanly with exit code 0.
func TestRunStopsOnSignal(t *testing.T) {
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
http: {listen: "127.0.0.1:0"}
nats: {store_dir: %q}
graph:
  tenants: [{id: t.example, client_id: app, client_secret: s}]
  emulator:
    enabled: true
    listen: "127.0.0.1:0"
    tenants: [{id: t.example, apps: [{client_id: app, client_secret: s}], users: []}]
sources: [{name: demo, type: generic, token: x}]
`, filepath.Join(dir, "nats"))
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	var errOut bytes.Buffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"--config", path}, &bytes.Buffer{}, &syncWriter{w: &errOut}) }()
	time.Sleep(time.Second)
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop within 15s")
	}
}

// syncWriter lets the program's logger and the test share a buffer.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestEmulatorExampleConfig(t *testing.T) {
	for _, path := range []string{"../../graphclient/emulator/testdata/emulator.example.yaml", "../../config.example.yaml"} {
		cfg, _, err := loadEmulatorConfig(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if cfg.Listen != "127.0.0.1:8081" || len(cfg.Tenants) != 1 || len(cfg.Tenants[0].Users) != 2 {
			t.Fatalf("%s: %+v", path, cfg)
		}
	}
}

// TestDLQCommands drives `dlq list` and `dlq purge` against a running
// bridge, as an operator would.
func TestDLQCommands(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`
http: {listen: %q}
nats: {store_dir: %q}
graph:
  tenants: [{id: t.example, client_id: app, client_secret: s}]
  emulator:
    enabled: true
    listen: "127.0.0.1:0"
    tenants: [{id: t.example, apps: [{client_id: app, client_secret: s, roles: [Presence.ReadWrite.All, User.Read.All]}], users: []}]
sources: [{name: demo, type: generic, token: x}]
admin: {token: admin-secret}
`, addr, filepath.Join(dir, "nats"))), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- run(ctx, []string{"--config", path}, &bytes.Buffer{}, &syncWriter{w: &bytes.Buffer{}}) }()
	defer func() { cancel(); <-done }()
	// An event for a user nobody knows ends up dead-lettered.
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/events", strings.NewReader(`{"id":"x1","source":"demo","type":"call","user":"ext:404","occurredAt":"2026-11-23T10:00:00Z","callId":"c","state":"active"}`))
		req.Header.Set("Authorization", "Bearer x")
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("bridge did not take the event")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out bytes.Buffer
	for !strings.Contains(out.String(), "unknown user") {
		out.Reset()
		if code := run(context.Background(), []string{"dlq", "list", "--config", path}, &out, &bytes.Buffer{}); code != 0 {
			t.Fatalf("dlq list: exit %d %s", code, out.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("dlq list shows no dead letter: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out.Reset()
	if code := run(context.Background(), []string{"dlq", "purge", "--config", path}, &out, &bytes.Buffer{}); code != 0 || !strings.Contains(out.String(), `"purged": 1`) {
		t.Fatalf("dlq purge: exit %d %s", code, out.String())
	}
	if code := run(context.Background(), []string{"dlq", "replay", "nope", "--config", path}, &out, &bytes.Buffer{}); code != 2 {
		t.Fatalf("dlq replay nope: exit %d", code)
	}
}
