package bridge_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/presence-bridge/presence-bridge/adapters/sipdialog/sipdialogtest"
	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// TestSIPDialogThroughTheBridge runs a sipdialog source in a whole bridge
// against a real Kamailio: a call 1001 → 1002 placed by two phones makes
// the emulator show Alice (ext:1001 in the directory) and Bob in a call,
// and hanging up clears both. The SIP password comes from the environment
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
		sipdialogtest.WaitFor(t, what, func() bool { return presence(aliceID) == want && presence(bobID) == want })
	}
	sipdialogtest.WaitFor(t, "both subscriptions", func() bool {
		return strings.Count(logs.String(), "sipdialog subscribed") >= 2
	})
	p1, p2 := sipdialogtest.NewPhone(t, "1001", k.Addr()), sipdialogtest.NewPhone(t, "1002", k.Addr())
	p1.Register()
	p2.Register()
	c := p1.Dial("1002")
	p2.Answer()
	wait("a call 1001 → 1002", "Busy/InACall")
	c.HangUp(t)
	wait("the call hung up", "Offline/Offline")
	if !b.Running("pbx") {
		t.Error("the bridge does not report running the source")
	}
}
