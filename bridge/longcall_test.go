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

// These tests run a whole bridge (HTTP ingest, JetStream, worker, state, writer,
// the production Graph client) against its in-process emulator, with the
// state, the writer and the emulator on one fake clock that the test moves. The
// clock is set three hours back, so that every event dated by it lies in
// the real past.

// clockedConfig is a bridge with embedded NATS and emulator, the demo
// source and a source "flaky" whose calls end after 10 minutes of silence.
func clockedConfig(t *testing.T) string {
	return bridgetest.Header + fmt.Sprintf("nats: {embedded: true, store_dir: %q}\n", t.TempDir()) +
		"graph:\n" + bridgetest.Tenants() + "  retry: {min_delay: 50ms, max_delay: 200ms}\n" +
		bridgetest.Emulator(bridgetest.Alice, bridgetest.Bob) + `presence: {expiration: 15m}
sources:
  - {name: demo, type: generic, token: demo-token}
  - {name: flaky, type: generic, token: flaky-token, lapse: 10m}
`
}

// startClockedBridge runs a bridge from clockedConfig whose writers and
// emulator share the returned fake clock.
func startClockedBridge(t *testing.T) (*bridge.Bridge, *emulator.FakeClock) {
	t.Helper()
	clock := emulator.NewFakeClock(time.Now().Add(-3 * time.Hour).Truncate(time.Minute))
	b := bridgetest.Run(t, bridgetest.Parse(t, clockedConfig(t)), nil, bridge.WithClock(clock))
	// A new writer's budget starts empty; a second of fake time fills it.
	waitFor(t, "the tenant's writer", func() (bool, string) { return b.Writing("contoso.example"), "no writer" })
	clock.Advance(time.Second)
	return b, clock
}

// postSourceEvent posts a call event of source (whose token is
// "<source>-token") and fails the test unless it is accepted.
func postSourceEvent(t *testing.T, b *bridge.Bridge, source, id, user, callID, state string, at time.Time) {
	t.Helper()
	body := fmt.Sprintf(`{"id":%q,"source":%q,"type":"call","user":%q,"occurredAt":%q,"callId":%q,"state":%q}`,
		id, source, user, at.UTC().Format(time.RFC3339Nano), callID, state)
	if r := post(t, b, "/v1/events", source+"-token", "application/json", body); r.status != http.StatusAccepted {
		t.Fatalf("post %s: %d %v", id, r.status, r.body)
	}
}

// waitFor is testpoll.UntilOK for a condition that returns whether it
// holds and what it saw.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testpoll.UntilOK(t, what, func() error {
		if ok, saw := cond(); !ok {
			return fmt.Errorf("saw %s", saw)
		}
		return nil
	})
}

// shows is a condition for waitFor: the emulator shows user as want.
func shows(em *emulator.Emulator, user, want string) func() (bool, string) {
	return func() (bool, string) {
		p, _ := em.Presence(user)
		return p.Availability+"/"+p.Activity == want, p.String()
	}
}

// bridgeSession returns the bridge's application session of user in the
// emulator.
func bridgeSession(em *emulator.Emulator, user string) (emulator.SessionView, bool) {
	p, _ := em.Presence(user)
	for _, s := range p.Sessions {
		if s.Kind == emulator.KindApp && s.AppID == bridgetest.ClientID {
			return s, true
		}
	}
	return emulator.SessionView{}, false
}

