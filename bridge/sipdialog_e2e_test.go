package bridge_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/presence-bridge/presence-bridge/adapters/sipdialog/sipdialogtest"
	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
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
	var logs lockedBuffer
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
