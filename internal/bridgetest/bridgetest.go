// Package bridgetest builds the YAML that tests run a bridge from (one
// tenant, contoso.example, whose application the Graph emulator knows,
// and its users, so that every test names them the same way), runs the
// bridge and posts events to it.
package bridgetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// The tenant, its application and the users every test bridge knows.
const (
	Tenant       = "contoso.example"
	ClientID     = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	ClientSecret = "demo-secret"
	AliceID      = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
	BobID        = "66825e03-7ef5-42da-9069-724602c31f6b"
)

// Header is where every test bridge's YAML starts: warnings only, and
// HTTP on a free loopback port.
const Header = "log: {level: warn}\nhttp: {listen: \"127.0.0.1:0\"}\n"

// Tenants is graph.tenants with the one tenant; each of extra is a
// further "key: value" line of the tenant (graph_url, budget).
func Tenants(extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  tenants:\n    - id: %s\n      client_id: %s\n      client_secret: %s\n", Tenant, ClientID, ClientSecret)
	for _, line := range extra {
		fmt.Fprintf(&b, "      %s\n", line)
	}
	return b.String()
}

// User is one line of the emulator's users.
func User(id, upn string) string {
	return fmt.Sprintf("          - {id: %s, user_principal_name: %s}\n", id, upn)
}

// Alice and Bob are the users most tests post events for.
var (
	Alice = User(AliceID, "alice@contoso.example")
	Bob   = User(BobID, "bob@contoso.example")
)

// Emulator is graph.emulator: enabled on a free loopback port, with the
// tenant's application allowed to read and write presence and read
// users, and users (lines made by User).
func Emulator(users ...string) string {
	return fmt.Sprintf(`  emulator:
    enabled: true
    listen: "127.0.0.1:0"
    tenants:
      - id: %s
        apps:
          - client_id: %s
            client_secret: %s
            roles: [Presence.ReadWrite.All, Presence.Read.All, User.Read.All]
        users:
%s`, Tenant, ClientID, ClientSecret, strings.Join(users, ""))
}

// Parse parses a bridge's YAML, with relative paths from a temporary
// folder, and fails tb when it does not parse.
func Parse(tb testing.TB, yaml string) *config.Config {
	tb.Helper()
	cfg, err := config.Parse([]byte(yaml), tb.TempDir())
	if err != nil {
		tb.Fatalf("config: %v", err)
	}
	return cfg
}

// Run starts a bridge from cfg, logging to log (nil discards the logs),
// and stops it when the test ends, failing the test if it does not stop
// cleanly within 10 s.
func Run(tb testing.TB, cfg *config.Config, log *slog.Logger, opts ...bridge.Option) *bridge.Bridge {
	tb.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, err := bridge.New(cfg, log, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		tb.Fatalf("start: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Stop(ctx); err != nil {
			tb.Errorf("stop: %v", err)
		}
	})
	return b
}

// Post posts body as JSON to url with token as its bearer token, and
// returns an error unless the answer is 202 Accepted.
func Post(client *http.Client, url, token, body string) error {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