// TestTwoHourCallAgainstEmulator: a two-hour call stays Busy/InACall in
// Graph from start to end, although its session expires 15 minutes after
// each refresh, and clears when the call ends.
//
// The fake clock moves a minute at a time. Before each minute the test
// waits until the session in the emulator outlives that minute, so the
// clock never overtakes a refresh the writer has yet to send, however
// slow the machine; a writer that does not refresh fails the wait. The
// continuity itself is then read from the emulator's request log, whose
// times are the fake clock's.
func TestTwoHourCallAgainstEmulator(t *testing.T) {
	const expiration, callLength, step = 15 * time.Minute, 2 * time.Hour, time.Minute
	b, clock := startClockedBridge(t)
	em := b.Emulator()
	start := clock.Now()
	postSourceEvent(t, b, "demo", "long-1", "alice@contoso.example", "c1", "active", start)
	waitFor(t, "the call to show", shows(em, aliceID, "Busy/InACall"))

	for clock.Now().Before(start.Add(callLength)) {
		minute := int(clock.Now().Sub(start) / time.Minute)
		waitFor(t, fmt.Sprintf("a refresh that keeps the session past minute %d", minute+1), func() (bool, string) {
			s, ok := bridgeSession(em, aliceID)
			return ok && s.ExpiresAt != nil && s.ExpiresAt.After(clock.Now().Add(step)), fmt.Sprintf("%+v", s)
		})
		clock.Advance(step)
		if p, _ := em.Presence(aliceID); p.Availability+"/"+p.Activity != "Busy/InACall" {
			t.Fatalf("minute %d of the call: %s", minute+1, p)
		}
	}
	end := clock.Now()
	postSourceEvent(t, b, "demo", "long-2", "alice@contoso.example", "c1", "ended", end)
	waitFor(t, "the call to clear", shows(em, aliceID, "Offline/Offline"))

	// From the emulator's log: every write for alice before the end set
	// Busy/InACall, each refresh came before the previous session
	// expired, and the only clear came at the end.
	var sets []time.Time
	var cleared time.Time
	for _, r := range em.Requests() {
		if !strings.Contains(r.Path, "/users/"+aliceID+"/presence/") || r.Status != http.StatusOK {
			continue
		}
		switch {
		case strings.HasSuffix(r.Path, "/setPresence"):
			var body struct{ Availability, Activity, ExpirationDuration string }
			if err := json.Unmarshal([]byte(r.Body), &body); err != nil || body.Availability+"/"+body.Activity != "Busy/InACall" {
				t.Fatalf("setPresence at minute %v sent %s", r.Time.Sub(start).Minutes(), r.Body)
			}
			if !cleared.IsZero() {
				t.Fatalf("setPresence at minute %v after the clear", r.Time.Sub(start).Minutes())
			}
			sets = append(sets, r.Time)
		case strings.HasSuffix(r.Path, "/clearPresence"):
			if r.Time.Before(end) {
				t.Fatalf("the session was cleared at minute %v, during the call", r.Time.Sub(start).Minutes())
			}
			cleared = r.Time
		}
	}
	if len(sets) == 0 || !sets[0].Equal(start) || cleared.IsZero() {
		t.Fatalf("setPresence at %v, clearPresence at %v; want the first set at the start %v and a clear at the end", sets, cleared, start)
	}
	for i, at := range append(sets[1:], end) {
		if gap := at.Sub(sets[i]); gap >= expiration {
			t.Fatalf("the session went %s without a refresh after minute %v", gap, sets[i].Sub(start).Minutes())
		}
	}
	// A refresh more often than every 5 minutes would waste the budget.
	if most := int(callLength/(5*time.Minute)) + 1; len(sets) > most {
		t.Fatalf("%d setPresence calls in two hours, more than %d", len(sets), most)
	}
}

// TestSilentSourceLapsesAgainstEmulator: a source configured with a
// 10-minute lapse goes quiet in the middle of calls; each user clears 10
// minutes after the source last spoke about them, not before.
//
// Bob's call starts a minute before Alice's. When the clock reaches
// minute 10, Bob clearing shows that the writer has looked at that
// minute; Alice must still be in her call then, and clear at minute 11.
func TestSilentSourceLapsesAgainstEmulator(t *testing.T) {
	b, clock := startClockedBridge(t)
	em := b.Emulator()
	start := clock.Now()
	postSourceEvent(t, b, "flaky", "lapse-1", "bob@contoso.example", "c1", "active", start)
	waitFor(t, "bob's call to show", shows(em, bobID, "Busy/InACall"))
	clock.Advance(time.Minute)
	postSourceEvent(t, b, "flaky", "lapse-2", "alice@contoso.example", "c2", "active", clock.Now())
	waitFor(t, "alice's call to show", shows(em, aliceID, "Busy/InACall"))

	clock.Advance(9 * time.Minute)
	waitFor(t, "bob's call to lapse at minute 10", shows(em, bobID, "Offline/Offline"))
	if p, _ := em.Presence(aliceID); p.Availability+"/"+p.Activity != "Busy/InACall" {
		t.Fatalf("alice's call lapsed after 9 minutes of silence: %s", p)
	}
	clock.Advance(time.Minute)
	waitFor(t, "alice's call to lapse at minute 11", shows(em, aliceID, "Offline/Offline"))
	for _, r := range em.Requests() {
		if strings.HasSuffix(r.Path, "/users/"+aliceID+"/presence/clearPresence") && r.Time.Before(start.Add(11*time.Minute)) {
			t.Fatalf("alice was cleared at minute %v, before her source had been silent for 10 minutes", r.Time.Sub(start).Minutes())
		}
	}
}
