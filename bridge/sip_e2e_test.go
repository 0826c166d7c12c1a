package bridge_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/presence-bridge/presence-bridge/adapters/sipdialog/sipdialogtest"
	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs/sip/siptest"
)

// sipOutput is a sip output publishing to k for Alice (1001, through the
// directory's ext:1001) and Bob (1002), skipping the pbx source's changes.
func sipOutput(k *sipdialogtest.Kamailio) string {
	return fmt.Sprintf(`watch: {enabled: true, interval: 200ms}
outputs:
  - name: phones
    type: sip
    skip_sources: [pbx]
    sip:
      server: %s
      domain: %s
      user: %s
      password: %s
      expires: 1m
      request_timeout: 3s
      backoff: {min: 200ms, max: 2s}
      extensions: {alice@contoso.example: "1001", bob@contoso.example: "1002"}
`, k.Addr(), siptest.Domain, siptest.BridgeUser, siptest.BridgePassword)
}

// metric reads one sample of b's /metrics, 0 when absent.
func metric(t testing.TB, b *bridge.Bridge, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + b.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(string(body))
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// blf is what a watcher last heard of an extension: its RPID activities
// and whether a dialog of the bridge's is confirmed.
func blf(t *testing.T, w *siptest.Watcher, ext string) ([]string, bool) {
	t.Helper()
	var activities []string
	if n, ok := w.Latest(ext, "presence"); ok {
		p, err := siptest.ParsePIDF(n.Body)
		if err != nil {
			t.Fatalf("presence NOTIFY of %s: %v", ext, err)
		}
		activities = p.Activities
	}
	lit := false
	if n, ok := w.Latest(ext, "dialog"); ok {
		d, err := siptest.Dialogs(n.Body)
		if err != nil {
			t.Fatalf("dialog NOTIFY of %s: %v", ext, err)
		}
		for id, state := range d {
			lit = lit || strings.HasPrefix(id, "teams-") && state == "confirmed"
		}
	}
	return activities, lit
}

// TestSIPLoop runs, in one bridge on one real Kamailio, a sipdialog source
// (pbx) and a sip output (phones) for the same extensions, with a desk
// phone (1003) watching 1001's presence and dialogs:
//   - a Teams call set through the emulator reaches the phone: presence
//     on-the-phone and a confirmed teams- dialog (the BLF lights), and
//     clears when the call ends; the pbx source ignores the bridge's own
//     dialog, so it makes no event of it;
//   - a PBX call 1001 → 1002 shows busy in Teams and clears, and the
//     output skips it (skip_sources), so it does not come back;
//   - nobody stays busy.
func TestSIPLoop(t *testing.T) {
	k := siptest.StartKamailio(t)
	yaml := withSource(testConfig(t), sipSource(k, "10m", "30s")) + sipOutput(k)
	b := startBridge(t, yaml)
	presence := func(id string) string {
		p, _ := b.Emulator().Presence(id)
		return p.Availability + "/" + p.Activity
	}
	testpoll.Until(t, "the pbx source's subscriptions", func() bool { return sourceSubscribed(b) })
	w := siptest.NewWatcher(t, "1003", k.Addr())
	w.Subscribe("1001", "presence")
	w.Subscribe("1001", "dialog")
	pbxEvents := func() float64 {
		return metric(t, b, `presence_bridge_events_processed_total{outcome="applied",source="pbx"}`)
	}
	testpoll.Until(t, "the pbx source's first snapshots applied", func() bool { return pbxEvents() >= 2 })
	before := pbxEvents()

	// A Teams call of Alice's lights her BLF key.
	if err := b.Emulator().SetTeamsSession(aliceID, "Busy", "InACall"); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "the Teams call at the phone", func() bool {
		activities, lit := blf(t, w, "1001")
		return slices.Contains(activities, "on-the-phone") && lit
	})
	// The call ends: the key goes dark, the presence is no longer on the
	// phone.
	if _, err := b.Emulator().EndSession(aliceID, emulator.DefaultTeamsSessionID); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "the Teams call's end at the phone", func() bool {
		activities, lit := blf(t, w, "1001")
		return !slices.Contains(activities, "on-the-phone") && !lit
	})
	if n := metric(t, b, `presence_bridge_sip_publications_total{class="2xx",output="phones"}`); n < 2 {
		t.Errorf("%v PUBLISHes answered 2xx in the metrics, want the call's", n)
	}
	if after := pbxEvents(); after != before {
		t.Errorf("the pbx source made %v events of the bridge's own Teams call, want none", after-before)
	}

	// A PBX call shows busy in Teams and clears; the output skips it.
	skipped := metric(t, b, `presence_bridge_changes_skipped_total{output="phones"}`)
	p1, p2 := sipdialogtest.NewPhone(t, "1001", k.Addr()), sipdialogtest.NewPhone(t, "1002", k.Addr())
	p1.Register()
	p2.Register()
	c := p1.Dial("1002")
	testpoll.Until(t, "both ringing at the PBX", func() bool {
		return metric(t, b, `presence_bridge_events_processed_total{outcome="applied",source="pbx"}`) >= before+2
	})
	p2.Answer()
	testpoll.Until(t, "the PBX call busy in Teams", func() bool {
		return presence(aliceID) == "Busy/InACall" && presence(bobID) == "Busy/InACall"
	})
	testpoll.Until(t, "the PBX call skipped by the output", func() bool {
		return metric(t, b, `presence_bridge_changes_skipped_total{output="phones"}`) > skipped
	})
	if activities, _ := blf(t, w, "1001"); slices.Contains(activities, "on-the-phone") {
		t.Error("the PBX's own call came back to it as Teams presence")
	}
	c.HangUp(t)
	testpoll.Until(t, "nobody busy after the PBX call", func() bool {
		return !strings.HasPrefix(presence(aliceID), "Busy") && !strings.HasPrefix(presence(bobID), "Busy")
	})
	testpoll.Until(t, "the phone not told of a call", func() bool {
		activities, lit := blf(t, w, "1001")
		return !slices.Contains(activities, "on-the-phone") && !lit
	})
	for _, path := range []string{"/metrics", "/v1/admin/outputs"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+b.Addr()+path, nil)
		req.Header.Set("Authorization", "Bearer admin-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.Contains(string(body), siptest.BridgePassword) {
			t.Errorf("%s: %d, password shown: %v", path, resp.StatusCode, strings.Contains(string(body), siptest.BridgePassword))
		}
	}
}

