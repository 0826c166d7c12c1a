package bridge_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// calendarConfig is the test configuration with a graphcalendar source,
// the application allowed to read calendars, and a Graph timeout longer
// than any hold the tests put on event reads (a slow Graph is waited for,
// not given up on).
func calendarConfig(t *testing.T) string {
	cfg := testConfig(t)
	cfg = strings.Replace(cfg, "roles: [Presence.ReadWrite.All, Presence.Read.All, User.Read.All]", "roles: [Presence.ReadWrite.All, Presence.Read.All, User.Read.All, Calendars.Read]", 1)
	cfg = strings.Replace(cfg, "  timeout: 2s\n", "  timeout: 60s\n", 1)
	return strings.Replace(cfg, "admin: {token: admin-token}", `  - {name: calendar, type: graphcalendar, secret: calendar-state, tenant: contoso.example}
admin: {token: admin-token}`, 1)
}

// notify posts one Graph change notification for user's event and
// returns the answer's status and how long it took.
func notify(t *testing.T, b *bridge.Bridge, changeType, user, eventID string) (int, time.Duration) {
	t.Helper()
	body := `{"value":[{"subscriptionId":"s1","changeType":"` + changeType + `","clientState":"calendar-state","resource":"Users/` + user + `/Events/` + eventID + `","resourceData":{"id":"` + eventID + `"}}]}`
	req, err := http.NewRequest(http.MethodPost, "http://"+b.Addr()+"/v1/hooks/calendar", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	started := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(started)
	resp.Body.Close()
	return resp.StatusCode, took
}

// eventReads counts the emulator's answers to reads of eventID with status.
func eventReads(b *bridge.Bridge, eventID string, status int) int {
	n := 0
	for _, r := range b.Emulator().Requests() {
		if strings.HasSuffix(r.Path, "/events/"+eventID) && r.Status == status {
			n++
		}
	}
	return n
}

// meetingNow seeds a meeting of user that runs now.
func meetingNow(t *testing.T, b *bridge.Bridge, user, id string) {
	t.Helper()
	now := time.Now().UTC()
	if err := b.Emulator().SetEvent(emulator.CalendarEvent{ID: id, User: user, Start: now.Add(-time.Minute), End: now.Add(time.Hour), ShowAs: "busy"}); err != nil {
		t.Fatal(err)
	}
}

// TestCalendarNotificationAnsweredWhileGraphIsSlow: with Graph holding
// every event read, a notification is still answered 202 — before Graph
// has answered any read — and the meeting shows once Graph answers.
func TestCalendarNotificationAnsweredWhileGraphIsSlow(t *testing.T) {
	b := startBridge(t, calendarConfig(t))
	meetingNow(t, b, aliceID, "AAMkSlow")
	release := b.Emulator().HoldEventReads()
	defer release()

	status, took := notify(t, b, "created", aliceID, "AAMkSlow")
	if status != http.StatusAccepted {
		t.Fatalf("notification answered %d, want 202", status)
	}
	if n := eventReads(b, "AAMkSlow", http.StatusOK); n != 0 {
		t.Fatalf("Graph answered %d event reads before the notification was answered; the hold should keep them all", n)
	}
	t.Logf("notification answered 202 in %s while Graph held the event read", took)

	// The apply stage reads the event now, and waits for Graph.
	testpoll.Until(t, "the apply stage to read the event from Graph", func() bool { return b.Emulator().HeldEventReads() >= 1 })
	if got := strings.Join(presencePair(t, b, aliceID), "/"); got == "Busy/InAConferenceCall" {
		t.Fatalf("presence %s before Graph answered the read", got)
	}
	release()
	waitPresence(t, b, aliceID, "Busy/InAConferenceCall", patience)
}

// presencePair is presenceOf as a slice.
func presencePair(t *testing.T, b *bridge.Bridge, user string) []string {
	a, act := presenceOf(t, b, user)
	return []string{a, act}
}

// TestCalendarReadRetriedAfter5xx: a read Graph fails with 5xx is tried
// again, and the meeting applied then; nothing is dead-lettered.
func TestCalendarReadRetriedAfter5xx(t *testing.T) {
	b := startBridge(t, calendarConfig(t))
	meetingNow(t, b, aliceID, "AAMkFlaky")
	b.Emulator().FailEventReads(2, http.StatusServiceUnavailable)
	if status, _ := notify(t, b, "created", aliceID, "AAMkFlaky"); status != http.StatusAccepted {
		t.Fatalf("notification answered %d, want 202", status)
	}
	waitPresence(t, b, aliceID, "Busy/InAConferenceCall", patience)
	if failed, ok := eventReads(b, "AAMkFlaky", http.StatusServiceUnavailable), eventReads(b, "AAMkFlaky", http.StatusOK); failed != 2 || ok < 1 {
		t.Fatalf("event reads: %d answered 503, %d answered 200; want 2 and then at least 1", failed, ok)
	}
	if letters, err := b.Queue().ListDeadLetters(context.Background(), 0, 10); err != nil || len(letters) != 0 {
		t.Fatalf("dead letters %v, %v", letters, err)
	}
}

// TestCalendarEventGoneOrDeletedEndsTheMeeting: an event Graph answers
// 404 for ends the meeting (it was deleted meanwhile), as does a deleted
// notification, which needs no read at all.
func TestCalendarEventGoneOrDeletedEndsTheMeeting(t *testing.T) {
	b := startBridge(t, calendarConfig(t))
	em := b.Emulator()
	for _, c := range []struct {
		name, user, event, change string
	}{
		{"read answers 404", aliceID, "AAMkGone", "updated"},
		{"deleted", bobID, "AAMkDeleted", "deleted"},
	} {
		t.Run(c.name, func(t *testing.T) {
			meetingNow(t, b, c.user, c.event)
			if status, _ := notify(t, b, "created", c.user, c.event); status != http.StatusAccepted {
				t.Fatalf("created: %d", status)
			}
			waitPresence(t, b, c.user, "Busy/InAConferenceCall", patience)
			if !em.DeleteEvent(c.user, c.event) {
				t.Fatal("no event to delete")
			}
			reads := len(em.Requests())
			if status, _ := notify(t, b, c.change, c.user, c.event); status != http.StatusAccepted {
				t.Fatalf("%s: %d", c.change, status)
			}
			waitPresence(t, b, c.user, "Offline/Offline", patience) // the session cleared
			gone := eventReads(b, c.event, http.StatusNotFound)
			if want := map[string]int{"updated": 1, "deleted": 0}[c.change]; gone != want {
				t.Fatalf("%d reads answered 404, want %d (requests since: %v)", gone, want, em.Requests()[reads:])
			}
		})
	}
	if letters, err := b.Queue().ListDeadLetters(context.Background(), 0, 10); err != nil || len(letters) != 0 {
		t.Fatalf("dead letters %v, %v", letters, err)
	}
}

// TestCalendarEventFromAnotherSourceIsNotRead: only a graphcalendar
// source may make the bridge read a calendar; a generic sender naming a
// calendar event is dead-lettered without a read.
func TestCalendarEventFromAnotherSourceIsNotRead(t *testing.T) {
	b := startBridge(t, calendarConfig(t))
	meetingNow(t, b, aliceID, "AAMkOther")
	body := `{"id":"m1","source":"demo","type":"meeting","user":"` + aliceID + `","occurredAt":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","calendarEvent":"AAMkOther"}`
	if r := postEvent(t, b, body); r.status != http.StatusAccepted {
		t.Fatalf("post: %d %v", r.status, r.body)
	}
	letters := waitDeadLetters(t, b, 1)
	if !strings.Contains(letters[0].Reason, `source "demo" reads no calendar`) {
		t.Fatalf("reason %q", letters[0].Reason)
	}
	if n := countRequests(b, "/events/AAMkOther"); n != 0 {
		t.Fatalf("%d calendar reads for a generic source's event", n)
	}
}

// TestCalendarReadsWaitForTheLookupBudget: calendar reads spend the
// tenant's lookup budget, and a read over it waits for room instead of
// being dead-lettered as an unknown user's lookup would be.
func TestCalendarReadsWaitForTheLookupBudget(t *testing.T) {
	cfg := strings.Replace(calendarConfig(t), "      client_secret: demo-secret\n  timeout:",
		"      client_secret: demo-secret\n      lookup_budget: 1\n      lookup_budget_window: 1s\n  timeout:", 1)
	if !strings.Contains(cfg, "lookup_budget: 1\n") {
		t.Fatal("the test configuration changed: no place for lookup_budget")
	}
	b := startBridge(t, cfg)
	users := []string{aliceID, bobID}
	for i, user := range users {
		meetingNow(t, b, user, "AAMkBudget"+strconv.Itoa(i))
	}
	for i, user := range users {
		if status, _ := notify(t, b, "created", user, "AAMkBudget"+strconv.Itoa(i)); status != http.StatusAccepted {
			t.Fatalf("notification answered %d, want 202", status)
		}
	}
	for _, user := range users {
		waitPresence(t, b, user, "Busy/InAConferenceCall", patience)
	}
	if letters, err := b.Queue().ListDeadLetters(context.Background(), 0, 10); err != nil || len(letters) != 0 {
		t.Fatalf("dead letters %v, %v; want none (a read over budget waits)", letters, err)
	}
}
