package bridge_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters/sipdialog/sipdialogtest"
	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/logbuf"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// TestSIPDialogThroughTheBridge runs a sipdialog source in a whole bridge
// against a real Kamailio: a call 1001 → 1002 placed by two phones rings
// both Alice (ext:1001 in the directory) and Bob (mapped to Away/Away here,
// to be seen), answered makes the emulator show both in a call, and
// hanging up clears both. The SIP password comes from the environment
// and never reaches the logs.
func TestSIPDialogThroughTheBridge(t *testing.T) {
	k := sipdialogtest.StartKamailio(t)
	t.Setenv("PRESENCE_BRIDGE_TEST_SIP_PASSWORD", sipdialogtest.BridgePassword)
	yaml := strings.Replace(testConfig(t), "admin: {token", fmt.Sprintf(`  - name: pbx
    type: sipdialog
    sipdialog:
      pbx: %s
      listen: 127.0.0.1:0
      domain: %s
      user: %s
      password_env: PRESENCE_BRIDGE_TEST_SIP_PASSWORD
      register: true
      subscribe_expiry: 20s
      request_timeout: 3s
      backoff: {min: 200ms, max: 2s}
      entities:
        - {entity: "1001"}
        - {entity: "sip:1002@%s", user: bob@contoso.example}
presence: {mapping: {ringing: Away/Away}}
admin: {token`, k.Addr(), sipdialogtest.Domain, sipdialogtest.BridgeUser, sipdialogtest.Domain), 1)
	cfg, err := config.Parse([]byte(yaml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	b, err := bridge.New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Stop(context.Background())
		if strings.Contains(logs.String(), sipdialogtest.BridgePassword) {
			t.Error("the SIP password is in the logs")
		}
		if t.Failed() {
			t.Logf("bridge logs:\n%s", sipdialogtest.Tail(logs.String(), 8000))
		}
	})
	presence := func(id string) string {
		p, _ := b.Emulator().Presence(id)
		return p.Availability + "/" + p.Activity
	}
	wait := func(what, want string) {
		t.Helper()
		testpoll.Until(t, what, func() bool { return presence(aliceID) == want && presence(bobID) == want })
	}
	testpoll.Until(t, "both subscriptions", func() bool {
		return strings.Count(logs.String(), "sipdialog subscribed") >= 2
	})
	p1, p2 := sipdialogtest.NewPhone(t, "1001", k.Addr()), sipdialogtest.NewPhone(t, "1002", k.Addr())
	p1.Register()
	p2.Register()
	c := p1.Dial("1002")
	wait("a call 1001 → 1002 ringing", "Away/Away")
	p2.Answer()
	wait("the call answered", "Busy/InACall")
	c.HangUp(t)
	wait("the call hung up", "Offline/Offline")
	if !b.Running("pbx") {
		t.Error("the bridge does not report running the source")
	}
	testpoll.Until(t, "the source's metrics", func() bool {
		resp, err := http.Get("http://" + b.Addr() + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), `presence_bridge_source_running{source="pbx"} 1`) &&
			strings.Contains(string(body), `presence_bridge_source_entities{source="pbx",state="subscribed"} 2`)
	})
}

// sipSource is a sipdialog source on k watching 1001 (Alice, through the
// directory) and 1002 (Bob), for a configuration's sources list.
func sipSource(k *sipdialogtest.Kamailio, subscribeExpiry, keepalive string) string {
	return fmt.Sprintf(`  - name: pbx
    type: sipdialog
    sipdialog:
      pbx: %s
      listen: 127.0.0.1:0
      domain: %s
      user: %s
      password: %s
      register: true
      subscribe_expiry: %s
      keepalive_interval: %s
      request_timeout: 3s
      backoff: {min: 200ms, max: 2s}
      entities:
        - {entity: "1001"}
        - {entity: "sip:1002@%s", user: bob@contoso.example}
`, k.Addr(), sipdialogtest.Domain, sipdialogtest.BridgeUser, sipdialogtest.BridgePassword, subscribeExpiry, keepalive, sipdialogtest.Domain)
}

// sourceSubscribed reports whether b's metrics show both entities of the
// source pbx subscribed.
func sourceSubscribed(b *bridge.Bridge) bool {
	resp, err := http.Get("http://" + b.Addr() + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(body), `presence_bridge_source_entities{source="pbx",state="subscribed"} 2`)
}

