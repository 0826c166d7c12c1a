package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// TestGraphOutageOpensBreakerAndConverges: Graph answers 503 for a while;
// the breaker opens (Graph stops being called), nothing is lost, and once
// Graph is back every user converges.
func TestGraphOutageOpensBreakerAndConverges(t *testing.T) {
	b := startBridge(t, testConfig(t))
	em := b.Emulator()
	// Warm up the token and the user cache so that only presence calls fail.
	postEvent(t, b, callEvent("w1", "alice@contoso.example", "w", "active", time.Now()))
	waitPresence(t, b, aliceID, "Busy/InACall", 2*time.Second)

	em.Outage(time.Hour)
	presenceCalls := func() int {
		return countRequests(b, "/presence/setPresence") + countRequests(b, "/presence/clearPresence")
	}
	start := presenceCalls()
	now := time.Now()
	postEvent(t, b, callEvent("o1", "alice@contoso.example", "w", "ended", now))
	postEvent(t, b, callEvent("o2", "bob@contoso.example", "c2", "active", now))
	// The breaker opens after three failures and then lets one probe
	// through per open timeout (300 ms): wait until it has opened, then
	// count over a stretch of at least a second. Without a breaker each of
	// the two users is retried every 50-200 ms; with it, calls are bounded
	// by the probes the elapsed time allows, whatever the machine's speed.
	failed := func() int { return presenceCalls() - start }
	testpoll.Until(t, "three calls into the outage", func() bool { return failed() >= 3 })
	opened, from := failed(), time.Now()
	// Real time must pass: the bound is on calls over a real second with
	// the breaker open.
	time.Sleep(time.Second)
	elapsed := time.Since(from)
	// Two users in flight when it opened, then one probe per open
	// timeout, with one spare for a timer that fires late.
	if during, allowed := failed()-opened, 2+int(elapsed/(300*time.Millisecond))+1; during > allowed {
		t.Fatalf("Graph was called %d times in %s with the breaker open (at most %d): it did not hold calls back", during, elapsed.Round(time.Millisecond), allowed)
	}
	em.Outage(0)
	waitPresence(t, b, aliceID, "Offline/Offline", 5*time.Second)
	waitPresence(t, b, bobID, "Busy/InACall", 5*time.Second)
}

