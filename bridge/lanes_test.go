package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// consumerInfo reads the bridge's consumer of the events stream.
func consumerInfo(t *testing.T, b *bridge.Bridge) *jetstream.ConsumerInfo {
	t.Helper()
	consumer, err := b.Queue().JetStream().Consumer(context.Background(), "PRESENCE_EVENTS", "presence-worker")
	if err != nil {
		t.Fatal(err)
	}
	info, err := consumer.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// waitSettled waits until the worker's consumer has nothing pending and
// nothing waiting for an ack: every event is applied or dead-lettered,
// none retried over and over. within is raised to testpoll.Deadline.
func waitSettled(t *testing.T, b *bridge.Bridge, within time.Duration) {
	t.Helper()
	testpoll.WithinOK(t, max(within, testpoll.Deadline), "the consumer to settle", func() error {
		if info := consumerInfo(t, b); info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("%d pending, %d awaiting ack, %d redelivered", info.NumPending, info.NumAckPending, info.NumRedelivered)
		}
		return nil
	})
}

// pendingEvents is how many events the bridge's consumer has not yet
// acknowledged, delivered or not.
func pendingEvents(t *testing.T, b *bridge.Bridge) int {
	t.Helper()
	info := consumerInfo(t, b)
	return info.NumAckPending + int(info.NumPending)
}

// callsInState returns how many calls the admin view shows for user.
func callsInState(t *testing.T, b *bridge.Bridge, user string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+b.Addr()+"/v1/admin/users/contoso.example/"+user, nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var view struct {
		State struct{ Calls map[string]any }
	}
	if err := json.NewDecoder(resp.Body).Decode(&view); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("admin view of %s: %d %v", user, resp.StatusCode, err)
	}
	return len(view.State.Calls)
}

// TestStormDoesNotHoldUpOtherUsers: a storm of events for one user, each
// slow to apply (its UPN is looked up every time, and Graph takes 20 ms to
// answer), is posted first; other users' single events are applied while
// most of the storm still waits, instead of behind all of it. The storm is
// applied once, in order, and ends in the state of its last event.
func TestStormDoesNotHoldUpOtherUsers(t *testing.T) {
	const storm = 400
	yaml := strings.Replace(testConfig(t), "  timeout: 2s\n", "  timeout: 2s\n  user_cache_ttl: 0s\n", 1)
	b := startBridge(t, withLookupUsers(yaml, 3))
	em := b.Emulator()
	em.SetLatency(20 * time.Millisecond)

	start := time.Now().Add(-time.Hour)
	for batch := 0; batch < storm; batch += 100 {
		events := make([]string, 100)
		for i := range events {
			n := batch + i
			state := []string{"active", "held"}[n%2]
			if n == storm-1 {
				state = "active"
			}
			events[i] = callEvent(fmt.Sprintf("storm-%d", n), "alice@contoso.example", "c1", state, start.Add(time.Duration(n)*time.Second))
		}
		if r := postEvent(t, b, `{"events":[`+strings.Join(events, ",")+`]}`); r.status != http.StatusAccepted {
			t.Fatalf("post the storm: %d %v", r.status, r.body)
		}
	}
	// Four calm users, so that one at least is in another lane than the
	// storm's, whatever the hash.
	calm := []string{bobID}
	for i := range 3 {
		id, _ := lookupUser(i)
		calm = append(calm, id)
	}
	for i, user := range calm {
		if r := postEvent(t, b, callEvent(fmt.Sprintf("calm-%d", i), user, "c9", "active", time.Now())); r.status != http.StatusAccepted {
			t.Fatalf("post a calm event: %d %v", r.status, r.body)
		}
	}
	applied := func() bool {
		for _, user := range calm {
			if callsInState(t, b, user) > 0 {
				return true
			}
		}
		return false
	}
	testpoll.Until(t, "a calm user's event to be applied", applied)
	// Each storm event costs at least one 20 ms lookup, one after the
	// other; a worker that applies everything in one line gets to the
	// calm events only after all of them.
	left := pendingEvents(t, b)
	t.Logf("the first calm event was applied with %d events pending (a storm of %d)", left, storm)
	if left < storm/2 {
		t.Fatalf("the first calm event was applied only when %d of %d storm events were left: the storm held it up", left, storm)
	}

	waitSettled(t, b, time.Minute)
	waitPresence(t, b, aliceID, "Busy/InACall", 30*time.Second)
	for _, user := range calm {
		waitPresence(t, b, user, "Busy/InACall", 30*time.Second)
	}
	// Waiting in a lane longer than ack_wait (5 s here) did not get storm
	// events delivered, and looked up, a second time.
	if n := countRequests(b, "/users/alice@contoso.example"); n != storm {
		t.Fatalf("the storm user was looked up %d times for %d events", n, storm)
	}
}
