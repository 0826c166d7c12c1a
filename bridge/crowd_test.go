package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
)

// TestCrowdedUserStaysBounded: a hunt group rings one agent thousands of
// times (each ring its own call id) through HTTP. The agent's stored state
// stays under the documented caps, every event is settled (none is
// retried forever), another person's call still shows, and so does the
// agent's own call.
func TestCrowdedUserStaysBounded(t *testing.T) {
	const rings, batch = 4000, 500
	const maxClaims, maxStateSize = 64, 64 << 10 // the documented defaults
	// A batch of 500 is acknowledged by JetStream in well under a second
	// on a quiet machine, but not always within testConfig's 1s on a busy
	// one (503 queue_unavailable); this test is about the state's bounds,
	// not how fast NATS stores, so it gives the publish longer.
	b := startBridge(t, strings.Replace(testConfig(t), "publish_timeout: 1s", "publish_timeout: 30s", 1))
	start := time.Now()
	for n := 0; n < rings; n += batch {
		events := make([]string, batch)
		for i := range events {
			ring := n + i
			events[i] = callEvent(fmt.Sprintf("ring-%d", ring), "alice@contoso.example", fmt.Sprintf("hunt-%05d", ring), "ringing", start)
		}
		if r := postEvent(t, b, `{"events":[`+strings.Join(events, ",")+`]}`); r.status != http.StatusAccepted {
			t.Fatalf("batch from ring %d: %d %v", n, r.status, r.body)
		}
	}
	for _, user := range []string{"bob@contoso.example", "alice@contoso.example"} {
		if r := postEvent(t, b, callEvent("active-"+user, user, "real", "active", start.Add(time.Second))); r.status != http.StatusAccepted {
			t.Fatalf("active for %s: %d %v", user, r.status, r.body)
		}
	}
	waitPresence(t, b, bobID, "Busy/InACall", 2*time.Minute)
	waitPresence(t, b, aliceID, "Busy/InACall", 2*time.Minute)
	for _, user := range []string{"bob@contoso.example", "alice@contoso.example"} {
		if r := postEvent(t, b, callEvent("ended-"+user, user, "real", "ended", start.Add(2*time.Second))); r.status != http.StatusAccepted {
			t.Fatalf("ended for %s: %d %v", user, r.status, r.body)
		}
	}
	waitPresence(t, b, bobID, "Offline/Offline", 2*time.Minute)
	waitPresence(t, b, aliceID, "Offline/Offline", 2*time.Minute)
	waitSettled(t, b, 2*time.Minute)
	t.Logf("%d rings and 4 calls applied in %s", rings, time.Since(start).Round(time.Millisecond))

	claims := adminClaims(t, b, "alice@contoso.example")
	if claims > maxClaims || claims == 0 {
		t.Errorf("the agent's state holds %d claims, want 1 to %d", claims, maxClaims)
	}
	kv, err := b.Queue().JetStream().KeyValue(context.Background(), "PRESENCE_STATE")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for key := range keys.Keys() {
		entry, err := kv.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(entry.Value()); n > maxStateSize {
			t.Errorf("state %s is %d bytes, over %d", key, n, maxStateSize)
		}
	}
	if letters, err := b.Queue().ListDeadLetters(context.Background(), 0, 10); err != nil || len(letters) != 0 {
		t.Errorf("dead letters %v (err %v), want none", letters, err)
	}
}

// adminClaims counts the claims in a user's state, read through the admin
// view.
func adminClaims(t *testing.T, b *bridge.Bridge, user string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+b.Addr()+"/v1/admin/users/contoso.example/"+user, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var view struct {
		State struct {
			Calls, Meetings, Presence map[string]json.RawMessage
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&view); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("admin view of %s: %d %v", user, resp.StatusCode, err)
	}
	return len(view.State.Calls) + len(view.State.Meetings) + len(view.State.Presence)
}

// TestEventTooLargeForStateIsDeadLettered: an event whose claim can not
// fit in a user's state (max_state_size at its minimum, ids of escaped
// characters) is dead-lettered with the reason, not retried forever, and
// the user's next events apply.
func TestEventTooLargeForStateIsDeadLettered(t *testing.T) {
	yaml := strings.Replace(testConfig(t), "admin: {token: admin-token}", "admin: {token: admin-token}\npresence: {max_state_size: 4096}", 1)
	b := startBridge(t, yaml)
	now := time.Now()
	huge := strings.Repeat("<", 256) // 256 characters, six bytes each in JSON
	if r := postEvent(t, b, callEvent(huge, "alice@contoso.example", huge, "active", now)); r.status != http.StatusAccepted {
		t.Fatalf("post: %d %v", r.status, r.body)
	}
	letters := waitDeadLetters(t, b, 1)
	if want := "event not stored: user state too large"; !strings.HasPrefix(letters[0].Reason, want) {
		t.Fatalf("dead letter reason %q, want it to start with %q", letters[0].Reason, want)
	}
	waitSettled(t, b, 2*time.Minute)
	postEvent(t, b, callEvent("next", "alice@contoso.example", "c1", "active", now.Add(time.Second)))
	waitPresence(t, b, aliceID, "Busy/InACall", 2*time.Minute)
}