// TestSIPOutputSurvivesKamailioRestart: a Teams call reaches a desk phone
// through a whole bridge; Kamailio restarts and forgets every
// publication; once the phone subscribes again, the bridge's next refresh
// meets 412 and publishes the call anew, without a Teams change.
func TestSIPOutputSurvivesKamailioRestart(t *testing.T) {
	k := siptest.StartKamailio(t)
	out := strings.NewReplacer("expires: 1m", "expires: 10s", "skip_sources: [pbx]", "skip_sources: [demo]").Replace(sipOutput(k))
	b := startBridge(t, testConfig(t)+out)
	w := siptest.NewWatcher(t, "1003", k.Addr())
	w.Subscribe("1001", "presence")
	w.Subscribe("1001", "dialog")
	if err := b.Emulator().SetTeamsSession(aliceID, "Busy", "InACall"); err != nil {
		t.Fatal(err)
	}
	onThePhone := func(w *siptest.Watcher) func() bool {
		return func() bool {
			activities, lit := blf(t, w, "1001")
			return slices.Contains(activities, "on-the-phone") && lit
		}
	}
	testpoll.Until(t, "the Teams call at the phone", onThePhone(w))
	k.Restart()
	w2 := siptest.NewWatcher(t, "1003", k.Addr())
	w2.Subscribe("1001", "presence")
	w2.Subscribe("1001", "dialog")
	testpoll.Until(t, "the Teams call at the phone again after the restart", onThePhone(w2))
}

// TestSIPOutputRemovesWhoLeftTheWatch: Bob, watched through the
// directory, is in a Teams call and his BLF key is lit; the directory is
// reloaded without him, so he leaves the watch, and the desk phone's
// watcher is told that his call ended and his presence is closed: the
// output removed his publications, which would otherwise stand for their
// 10 minutes, well past testpoll.Deadline.
func TestSIPOutputRemovesWhoLeftTheWatch(t *testing.T) {
	k := siptest.StartKamailio(t)
	out := strings.NewReplacer("expires: 1m", "expires: 10m", "skip_sources: [pbx]", "skip_sources: [demo]").Replace(sipOutput(k))
	withBob := strings.Replace(testConfig(t)+out, `"ext:1001": alice@contoso.example`, `"ext:1001": alice@contoso.example`+"\n  \"ext:1002\": bob@contoso.example", 1)
	b := startBridge(t, withBob)
	w := siptest.NewWatcher(t, "1003", k.Addr())
	w.Subscribe("1002", "presence")
	w.Subscribe("1002", "dialog")
	if err := b.Emulator().SetTeamsSession(bobID, "Busy", "InACall"); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "Bob's Teams call at the phone", func() bool {
		activities, lit := blf(t, w, "1002")
		return slices.Contains(activities, "on-the-phone") && lit
	})

	cfg, err := config.Parse([]byte(strings.Replace(withBob, "\n  \"ext:1002\": bob@contoso.example", "", 1)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "Bob's presence closed and his call ended at the phone", func() bool {
		p, ok := w.Latest("1002", "presence")
		d, _ := w.Latest("1002", "dialog")
		if !ok {
			return false
		}
		presence, err := siptest.ParsePIDF(p.Body)
		if err != nil {
			t.Fatalf("presence NOTIFY: %v", err)
		}
		dialogs, err := siptest.Dialogs(d.Body)
		if err != nil {
			t.Fatalf("dialog NOTIFY: %v", err)
		}
		confirmed, terminated := false, false
		for id, state := range dialogs {
			if strings.HasPrefix(id, "teams-") {
				confirmed = confirmed || state == "confirmed"
				terminated = terminated || state == "terminated"
			}
		}
		return terminated && !confirmed && presence.Basic == "closed" && !slices.Contains(presence.Activities, "on-the-phone")
	})
}
