package bridge_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
	"github.com/presence-bridge/presence-bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// clusterConfig is a bridge on external NATS and a shared emulator.
func clusterConfig(natsURL, emulatorAddr string) string {
	return bridgetest.Header + fmt.Sprintf(`nats:
  embedded: false
  urls: [%q]
  publish_timeout: 2s
graph:
`, natsURL) + bridgetest.Tenants("graph_url: http://"+emulatorAddr+"/v1.0", "login_url: http://"+emulatorAddr) + `  breaker: {failures: 3, open_timeout: 300ms}
  retry: {min_delay: 50ms, max_delay: 200ms}
presence: {lease_ttl: 2s}
directory:
  "ext:1001": alice@contoso.example
sources:
  - {name: demo, type: generic, token: demo-token}
`
}

// theOne waits until one of bridges (nil ones are left out) does what is
// says, such as write for the tenant, fails the test as soon as two do,
// and returns the one's index.
func theOne(t *testing.T, bridges []*bridge.Bridge, what string, is func(*bridge.Bridge) bool) int {
	t.Helper()
	found := -1
	testpoll.Until(t, "a bridge to "+what, func() bool {
		n := 0
		for i, b := range bridges {
			if b != nil && is(b) {
				found, n = i, n+1
			}
		}
		if n > 1 {
			t.Fatalf("%d bridges %s", n, what)
		}
		return n == 1
	})
	return found
}

// TestThreeBridgesOneNATS: three bridges share one NATS server and one
// Graph emulator. Events posted to any of them are applied; only one
// writes to Graph; when it stops, another takes over. (How soon is the
// writer's lease arithmetic, tested there; here the deadlines only stop a
// broken run.)
func TestThreeBridgesOneNATS(t *testing.T) {
	natsURL, em := sharedParts(t)
	bridges := make([]*bridge.Bridge, 3)
	for i := range bridges {
		bridges[i] = startClusterBridge(t, natsURL, em)
	}
	wait := func(id, want string) {
		t.Helper()
		waitEmulatorPresence(t, em, id, want)
	}
	holder := func() int {
		t.Helper()
		return theOne(t, bridges, "write for the tenant", func(b *bridge.Bridge) bool { return b.Writing("contoso.example") })
	}
	first := holder()
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
	bridges[first].Stop(context.Background())
	bridges[first] = nil
	if next := holder(); next < 0 {
		t.Fatal("no bridge took the tenant over")
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

// sharedParts starts the parts bridges share: a NATS server with
// JetStream and a standalone Graph emulator that knows Alice, Bob and
// more.
func sharedParts(t *testing.T, more ...emulator.User) (string, *emulator.Emulator) {
	t.Helper()
	return sharedPartsOn(t, nil, emulator.Throttle{}, more...)
}

// sharedPartsOn is sharedParts with the emulator on clock (the real one
// when nil) and with its presence throttling (the default when zero).
func sharedPartsOn(t testing.TB, clock emulator.Clock, throttle emulator.Throttle, more ...emulator.User) (string, *emulator.Emulator) {
	t.Helper()
	srv := natstest.Server(t)
	var opts []emulator.Option
	if clock != nil {
		opts = append(opts, emulator.WithClock(clock))
	}
	em, err := emulator.New(emulator.Config{
		Listen:   "127.0.0.1:0",
		Throttle: throttle,
		Tenants: []emulator.Tenant{{
			ID:    "contoso.example",
			Apps:  []emulator.App{{ClientID: "22553876-f5ab-4529-bffb-cfe50aa89f87", ClientSecret: "demo-secret", Roles: []string{"Presence.ReadWrite.All", "Presence.Read.All", "User.Read.All"}}},
			Users: append([]emulator.User{{ID: aliceID, UserPrincipalName: "alice@contoso.example"}, {ID: bobID, UserPrincipalName: "bob@contoso.example"}}, more...),
		}},
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	return srv.ClientURL(), em
}

func startClusterBridge(t *testing.T, natsURL string, em *emulator.Emulator) *bridge.Bridge {
	t.Helper()
	return startClusterBridgeFrom(t, clusterConfig(natsURL, em.Addr()))
}

func startClusterBridgeFrom(t *testing.T, yaml string) *bridge.Bridge {
	t.Helper()
	return startClusterBridgeOn(t, yaml, nil)
}

// startClusterBridgeOn starts a bridge whose writers tell time by clock
// (the real one when nil).
func startClusterBridgeOn(t *testing.T, yaml string, clock *emulator.FakeClock) *bridge.Bridge {
	t.Helper()
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	var opts []bridge.Option
	if clock != nil {
		opts = append(opts, bridge.WithClock(clock))
	}
	return bridgetest.Run(t, bridgetest.Parse(t, yaml), log, opts...)
}

// TestRestartOnSameStore: events accepted by a bridge that stops while
// Graph is slow are applied by the next bridge on the same NATS store;
// nothing is lost and every user converges.
func TestRestartOnSameStore(t *testing.T) {
	natsURL, em := sharedParts(t)
	first := startClusterBridge(t, natsURL, em)
	em.SetLatency(20 * time.Millisecond) // so that stopping catches work in flight
	now := time.Now()
	for i := range 30 {
		user := []string{"alice@contoso.example", "bob@contoso.example"}[i%2]
		if r := postEvent(t, first, callEvent(fmt.Sprintf("r%d", i), user, fmt.Sprintf("c%d", i), "active", now)); r.status != http.StatusAccepted {
			t.Fatalf("post %d: %d", i, r.status)
		}
	}
	for i := 0; i < 30; i += 2 {
		postEvent(t, first, callEvent(fmt.Sprintf("r-end-%d", i), "alice@contoso.example", fmt.Sprintf("c%d", i), "ended", now.Add(time.Second)))
	}
	if err := first.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	em.SetLatency(0)
	startClusterBridge(t, natsURL, em)
	testpoll.UntilOK(t, "Alice offline and Bob in a call", presencesAre(em, map[string]string{aliceID: "Offline/Offline", bobID: "Busy/InACall"}))
}
