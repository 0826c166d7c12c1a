package bridge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

const appID = bridgetest.ClientID

// statusConfig is testConfig with "On a call" shown during calls, for
// 30 minutes at a time, and aggregate reads every 200 ms.
func statusConfig(t *testing.T) string {
	return testConfig(t) + "presence:\n  observe_interval: 200ms\n  status_messages: {call: On a call, expiry: 30m}\n"
}

// statusRecord is the status message a user's state records, read
// through the admin view.
type statusRecord struct {
	Text, UserText string
	Expires, At    time.Time
}

// userRecord reads the status message and the session told on record.
func userRecord(t *testing.T, b *bridge.Bridge, user string) (status *statusRecord, told bool) {
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
	if resp.StatusCode == http.StatusNotFound {
		return nil, false
	}
	var view struct {
		State struct {
			Status *statusRecord
			Told   *struct{ Pair json.RawMessage }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&view); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("admin view of %s: %d %v", user, resp.StatusCode, err)
	}
	return view.State.Status, view.State.Told != nil && len(view.State.Told.Pair) > 0 && string(view.State.Told.Pair) != "null"
}

// message returns the status message the emulator shows for user, nil
// when none.
func message(em *emulator.Emulator, user string) *emulator.StatusMessageView {
	v, _ := em.Presence(user)
	return v.StatusMessage
}

// statusWrites counts the setStatusMessage requests for user in the
// emulator's log, with the answers' statuses.
func statusWrites(b *bridge.Bridge, user string) (n int, statuses []int) {
	for _, r := range b.Emulator().Requests() {
		if strings.HasSuffix(r.Path, "/users/"+user+"/presence/setStatusMessage") {
			n++
			statuses = append(statuses, r.Status)
		}
	}
	return n, statuses
}

// TestStatusMessageWhileInACall: while a call sets Alice's session, the
// bridge shows "On a call" with the configured expiry, records it as its
// own, and removes it when the call ends: one write each, whether Graph
// answers the actions 200 or 204.
func TestStatusMessageWhileInACall(t *testing.T) {
	for _, status := range []int{http.StatusOK, http.StatusNoContent} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			b := startBridge(t, statusConfig(t))
			if err := b.Emulator().SetActionStatus(status); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			postEvent(t, b, callEvent("e1", "alice@contoso.example", "c1", "active", now))
			waitPresence(t, b, aliceID, "Busy/InACall", time.Second)
			testpoll.Until(t, "message recorded as the bridge's", func() bool {
				rec, _ := userRecord(t, b, aliceID)
				return rec != nil && rec.Text == "On a call"
			})
			m := message(b.Emulator(), aliceID)
			if m == nil || m.Content != "On a call" || m.SetBy != appID || m.ExpiresAt == nil {
				t.Fatalf("message shown %+v, want On a call set by the app with an expiry", m)
			}
			if d := m.ExpiresAt.Sub(m.PublishedAt); d < 29*time.Minute || d > 31*time.Minute {
				t.Fatalf("message expires %s after it was set, want 30m", d)
			}

			postEvent(t, b, callEvent("e2", "alice@contoso.example", "c1", "ended", now.Add(time.Second)))
			waitPresence(t, b, aliceID, "Offline/Offline", time.Second)
			testpoll.Until(t, "message removed", func() bool { return message(b.Emulator(), aliceID) == nil })
			testpoll.Until(t, "removal recorded", func() bool {
				rec, told := userRecord(t, b, aliceID)
				return rec == nil && !told
			})
			if n, statuses := statusWrites(b, aliceID); n != 2 || statuses[0] != status || statuses[1] != status {
				t.Fatalf("%d setStatusMessage requests answered %v, want a set and a removal answered %d", n, statuses, status)
			}
		})
	}
}

