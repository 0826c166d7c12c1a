package bridge_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// TestShuffledEventsConvergeThroughTheBridge: 10,000 call events for 1,000
// users, posted in shuffled batches with 2,000 duplicates, through HTTP,
// JetStream, the worker, the state, the writer and the emulator. Every user ends
// where the ordered log says, and Graph sees no more calls than there are
// desired-state changes in that log.
func TestShuffledEventsConvergeThroughTheBridge(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	const users, perUser, batch = 1000, 10, 500
	userID := func(u int) string { return fmt.Sprintf("c0a1e5ce-0000-0000-0000-%012d", u) }
	var seeded strings.Builder
	for u := range users {
		fmt.Fprintf(&seeded, "          - {id: %s, user_principal_name: u%d@contoso.example}\n", userID(u), u)
	}
	cfg := testConfig(t)
	cfg = strings.Replace(cfg, "    admin: {writes: true}", seeded.String()+"    admin: {writes: true}\n    throttle: {limit: 100000000, window: 30s}", 1)
	cfg = strings.Replace(cfg, "client_secret: demo-secret\n  timeout", "client_secret: demo-secret\n      budget: 100000000\n  timeout", 1)
	b := startBridge(t, cfg)

	// The rules of the default configuration.
	rules := state.Rules{
		Call:           &adapters.Pair{Availability: "Busy", Activity: "InACall"},
		ConferenceCall: &adapters.Pair{Availability: "Busy", Activity: "InAConferenceCall"},
		Meeting:        &adapters.Pair{Availability: "Busy", Activity: "InAConferenceCall"},
		MeetingShowAs:  []string{"busy", "oof"},
		Priority:       []string{"conference", "call", "meeting", "presence"},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	var log []adapters.Event
	want := map[string]string{}
	changes := 0
	for u := range users {
		var ordered state.UserState
		last := "Offline/Offline"
		for i := range perUser {
			ev := adapters.Event{
				ID: fmt.Sprintf("u%d-%d", u, i), Source: "demo", Type: "call", User: userID(u),
				OccurredAt: base.Add(time.Duration(i) * time.Second),
				CallID:     fmt.Sprintf("c%d", rng.IntN(3)),
				State:      []string{"ringing", "active", "held", "ended"}[rng.IntN(4)],
				Conference: rng.IntN(5) == 0,
			}
			ordered.Apply(ev, ev.OccurredAt)
			now := "Offline/Offline"
			if p, _ := ordered.Desired(rules, ev.OccurredAt); p != nil {
				now = p.String()
			}
			if now != last {
				changes++
				last = now
			}
			log = append(log, ev)
		}
		want[userID(u)] = last
	}
	delivery := append(log, log[:2000]...)
	rng.Shuffle(len(delivery), func(i, j int) { delivery[i], delivery[j] = delivery[j], delivery[i] })

	var wg sync.WaitGroup
	batches := make(chan []adapters.Event)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for events := range batches {
				// A 503 is answered as the README tells senders: the same
				// events again, after a moment (a busy machine can miss
				// the publish timeout).
				body, _ := json.Marshal(map[string]any{"events": events})
				r := postEvent(t, b, string(body))
				for retries := 0; r.status == http.StatusServiceUnavailable && retries < 20; retries++ {
					// Real time must pass: a sender's pause before it
					// sends again, not a wait for a condition.
					time.Sleep(100 * time.Millisecond)
					r = postEvent(t, b, string(body))
				}
				if r.status != http.StatusAccepted {
					t.Errorf("batch: %d %v", r.status, r.body)
				}
			}
		}()
	}
	for start := 0; start < len(delivery); start += batch {
		batches <- delivery[start:min(start+batch, len(delivery))]
	}
	close(batches)
	wg.Wait()

	// Every event is settled before the presences are compared, so that a
	// user passing through the right state early can not pass the test.
	// 12,000 events take seconds on an idle machine and about a minute
	// under the race detector beside other packages' tests; the deadline
	// only costs time when the test fails.
	waitSettled(t, b, 5*time.Minute)
	testpoll.UntilOK(t, "every user to converge", presencesAre(b.Emulator(), want))
	calls := countRequests(b, "/presence/setPresence") + countRequests(b, "/presence/clearPresence")
	if calls > changes {
		t.Fatalf("%d Graph calls for %d distinct desired-state changes", calls, changes)
	}
	t.Logf("%d events delivered, %d desired-state changes in the ordered log, %d Graph calls", len(delivery), changes, calls)
}

// presencesAre is a condition for testpoll.UntilOK: the emulator shows
// each user of want (object id to "Availability/Activity") as want says.
func presencesAre(em *emulator.Emulator, want map[string]string) func() error {
	return func() error {
		wrong, example := 0, ""
		for id, w := range want {
			p, ok := em.Presence(id)
			if got := p.Availability + "/" + p.Activity; !ok || got != w {
				wrong++
				example = fmt.Sprintf("%s is %s, want %s", id, got, w)
			}
		}
		if wrong > 0 {
			return fmt.Errorf("%d users differ, e.g. %s", wrong, example)
		}
		return nil
	}
}
