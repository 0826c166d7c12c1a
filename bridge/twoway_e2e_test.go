package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/cloudevent"
	natsout "github.com/presence-bridge/presence-bridge/outputs/nats"
)

// twoWayConfig is the test configuration with the Teams watch on, the
// lookup API on, and two NATS outputs: "bus" publishes every change,
// echoes included; "pbx" skips what the demo source's own claims made.
func twoWayConfig(t *testing.T) string {
	return testConfig(t) + `watch: {enabled: true, interval: 200ms}
lookup: {token: lookup-token}
outputs:
  - {name: bus, type: nats, skip_sources: []}
  - name: pbx
    type: nats
    skip_sources: [demo]
    nats: {stream: PRESENCE_TEAMS_PBX, subject_prefix: presence.pbx, bucket: PRESENCE_TEAMS_PBX_LATEST}
`
}

// lookupView asks the lookup API for user's view; ok is false until the
// watcher has seen them.
func lookupView(t *testing.T, b *bridge.Bridge, user string) (outputs.View, bool) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+b.Addr()+"/v1/presence/"+user, nil)
	req.Header.Set("Authorization", "Bearer lookup-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return outputs.View{}, false
	}
	var v outputs.View
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &v) != nil {
		t.Fatalf("lookup %s: %d %s", user, resp.StatusCode, body)
	}
	return v, true
}