// TestStatusMessageLeavesTheUsersOwn: a message Alice wrote before her
// call is read, recorded and neither overwritten nor removed; a message
// Bob writes over the bridge's during his call is noticed by the
// aggregate reads and not removed when the call ends.
func TestStatusMessageLeavesTheUsersOwn(t *testing.T) {
	b := startBridge(t, statusConfig(t))
	em := b.Emulator()
	if err := em.SetStatusMessage(aliceID, "Back on Monday", time.Time{}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	postEvent(t, b, callEvent("a1", "alice@contoso.example", "c1", "active", now))
	postEvent(t, b, callEvent("b1", "bob@contoso.example", "c2", "active", now))
	waitPresence(t, b, aliceID, "Busy/InACall", time.Second)
	testpoll.Until(t, "Alice's own message recorded", func() bool {
		rec, _ := userRecord(t, b, aliceID)
		return rec != nil && rec.UserText == "Back on Monday" && rec.Text == ""
	})
	testpoll.Until(t, "Bob's message set", func() bool {
		rec, _ := userRecord(t, b, bobID)
		return rec != nil && rec.Text == "On a call"
	})
	if err := em.SetStatusMessage(bobID, "Lunch", time.Time{}); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "Bob's own message noticed", func() bool {
		rec, _ := userRecord(t, b, bobID)
		return rec != nil && rec.UserText == "Lunch"
	})

	postEvent(t, b, callEvent("a2", "alice@contoso.example", "c1", "ended", now.Add(time.Second)))
	postEvent(t, b, callEvent("b2", "bob@contoso.example", "c2", "ended", now.Add(time.Second)))
	for _, user := range []string{aliceID, bobID} {
		waitPresence(t, b, user, "Offline/Offline", time.Second)
		testpoll.Until(t, "session end recorded", func() bool {
			rec, told := userRecord(t, b, user)
			return rec == nil && !told
		})
	}
	if m := message(b.Emulator(), aliceID); m == nil || m.Content != "Back on Monday" || m.SetBy != emulator.StatusMessageUser {
		t.Fatalf("Alice's message %+v, want hers kept", m)
	}
	if m := message(b.Emulator(), bobID); m == nil || m.Content != "Lunch" || m.SetBy != emulator.StatusMessageUser {
		t.Fatalf("Bob's message %+v, want his kept", m)
	}
	if n, _ := statusWrites(b, aliceID); n != 0 {
		t.Fatalf("%d setStatusMessage requests for Alice, want none", n)
	}
	if n, _ := statusWrites(b, bobID); n != 1 {
		t.Fatalf("%d setStatusMessage requests for Bob, want only the first", n)
	}
}

// TestStatusMessagesWithinBudget: in fake time, users start calls at
// once with status messages on; every read and write of a status message
// counts against the tenant's budget with the setPresence calls, and no
// window holds more than the budget.
func TestStatusMessagesWithinBudget(t *testing.T) {
	t.Parallel() // mostly waiting
	const budget, users = 10, 6
	run := newFakeTimeRun(t, users, budget, emulator.Throttle{})
	run.cfg = strings.Replace(run.cfg, "observe_interval: 0s}", "observe_interval: 0s, status_messages: {call: On a call}}", 1)
	b := run.start()
	run.post(b, 0, 1, run.clock.Now())
	run.stepUntil("every user's message shown", 150*time.Second, func() bool {
		for u := range users {
			if m := message(run.em, budgetUser(u)); m == nil || m.Content != "On a call" {
				return false
			}
		}
		return true
	})
	calls := run.calls()
	checkBudget(t, calls, budget)
	var reads, writes int
	for _, c := range calls {
		switch {
		case strings.HasSuffix(c.Path, "/getPresencesByUserId"):
			reads++
		case strings.HasSuffix(c.Path, "/setStatusMessage"):
			writes++
		}
	}
	if reads < users || writes != users {
		t.Fatalf("%d reads and %d setStatusMessage requests for %d users", reads, writes, users)
	}
}

// TestStatusMessageRenewedWhileTheCallLasts: in fake time, a message that
// expires after 5 minutes is set again before it does, so it shows
// throughout a call of 12 minutes, and is removed when the call ends.
func TestStatusMessageRenewedWhileTheCallLasts(t *testing.T) {
	t.Parallel() // mostly waiting
	run := newFakeTimeRun(t, 1, 100, emulator.Throttle{})
	run.cfg = strings.Replace(run.cfg, "observe_interval: 0s}", "observe_interval: 0s, status_messages: {call: On a call, expiry: 5m}}", 1)
	b := run.start()
	user, start := budgetUser(0), run.clock.Now()
	run.post(b, 0, 1, start)
	shown := func() bool { m := message(run.em, user); return m != nil && m.Content == "On a call" }
	run.stepUntil("message shown", time.Minute, shown)
	for end := start.Add(12 * time.Minute); run.clock.Now().Before(end); {
		run.clock.Advance(10*time.Second - fakeStep)
		run.step()
		if !shown() {
			t.Fatalf("message gone %s into the call", run.clock.Now().Sub(start))
		}
	}
	writes := 0
	for _, r := range run.calls() {
		if strings.HasSuffix(r.Path, "/setStatusMessage") {
			writes++
		}
	}
	if writes < 3 {
		t.Fatalf("%d setStatusMessage requests in 12 minutes with a 5-minute expiry", writes)
	}
	end := `{"id":"t0e","source":"demo","type":"call","user":"` + user + `","occurredAt":"` + start.Add(time.Second).UTC().Format(time.RFC3339Nano) + `","callId":"c1","state":"ended"}`
	if r := postEvent(t, b, end); r.status != http.StatusAccepted {
		t.Fatalf("post ended: %d %v", r.status, r.body)
	}
	run.stepUntil("message removed", time.Minute, func() bool { return message(run.em, user) == nil })
}
