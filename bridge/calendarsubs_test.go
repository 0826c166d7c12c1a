package bridge_test

import (
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// TestManagedCalendarSubscriptions: the bridge subscribes to Alice's
// calendar by itself; a meeting added in the emulator reaches the bridge
// through the subscription and changes her presence; a subscription the
// emulator drops is created again; deleting the meeting clears her.
func TestManagedCalendarSubscriptions(t *testing.T) {
	addr := unusedLoopbackAddr(t)
	cfg := testConfig(t)
	cfg = strings.Replace(cfg, `http: {listen: "127.0.0.1:0"}`, `http: {listen: "`+addr+`"}`, 1)
	cfg = strings.Replace(cfg, "roles: [Presence.ReadWrite.All, Presence.Read.All, User.Read.All]", "roles: [Presence.ReadWrite.All, Presence.Read.All, User.Read.All, Calendars.Read]", 1)
	cfg = strings.Replace(cfg, "admin: {token: admin-token}", `  - name: calendar
    type: graphcalendar
    secret: calendar-state
    subscriptions:
      users: [alice@contoso.example]
      notification_url: "http://`+addr+`/v1/hooks/calendar"
      every: 1s
      renew_before: 1h
admin: {token: admin-token}`, 1)
	b := startBridge(t, cfg)
	em := b.Emulator()

	subscribed := func() []emulator.Subscription {
		var out []emulator.Subscription
		for _, s := range em.Subscriptions() {
			if s.User == aliceID && s.ClientState == "calendar-state" && s.LifecycleNotificationURL == "http://"+addr+"/v1/hooks/calendar" {
				out = append(out, s)
			}
		}
		return out
	}
	testpoll.Until(t, "the subscription", func() bool { return len(subscribed()) == 1 })
	first := subscribed()[0]

	now := time.Now().UTC()
	if err := em.SetEvent(emulator.CalendarEvent{ID: "AAMkMeeting", User: aliceID, Start: now.Add(-time.Minute), End: now.Add(time.Hour), ShowAs: "busy"}); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, b, aliceID, "Busy/InAConferenceCall", 30*time.Second)

	em.RemoveSubscription(first.ID)
	testpoll.Until(t, "a new subscription", func() bool { s := subscribed(); return len(s) == 1 && s[0].ID != first.ID })

	em.DeleteEvent(aliceID, "AAMkMeeting")
	waitPresence(t, b, aliceID, "Offline/Offline", 30*time.Second)
}
