package writer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

// throttledGraph is the writers' GraphWriter over a graphclient.Client.
type throttledGraph struct{ c *graphclient.Client }

func (g throttledGraph) SetPresence(ctx context.Context, _, userID string, p adapters.Pair, exp time.Duration) error {
	return g.c.SetPresence(ctx, userID, graphclient.Pair{Availability: p.Availability, Activity: p.Activity}, exp)
}

func (g throttledGraph) ClearPresence(ctx context.Context, _, userID string) error {
	return g.c.ClearPresence(ctx, userID)
}

// TestBudgetLearnedFrom429s: the emulator holds the tenant to 50
// requests per 30 s while the bridge is configured for 333 (the ratio of
// Graph's old 1,500 to its published 10,000, scaled down thirtyfold to
// keep the test short). 450 users need nine windows; the writer learns
// the lower limit from its first 429s, so only a few 429s come, counted
// on the emulator's side, where a writer at a fixed rate gets a burst of
// them in every window.
func TestBudgetLearnedFrom429s(t *testing.T) {
	const users, limit, budget = 450, 50, 333
	const app = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	clock := emulator.NewFakeClock(t0)
	seeded := make([]emulator.User, users)
	for u := range users {
		seeded[u] = emulator.User{ID: learnedUser(u), UserPrincipalName: fmt.Sprintf("l%d@contoso.example", u)}
	}
	em, err := emulator.New(emulator.Config{
		Listen: "127.0.0.1:0",
		Tenants: []emulator.Tenant{{
			ID:    "contoso.example",
			Apps:  []emulator.App{{ClientID: app, ClientSecret: "demo-secret", Roles: []string{"Presence.ReadWrite.All"}}},
			Users: seeded,
		}},
		Throttle: emulator.Throttle{Limit: limit, Window: 30 * time.Second},
	}, emulator.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	client, err := graphclient.New(graphclient.Config{
		TenantID: "contoso.example", ClientID: app, ClientSecret: "demo-secret",
		GraphBaseURL: "http://" + em.Addr() + "/v1.0", LoginBaseURL: "http://" + em.Addr(),
	})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := startJetStream(t)
	h := &harness{t: t, js: js}
	e, err := newTestPool(Options{
		JetStream: js, Graph: throttledGraph{client}, Clock: clock,
		Tenants: []TenantOptions{{ID: "contoso.example", Budget: budget, Window: 30 * time.Second}},
		Rules:   rules, Expiration: 15 * time.Minute, LeaseTTL: 2 * time.Second, Tick: 2 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	for u := range users {
		if err := e.Apply(context.Background(), "contoso.example", learnedUser(u), call("pbx", "c1", "active", 0, false)); err != nil {
			t.Fatal(err)
		}
	}
	h.caughtUp(e, learnedUser(users-1))
	set, throttled := 0, 0
	for step := 0; set < users; step++ {
		if step == 3000 { // 600 s of fake time: twenty windows
			t.Fatalf("%d of %d users set after %s of fake time", set, users, clock.Now().Sub(t0))
		}
		clock.Advance(200 * time.Millisecond)
		h.quiesce(e)
		set, throttled = 0, 0
		for _, r := range em.Requests() {
			switch {
			case !strings.HasSuffix(r.Path, "/setPresence"):
			case r.Status == 200:
				set++
			case r.Status == 429:
				throttled++
			}
		}
	}
	for u := range users {
		if p, _ := em.Presence(learnedUser(u)); p.Availability+"/"+p.Activity != "Busy/InACall" {
			t.Fatalf("%s is %s/%s", learnedUser(u), p.Availability, p.Activity)
		}
	}
	// A writer at a fixed rate meets a 429 in every window (nine here);
	// one that learns meets the first, then one each time it has grown
	// back past the limit, every third window.
	if throttled > 4 {
		t.Fatalf("%d 429s while %d users converged under a limit of %d per 30 s", throttled, users, limit)
	}
	t.Logf("%d users set in %s of fake time with %d 429s", users, clock.Now().Sub(t0), throttled)
}

func learnedUser(u int) string { return fmt.Sprintf("1ea4ed00-0000-0000-0000-%012d", u) }
