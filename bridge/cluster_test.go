package bridge_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

// clusterConfig is a bridge on external NATS and a shared emulator.
func clusterConfig(natsURL, emulatorAddr string) string {
	return fmt.Sprintf(`
log: {level: warn}
http: {listen: "127.0.0.1:0"}
nats:
  embedded: false
  urls: [%q]
  publish_timeout: 2s
graph:
  tenants:
    - id: contoso.example
      client_id: 22553876-f5ab-4529-bffb-cfe50aa89f87
      client_secret: demo-secret
      graph_url: http://%s/v1.0
      login_url: http://%s
  breaker: {failures: 3, open_timeout: 300ms}
  retry: {min_delay: 50ms, max_delay: 200ms}
presence: {lease_ttl: 2s}
directory:
  "ext:1001": alice@contoso.example
sources:
  - {name: demo, type: generic, token: demo-token}
`, natsURL, emulatorAddr, emulatorAddr)
}

// TestThreeBridgesOneNATS: three bridges share one NATS server and one
// Graph emulator. Events posted to any of them are applied; only one
// writes to Graph; when it stops, another takes over within the lease TTL.
func TestThreeBridgesOneNATS(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	em, err := emulator.New(emulator.Config{
		Listen: "127.0.0.1:0",
		Tenants: []emulator.Tenant{{
			ID:    "contoso.example",
			Apps:  []emulator.App{{ClientID: "22553876-f5ab-4529-bffb-cfe50aa89f87", ClientSecret: "demo-secret", Roles: []string{"Presence.ReadWrite.All", "User.Read.All"}}},
			Users: []emulator.User{{ID: aliceID, UserPrincipalName: "alice@contoso.example"}, {ID: bobID, UserPrincipalName: "bob@contoso.example"}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })

	bridges := make([]*bridge.Bridge, 3)
	for i := range bridges {
		cfg, err := config.Parse([]byte(clusterConfig(srv.ClientURL(), em.Addr())), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		b, err := bridge.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Stop(context.Background()) })
		bridges[i] = b
	}
	presence := func(id string) string {
		p, _ := em.Presence(id)
		return p.Availability + "/" + p.Activity
	}
	wait := func(id, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for presence(id) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s is %s, want %s", id, presence(id), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	holder := func() int {
		found := -1
		deadline := time.Now().Add(10 * time.Second)
		for found < 0 && time.Now().Before(deadline) {
			n := 0
			for i, b := range bridges {
				if b != nil && b.Writing("contoso.example") {
					found, n = i, n+1
				}
			}
			if n > 1 {
				t.Fatalf("%d bridges write for one tenant", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return found
	}
	first := holder()
	if first < 0 {
		t.Fatal("no bridge writes")
	}
	// Events go in through every bridge.
	now := time.Now()
	for i, b := range bridges {
		r := postEvent(t, b, callEvent(fmt.Sprintf("k%d", i), "ext:1001", fmt.Sprintf("c%d", i), "active", now))
		if r.status != http.StatusAccepted {
			t.Fatalf("bridge %d: %d", i, r.status)
		}
	}
	wait(aliceID, "Busy/InACall")

	// Stop the writer's bridge; another takes over and keeps working.
	stopped := time.Now()
	bridges[first].Stop(context.Background())
	bridges[first] = nil
	next := holder()
	if next < 0 || time.Since(stopped) > 2*time.Second {
		t.Fatalf("no takeover within the 2 s lease TTL (holder %d after %s)", next, time.Since(stopped))
	}
	other := bridges[(first+1)%3]
	if other == nil {
		other = bridges[(first+2)%3]
	}
	for i := range 3 {
		postEvent(t, other, callEvent(fmt.Sprintf("e%d", i), "ext:1001", fmt.Sprintf("c%d", i), "ended", now.Add(time.Second)))
	}
	postEvent(t, other, callEvent("b1", "bob@contoso.example", "b", "active", now))
	wait(aliceID, "Offline/Offline")
	wait(bobID, "Busy/InACall")
	sets := 0
	for _, r := range em.Requests() {
		if strings.HasSuffix(r.Path, "/setPresence") && strings.Contains(r.Path, aliceID) {
			sets++
		}
	}
	if sets != 1 {
		t.Fatalf("alice's three calls cost %d setPresence calls, want 1 (one writer, coalesced)", sets)
	}
}