// TestGraphRefusalIsDeadLettered: a permanent Graph error sends the event
// to the dead-letter stream with the reason and Graph's error, the message
// is not retried, and the admin API lists and replays it.
func TestGraphRefusalIsDeadLettered(t *testing.T) {
	// No aggregate reads: the one failure is for the write.
	b := startBridge(t, testConfig(t)+"presence: {observe_interval: 0s}\n")
	em := b.Emulator()
	postEvent(t, b, callEvent("w1", "alice@contoso.example", "w", "active", time.Now()))
	waitPresence(t, b, aliceID, "Busy/InACall", 2*time.Second)

	em.FailNext(1, http.StatusBadRequest)
	postEvent(t, b, callEvent("bad-1", "bob@contoso.example", "c1", "active", time.Now()))
	letters := waitDeadLetters(t, b, 1)
	d := letters[0]
	if !strings.Contains(d.Reason, "graph refused") || !strings.Contains(d.GraphError, "400") || !strings.Contains(string(d.Data), `"bad-1"`) {
		t.Fatalf("dead letter %+v", d)
	}
	if a, _ := presenceOf(t, b, bobID); a != "Offline" {
		t.Fatalf("bob is %s after a refused change", a)
	}

	// The admin view shows the refusal.
	req, _ := http.NewRequest(http.MethodGet, "http://"+b.Addr()+"/v1/admin/users/contoso.example/bob@contoso.example", nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var view struct {
		State struct {
			Failed *struct{ Reason string }
			Calls  map[string]any
		}
		Desired *struct{ Availability, Activity string }
	}
	json.NewDecoder(resp.Body).Decode(&view)
	resp.Body.Close()
	if resp.StatusCode != 200 || view.State.Failed == nil || len(view.State.Calls) != 1 || view.Desired == nil || view.Desired.Activity != "InACall" {
		t.Fatalf("admin view %d %+v", resp.StatusCode, view)
	}

	// Replay through the admin API: Graph accepts it now.
	r := post(t, b, "/v1/admin/deadletters/"+strconv.FormatUint(d.Seq, 10)+"/replay", "admin-token", "", "")
	if r.status != http.StatusOK {
		t.Fatalf("replay: %d %v", r.status, r.body)
	}
	waitPresence(t, b, bobID, "Busy/InACall", 2*time.Second)
	if r := post(t, b, "/v1/admin/deadletters/"+strconv.FormatUint(d.Seq, 10)+"/replay", "wrong", "", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("replay with a wrong token: %d", r.status)
	}
}

// TestUnknownUserIsDeadLettered: a user neither in the directory nor in
// Graph can never be applied.
func TestUnknownUserIsDeadLettered(t *testing.T) {
	b := startBridge(t, testConfig(t))
	postEvent(t, b, callEvent("u1", "ext:9999", "c1", "active", time.Now()))
	postEvent(t, b, callEvent("u2", "mallory@contoso.example", "c1", "active", time.Now()))
	letters := waitDeadLetters(t, b, 2)
	for _, d := range letters {
		if !strings.Contains(d.Reason, "unknown user") {
			t.Fatalf("dead letter reason %q", d.Reason)
		}
	}
}

// TestBusPublisher: a canonical event published on presence.events.<source>
// is processed like a webhook; an invalid one is dead-lettered and does not
// stop the consumer.
func TestBusPublisher(t *testing.T) {
	b := startBridge(t, testConfig(t))
	nc := b.Queue().Conn()
	for _, m := range []struct{ subject, body string }{
		{"presence.events.demo", `{"id":`},
		{"presence.events.demo", `{"id":"x","source":"demo","type":"call"}`},
		{"presence.events.other", callEvent("m1", "alice@contoso.example", "c1", "active", time.Now())},
		{"presence.events.nosuch", strings.Replace(callEvent("m2", "bob@contoso.example", "c1", "active", time.Now()), `"demo"`, `"nosuch"`, 1)},
		{"presence.events.demo", callEvent("m3", "bob@contoso.example", "c1", "active", time.Now())},
	} {
		if err := nc.Publish(m.subject, []byte(m.body)); err != nil {
			t.Fatal(err)
		}
	}
	waitPresence(t, b, bobID, "Busy/InACall", 3*time.Second)
	letters := waitDeadLetters(t, b, 4)
	// Messages about different users are applied side by side (in lanes),
	// so the dead letters come in any order.
	reasons := make([]string, len(letters))
	for i, d := range letters {
		reasons[i] = d.Reason
	}
	slices.Sort(reasons)
	want := []string{"invalid event", "invalid event", "source mismatch", "unknown source"}
	for i, r := range reasons {
		if !strings.HasPrefix(r, want[i]) {
			t.Errorf("dead letter %d: reason %q, want %q", i, r, want[i])
		}
	}
}

func waitDeadLetters(t *testing.T, b *bridge.Bridge, n int) []eventlog.DeadLetter {
	t.Helper()
	var letters []eventlog.DeadLetter
	testpoll.UntilOK(t, fmt.Sprintf("%d dead letters", n), func() error {
		var err error
		if letters, err = b.Queue().ListDeadLetters(context.Background(), 0, 100); err != nil {
			t.Fatal(err)
		}
		if len(letters) < n {
			raw, _ := json.Marshal(letters)
			return fmt.Errorf("%d dead letters: %s", len(letters), raw)
		}
		return nil
	})
	return letters
}

// TestManualStatusIsRecordedNotFought: a status the user sets by hand
// shows in the admin view, the bridge does not try to override it, and a
// session Graph lost is set again.
func TestManualStatusIsRecordedNotFought(t *testing.T) {
	yaml := strings.Replace(testConfig(t), "admin: {token: admin-token}", "admin: {token: admin-token}\npresence: {observe_interval: 100ms}", 1)
	b := startBridge(t, yaml)
	em := b.Emulator()
	postEvent(t, b, callEvent("m1", "alice@contoso.example", "c1", "active", time.Now()))
	waitPresence(t, b, aliceID, "Busy/InACall", 2*time.Second)

	if err := em.SetPreferred(aliceID, "DoNotDisturb", "DoNotDisturb", 0); err != nil {
		t.Fatal(err)
	}
	manual := func() string {
		var view struct {
			State struct {
				Manual *struct {
					Pair struct{ Availability, Activity string }
				}
			}
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+b.Addr()+"/v1/admin/users/contoso.example/"+aliceID, nil)
		req.Header.Set("Authorization", "Bearer admin-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&view); err != nil || resp.StatusCode != 200 {
			t.Fatalf("admin view: %d %v", resp.StatusCode, err)
		}
		if view.State.Manual == nil {
			return ""
		}
		return view.State.Manual.Pair.Availability + "/" + view.State.Manual.Pair.Activity
	}
	testpoll.Until(t, "the manual status in the admin view", func() bool { return manual() == "DoNotDisturb/DoNotDisturb" })
	// Wait for five more aggregate reads, each a chance to fight the
	// manual status, then check that none did.
	sets := countRequests(b, "/presence/setPresence")
	reads := countRequests(b, "/getPresencesByUserId")
	testpoll.Until(t, "five more aggregate reads", func() bool { return countRequests(b, "/getPresencesByUserId") >= reads+5 })
	if n := countRequests(b, "/presence/setPresence"); n != sets {
		t.Fatalf("the bridge called setPresence %d more times against a manual status", n-sets)
	}
	waitPresence(t, b, aliceID, "DoNotDisturb/DoNotDisturb", time.Second)

	if err := em.ClearPreferred(aliceID); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "the manual status to clear", func() bool { return manual() == "" })
	waitPresence(t, b, aliceID, "Busy/InACall", time.Second)

	// Someone else clears the app session: the bridge notices and sets it
	// again.
	if ended, err := em.EndSession(aliceID, bridgetest.ClientID); err != nil || !ended {
		t.Fatalf("end the app session: %v %v", ended, err)
	}
	if a, act := presenceOf(t, b, aliceID); a+"/"+act != "Offline/Offline" {
		t.Fatalf("alice is %s/%s without a session", a, act)
	}
	waitPresence(t, b, aliceID, "Busy/InACall", 5*time.Second)
}