// TestSIPDialogPBXRestartClearsCalls: Kamailio restarts during a call
// (forgetting its dialogs and subscriptions) and the call ends after it
// is back, so Kamailio never reports the end. The keep-alive (1s here,
// with subscriptions refreshed only after minutes) notices the restart,
// the bridge subscribes again, and the new subscription's first NOTIFY
// (without a body: Kamailio knows no dialog) ends the call for both.
func TestSIPDialogPBXRestartClearsCalls(t *testing.T) {
	k := sipdialogtest.StartKamailio(t)
	yaml := withSource(testConfig(t), sipSource(k, "10m", "1s")+"presence: {mapping: {ringing: Away/Away}}\n")
	b := startBridge(t, yaml)
	presence := func(id string) string {
		p, _ := b.Emulator().Presence(id)
		return p.Availability + "/" + p.Activity
	}
	wait := func(what, want string) {
		t.Helper()
		testpoll.Until(t, what, func() bool { return presence(aliceID) == want && presence(bobID) == want })
	}
	testpoll.Until(t, "both subscriptions", func() bool { return sourceSubscribed(b) })
	p1, p2 := sipdialogtest.NewPhone(t, "1001", k.Addr()), sipdialogtest.NewPhone(t, "1002", k.Addr())
	p1.Register()
	p2.Register()
	c := p1.Dial("1002")
	wait("a call 1001 → 1002 ringing", "Away/Away")
	p2.Answer()
	wait("the call answered", "Busy/InACall")

	k.Restart()
	back := time.Now()
	c.HangUp(t)
	wait("the call cleared after the PBX restart", "Offline/Offline")
	took := time.Since(back)
	t.Logf("cleared %s after Kamailio was back", took.Round(time.Millisecond))
	if took > time.Minute {
		t.Errorf("cleared after %s, want within about a minute", took)
	}
}

// TestSIPDialogHandoverClearsCalls: two bridges share the sipdialog
// source's lease. The holder dies during a call (it loses NATS at once, as
// if killed: it can publish nothing more and its lease runs out), the call
// ends before the other bridge takes over, so the end is never published
// by the first and never seen by the second. The second's first
// subscription round still clears both people: its snapshot ends every
// call the source claimed and the PBX no longer lists.
func TestSIPDialogHandoverClearsCalls(t *testing.T) {
	k := sipdialogtest.StartKamailio(t)
	natsURL, em := sharedParts(t)
	yaml := strings.Replace(clusterConfig(natsURL, em.Addr()), "presence: {lease_ttl: 2s}", "presence: {lease_ttl: 2s, mapping: {ringing: Away/Away}}", 1) +
		sipSource(k, "30s", "1m")
	bridges := []*bridge.Bridge{startClusterBridgeFrom(t, yaml), startClusterBridgeFrom(t, yaml)}
	holder := -1
	testpoll.Until(t, "a bridge running the source", func() bool {
		for i, b := range bridges {
			if b.Running("pbx") {
				holder = i
				return true
			}
		}
		return false
	})
	testpoll.Until(t, "both subscriptions", func() bool { return sourceSubscribed(bridges[holder]) })
	presence := func(id string) string {
		p, _ := em.Presence(id)
		return p.Availability + "/" + p.Activity
	}
	wait := func(what, want string) {
		t.Helper()
		testpoll.Until(t, what, func() bool { return presence(aliceID) == want && presence(bobID) == want })
	}
	p1, p2 := sipdialogtest.NewPhone(t, "1001", k.Addr()), sipdialogtest.NewPhone(t, "1002", k.Addr())
	p1.Register()
	p2.Register()
	c := p1.Dial("1002")
	wait("a call 1001 → 1002 ringing", "Away/Away")
	p2.Answer()
	wait("the call answered", "Busy/InACall")

	other := bridges[1-holder]
	if other.Running("pbx") {
		t.Fatal("both bridges run the source")
	}
	bridges[holder].Queue().Conn().Close()
	c.HangUp(t)
	if other.Running("pbx") {
		t.Fatal("the other bridge took over before the call ended; the test shows nothing")
	}
	testpoll.Until(t, "the other bridge taking the source over", func() bool { return other.Running("pbx") })
	took := time.Now()
	wait("the call cleared after the handover", "Offline/Offline")
	// Within the new holder's first subscription round: before its first
	// refresh (after 20 of the 30s granted) could have told it anything.
	if d := time.Since(took); d > 20*time.Second {
		t.Errorf("cleared %s after the takeover, want within the first subscription round", d)
	} else {
		t.Logf("cleared %s after the takeover", d.Round(time.Millisecond))
	}
}