// latest is the newest change of the person id in an output's stream
// (its CloudEvent), or false when it has none.
func latest(t *testing.T, b *bridge.Bridge, stream, prefix, id string) (outputs.Change, bool) {
	t.Helper()
	ctx := context.Background()
	s, err := b.Queue().JetStream().Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	msg, err := s.GetLastMsgForSubject(ctx, prefix+"."+natsout.Key("contoso.example", id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return outputs.Change{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := cloudevent.Decode(msg.Data)
	if err != nil {
		t.Fatalf("the message is no CloudEvent of a change: %v\n%s", err, msg.Data)
	}
	return c, true
}

// TestTeamsChangesReachTheOutputsAndTheLookup: a Teams call reaches the
// stream and the lookup with origin teams; a PBX call reaches them with
// origin bridge and its source, and an output that skips that source does
// not get it (no echo); the call's end leaves nobody busy.
func TestTeamsChangesReachTheOutputsAndTheLookup(t *testing.T) {
	b := startBridge(t, twoWayConfig(t))

	// A Teams call of Alice's (in the directory, so watched).
	if err := b.Emulator().SetTeamsSession(aliceID, "Busy", "InACall"); err != nil {
		t.Fatal(err)
	}
	var teams outputs.Change
	testpoll.Until(t, "Alice's Teams call on the bus", func() bool {
		c, ok := latest(t, b, "PRESENCE_TEAMS", "presence.teams", aliceID)
		teams = c
		return ok && c.Availability == "Busy" && c.Activity == "InACall"
	})
	if teams.Origin != outputs.OriginTeams || len(teams.Sources) != 0 || teams.User != "alice@contoso.example" {
		t.Fatalf("Alice's Teams call published as %+v, want origin teams, no sources, her UPN", teams)
	}
	// The pbx output skips only the demo source's echoes: it gets a Teams call.
	testpoll.Until(t, "Alice's Teams call on the pbx output", func() bool {
		c, ok := latest(t, b, "PRESENCE_TEAMS_PBX", "presence.pbx", aliceID)
		return ok && c.ID == teams.ID
	})
	v, ok := lookupView(t, b, "ext:1001")
	if !ok || v.Availability != "Busy" || v.Activity != "InACall" || v.Origin != outputs.OriginTeams {
		t.Fatalf("lookup of ext:1001: %+v (found %v), want Busy/InACall from teams", v, ok)
	}

	// A PBX call of Bob's, through the bridge.
	started := time.Now().Add(-time.Second)
	if r := postEvent(t, b, callEvent("bob-1", "bob@contoso.example", "c1", "active", started)); r.status != http.StatusAccepted {
		t.Fatalf("POST answered %d %v", r.status, r.body)
	}
	var echo outputs.Change
	testpoll.Until(t, "Bob's PBX call on the bus", func() bool {
		c, ok := latest(t, b, "PRESENCE_TEAMS", "presence.teams", bobID)
		echo = c
		return ok && c.Availability == "Busy" && c.Activity == "InACall"
	})
	if echo.Origin != outputs.OriginBridge || len(echo.Sources) != 1 || echo.Sources[0] != "demo" {
		t.Fatalf("Bob's PBX call published as %+v, want origin bridge from source demo", echo)
	}
	if c, ok := latest(t, b, "PRESENCE_TEAMS_PBX", "presence.pbx", bobID); ok && c.Availability == "Busy" {
		t.Fatalf("the pbx output got its own call back: %+v", c)
	}
	// Bob is watched only because an event named him, by his UPN: the
	// lookup finds him by it, as by his object id.
	for _, name := range []string{"bob@contoso.example", "BOB@contoso.example", bobID} {
		v, ok = lookupView(t, b, name)
		if !ok || v.Origin != outputs.OriginBridge || v.Availability != "Busy" || v.User != "bob@contoso.example" || v.ID != bobID {
			t.Fatalf("lookup of %s: %+v (found %v), want Busy from the bridge, his UPN and id", name, v, ok)
		}
	}
	// why shows the Teams changes beside the source events: Alice's Teams
	// call, Bob's PBX call after the event that made it.
	_, alice := userView(t, b, "alice@contoso.example")
	if !hasEntry(alice.History, func(e history.Entry) bool {
		return e.Origin == outputs.OriginTeams && e.Pair == "Busy/InACall" && e.SequenceNumber == teams.SequenceNumber && len(e.Sources) == 0
	}) {
		t.Fatalf("Alice's history lacks her Teams call (origin teams, %s): %+v", teams.SequenceNumber, alice.History)
	}
	_, bob := userView(t, b, "bob@contoso.example")
	event := slices.IndexFunc(bob.History, func(e history.Entry) bool { return e.Source == "demo" && e.ID == "bob-1" })
	change := slices.IndexFunc(bob.History, func(e history.Entry) bool {
		return e.Origin == outputs.OriginBridge && e.Pair == "Busy/InACall" && slices.Equal(e.Sources, []string{"demo"}) && e.SequenceNumber == echo.SequenceNumber
	})
	if event < 0 || change < event {
		t.Fatalf("Bob's history lacks his PBX call's event (%d) followed by its Teams change from the bridge (%d): %+v", event, change, bob.History)
	}

	// The call ends: nobody stays busy, in Teams or on the bus.
	if r := postEvent(t, b, callEvent("bob-2", "bob@contoso.example", "c1", "ended", started.Add(time.Second))); r.status != http.StatusAccepted {
		t.Fatalf("POST answered %d %v", r.status, r.body)
	}
	waitPresence(t, b, bobID, "Offline/Offline", patience)
	testpoll.Until(t, "Bob's call's end on the bus", func() bool {
		c, ok := latest(t, b, "PRESENCE_TEAMS", "presence.teams", bobID)
		return ok && c.Availability != "Busy"
	})
}

// publishedByTeams is how many Teams-origin changes b's output bus has
// published, from the admin API.
func publishedByTeams(t *testing.T, b *bridge.Bridge) uint64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+b.Addr()+"/v1/admin/outputs", nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Outputs []struct {
			Name      string
			Published map[string]uint64
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/admin/outputs: %d %v", resp.StatusCode, err)
	}
	for _, o := range body.Outputs {
		if o.Name == "bus" {
			return o.Published[outputs.OriginTeams]
		}
	}
	t.Fatal("no output bus")
	return 0
}

// TestWatchTakeoverPublishesNoRepeats: two bridges watch one tenant; the
// one holding the watch publishes Alice's Teams call. It stops, the other
// takes the watch over, and publishes only what changes after, not the
// call again (it starts from the last seen presence kept in NATS).
func TestWatchTakeoverPublishesNoRepeats(t *testing.T) {
	natsURL, em := sharedParts(t)
	yaml := clusterConfig(natsURL, em.Addr()) + `admin: {token: admin-token}
watch: {enabled: true, interval: 200ms}
outputs:
  - {name: bus, type: nats, skip_sources: []}
`
	first := startClusterBridgeFrom(t, yaml)
	second := startClusterBridgeFrom(t, yaml)
	if err := em.SetTeamsSession(aliceID, "Busy", "InACall"); err != nil {
		t.Fatal(err)
	}
	bridges := []*bridge.Bridge{first, second}
	testpoll.Until(t, "Alice's Teams call on the bus", func() bool {
		c, ok := latest(t, first, "PRESENCE_TEAMS", "presence.teams", aliceID)
		return ok && c.Availability == "Busy"
	})
	holder := theOne(t, bridges, "have published Alice's presence", func(b *bridge.Bridge) bool { return publishedByTeams(t, b) >= 1 })
	other := bridges[1-holder]
	if n := publishedByTeams(t, other); n != 0 {
		t.Fatalf("the bridge not holding the watch published %d changes", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := bridges[holder].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Alice's call ends after the takeover began: the next holder
	// publishes that, and only that.
	if ended, err := em.EndSession(aliceID, emulator.DefaultTeamsSessionID); err != nil || !ended {
		t.Fatalf("end Alice's Teams session: %v, %v", ended, err)
	}
	testpoll.Until(t, "the other bridge to publish the call's end", func() bool { return publishedByTeams(t, other) >= 1 })
	var end outputs.Change
	testpoll.Until(t, "the call's end on the bus", func() bool {
		c, ok := latest(t, other, "PRESENCE_TEAMS", "presence.teams", aliceID)
		end = c
		return ok && c.Availability != "Busy"
	})
	if n := publishedByTeams(t, other); n != 1 {
		t.Fatalf("after the takeover the new holder published %d Teams changes, want 1 (the call's end, not the call again)", n)
	}
	if end.Previous == nil || end.Previous.Availability != "Busy" {
		t.Fatalf("the call's end names %+v as before, want the call (Busy) its predecessor saw", end.Previous)
	}
}
