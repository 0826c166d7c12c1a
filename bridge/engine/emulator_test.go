package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

const (
	emuTenant = "contoso.example"
	emuApp    = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	emuUser   = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
)

// emulatorGraph is the engine's GraphWriter over graphclient and the
// emulator, as the bridge wires it.
type emulatorGraph struct{ c *graphclient.Client }

func (g emulatorGraph) SetPresence(ctx context.Context, _, userID string, p adapters.Pair, exp time.Duration) error {
	return g.c.SetPresence(ctx, userID, graphclient.Pair{Availability: p.Availability, Activity: p.Activity}, exp)
}

func (g emulatorGraph) ClearPresence(ctx context.Context, _, userID string) error {
	return g.c.ClearPresence(ctx, userID)
}

func classifyGraphclient(err error) (ErrorClass, time.Duration) {
	var tokenErr *graphclient.TokenError
	switch {
	case errors.As(err, &tokenErr):
		return Retryable, 0
	case graphclient.Classify(err) == graphclient.Throttled:
		return Throttled, graphclient.RetryAfter(err)
	case graphclient.Classify(err) == graphclient.Permanent:
		return Permanent, 0
	}
	return Retryable, graphclient.RetryAfter(err)
}

// startEmulatorEngine runs the emulator and an engine that share one fake
// clock, and returns them.
func startEmulatorEngine(t *testing.T) (*Engine, *emulator.Emulator, *emulator.FakeClock) {
	t.Helper()
	clock := emulator.NewFakeClock(t0)
	em, err := emulator.New(emulator.Config{
		Listen: "127.0.0.1:0",
		Tenants: []emulator.Tenant{{
			ID:    emuTenant,
			Apps:  []emulator.App{{ClientID: emuApp, ClientSecret: "demo-secret", Roles: []string{"Presence.ReadWrite.All"}}},
			Users: []emulator.User{{ID: emuUser, UserPrincipalName: "alice@contoso.example"}},
		}},
	}, emulator.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	client, err := graphclient.New(graphclient.Config{
		TenantID: emuTenant, ClientID: emuApp, ClientSecret: "demo-secret",
		GraphBaseURL: "http://" + em.Addr() + "/v1.0", LoginBaseURL: "http://" + em.Addr(),
	})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := startJetStream(t)
	e, err := New(context.Background(), Options{
		JetStream: js, Graph: emulatorGraph{client}, Classify: classifyGraphclient, Clock: clock,
		Tenants: []TenantOptions{{ID: emuTenant}}, Rules: rules, Expiration: 15 * time.Minute,
		LeaseTTL: 2 * time.Second, RetryDelay: time.Second, Tick: 2 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e, em, clock
}

// emulatorShows waits up to 10 s of real time for the user's presence.
func emulatorShows(t *testing.T, em *emulator.Emulator, want, when string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, _ := em.Presence(emuUser)
		got := p.Availability + "/" + p.Activity
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: presence %s, want %s", when, got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestTwoHourCallAgainstEmulator: with expirationDuration PT15M the
// emulator drops a session 15 minutes after its last refresh; a two-hour
// call stays Busy/InACall minute by minute, then clears when it ends.
func TestTwoHourCallAgainstEmulator(t *testing.T) {
	e, em, clock := startEmulatorEngine(t)
	apply := func(ev adapters.Event) {
		if err := e.Apply(context.Background(), emuTenant, emuUser, ev); err != nil {
			t.Fatal(err)
		}
	}
	apply(call("pbx", "c1", "active", 0, false))
	waitWriter(t, e)
	clock.Advance(time.Second) // the writer's bucket starts empty
	emulatorShows(t, em, "Busy/InACall", "start")
	for minute := 1; minute <= 120; minute++ {
		clock.Advance(time.Minute)
		time.Sleep(3 * time.Millisecond) // let the writer see the new minute
		emulatorShows(t, em, "Busy/InACall", fmt.Sprintf("minute %d", minute))
	}
	// The session never lapsed: every refresh came before the previous
	// one's 15 minutes ran out, by the emulator's own log.
	var sets []time.Time
	for _, r := range em.Requests() {
		if strings.HasSuffix(r.Path, "/setPresence") && r.Status == 200 {
			sets = append(sets, r.Time)
		}
	}
	end := t0.Add(120 * time.Minute)
	for i, at := range append(sets[1:], end) {
		if gap := at.Sub(sets[i]); gap >= 15*time.Minute {
			t.Fatalf("the session went %s without a refresh after %s", gap, sets[i].Format(time.Kitchen))
		}
	}
	if len(sets) > 14 {
		t.Fatalf("%d setPresence calls in two hours; a refresh every 10 minutes needs 13", len(sets))
	}
	apply(call("pbx", "c1", "ended", 120, false))
	emulatorShows(t, em, "Offline/Offline", "after the call")
}

// TestSilentSourceLapsesAgainstEmulator: a source configured with a
// 10-minute lapse goes quiet in the middle of a call; its user clears.
func TestSilentSourceLapsesAgainstEmulator(t *testing.T) {
	e, em, clock := startEmulatorEngine(t)
	if err := e.Apply(context.Background(), emuTenant, emuUser, call("flaky", "c1", "active", 0, false)); err != nil {
		t.Fatal(err)
	}
	waitWriter(t, e)
	clock.Advance(time.Second) // the writer's bucket starts empty
	emulatorShows(t, em, "Busy/InACall", "start")
	clock.Advance(9 * time.Minute)
	time.Sleep(20 * time.Millisecond)
	emulatorShows(t, em, "Busy/InACall", "before the lapse")
	clock.Advance(time.Minute)
	emulatorShows(t, em, "Offline/Offline", "after the lapse")
}

// waitWriter waits until e writes for the tenant, so that its token bucket
// exists before the fake clock moves.
func waitWriter(t *testing.T, e *Engine) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !e.Writing(emuTenant) {
		if time.Now().After(deadline) {
			t.Fatal("no writer")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
