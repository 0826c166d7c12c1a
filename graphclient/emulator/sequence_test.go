package emulator

import (
	"testing"
	"time"
)

// TestSequenceNumberOnChange walks alice through Teams calls, meetings,
// manual statuses and app sessions, set through the admin API, the Go
// controls and Graph, reading her with getPresencesByUserId over HTTP
// after each step: her sequenceNumber grows (as a string) exactly when her
// aggregate changes and stays when it does not, and bob's never moves.
func TestSequenceNumberOnChange(t *testing.T) {
	h := newHarness(t)
	admin := func(method, path, body string) func() {
		return func() {
			if status, out := h.admin(method, path, body); status != 200 {
				t.Fatalf("%s %s: %d %v", method, path, status, out)
			}
		}
	}
	check := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	graph := func(action string, body any) func() {
		return func() {
			if status, out := h.do("POST", "/v1.0/users/"+alice+"/presence/"+action, body); status != 200 {
				t.Fatalf("%s: %d %v", action, status, out)
			}
		}
	}
	steps := []struct {
		name string
		do   func()
		want string // alice's aggregate after the step
	}{
		{"start", func() {}, "Offline/Offline"},
		{"manual status without a session does not show", admin("POST", "/_emulator/preferred", `{"user":"`+alice+`","availability":"DoNotDisturb","activity":"DoNotDisturb"}`), "Offline/Offline"},
		{"a Teams call: the manual status shows", admin("POST", "/_emulator/sessions", `{"user":"`+alice+`","availability":"Busy","activity":"InACall"}`), "DoNotDisturb/DoNotDisturb"},
		{"manual status cleared: the call shows", admin("DELETE", "/_emulator/preferred/"+alice, ""), "Busy/InACall"},
		{"the same call again", admin("POST", "/_emulator/sessions", `{"user":"`+alice+`","availability":"Busy","activity":"InACall"}`), "Busy/InACall"},
		{"a lower session (mobile, Available)", admin("POST", "/_emulator/sessions", `{"user":"`+alice+`","sessionId":"teams-mobile","availability":"Available","activity":"Available"}`), "Busy/InACall"},
		{"a Teams meeting", func() { check(h.em.SetTeamsSession(alice, "Busy", "InAMeeting")) }, "Busy/InAMeeting"},
		{"an app presents", graph("setPresence", map[string]string{"sessionId": appID, "availability": "DoNotDisturb", "activity": "Presenting"}), "DoNotDisturb/Presenting"},
		{"the app clears", graph("clearPresence", map[string]string{"sessionId": appID}), "Busy/InAMeeting"},
		{"a status message is not the aggregate", admin("POST", "/_emulator/statusMessage", `{"user":"`+alice+`","content":"In the lab"}`), "Busy/InAMeeting"},
		{"the meeting ends", admin("DELETE", "/_emulator/sessions/"+alice+"/teams-desktop", ""), "Available/Available"},
		{"manual Busy", admin("POST", "/_emulator/sessions", `{"user":"`+alice+`","kind":"preferred","availability":"Busy","activity":"Busy"}`), "Busy/Busy"},
		{"manual Busy again", func() { check(h.em.SetPreferred(alice, "Busy", "Busy", 0)) }, "Busy/Busy"},
		{"time passes", func() { h.clock.Advance(30 * time.Minute) }, "Busy/Busy"},
		{"the last session ends", func() { _, err := h.em.EndSession(alice, "teams-mobile"); check(err) }, "Offline/Offline"},
	}
	read := func() (aliceView, bobView map[string]any) {
		status, body := h.do("POST", "/v1.0/communications/getPresencesByUserId", map[string][]string{"ids": {alice, bob}})
		if status != 200 {
			t.Fatalf("read: %d %v", status, body)
		}
		value := body["value"].([]any)
		return value[0].(map[string]any), value[1].(map[string]any)
	}
	_, bobStart := read()
	prevPair, prevSeq := "", ""
	for i, s := range steps {
		s.do()
		a, b := read()
		pair, seq := a["availability"].(string)+"/"+a["activity"].(string), a["sequenceNumber"].(string)
		seqNumber(t, seq) // fixed width
		switch {
		case pair != s.want:
			t.Fatalf("step %d (%s): %s, want %s", i, s.name, pair, s.want)
		case i > 0 && pair != prevPair && seq <= prevSeq:
			t.Fatalf("step %d (%s): changed to %s but sequenceNumber %s is not after %s", i, s.name, pair, seq, prevSeq)
		case i > 0 && pair == prevPair && seq != prevSeq:
			t.Fatalf("step %d (%s): unchanged but sequenceNumber moved %s → %s", i, s.name, prevSeq, seq)
		case b["sequenceNumber"] != bobStart["sequenceNumber"]:
			t.Fatalf("step %d (%s): bob's sequenceNumber moved", i, s.name)
		}
		prevPair, prevSeq = pair, seq
	}
}
