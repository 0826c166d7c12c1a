package writer

import (
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// statusWriter is a writer with status messages for calls and
// conference calls, expiring after an hour.
func statusWriter() *writer {
	return &writer{e: &Pool{rules: rules, opts: Options{
		StatusMessages: map[string]string{"call": "On a call", "conference_call": "In a conference"},
		StatusExpiry:   time.Hour,
	}}}
}

// TestStatusDue: what the writer does about a user's status message, per
// state: nothing before Graph holds the session, set, change, renew
// before the expiry, remove after the claim, and never touch the user's
// own message or send a refused text again.
func TestStatusDue(t *testing.T) {
	inCall := state.UserState{Calls: map[string]*state.CallClaim{"pbx/c1": {Source: "pbx", State: "active", Updated: at(0)}}}
	inConfCall := state.UserState{Calls: map[string]*state.CallClaim{"pbx/c1": {Source: "pbx", State: "active", Conference: true, Updated: at(0)}}}
	told := func(st state.UserState, p *adapters.Pair, status *state.StatusMessage) state.UserState {
		st.Told, st.Status = &state.Told{Pair: p, At: at(0)}, status
		return st
	}
	ours := &state.StatusMessage{Text: "On a call", At: at(0), Expires: at(60)}
	tests := []struct {
		name string
		st   state.UserState
		now  time.Time
		text string
		due  bool
		at   time.Time
	}{
		{"session not set yet", inCall, at(1), "", false, time.Time{}},
		{"session being set", func() state.UserState { s := told(inCall, inACall, nil); s.Pending = &state.Told{}; return s }(), at(1), "", false, time.Time{}},
		{"session set: show the message", told(inCall, inACall, nil), at(1), "On a call", true, time.Time{}},
		{"shown: renew at five sixths of the expiry", told(inCall, inACall, ours), at(1), "On a call", false, at(50)},
		{"renewal due", told(inCall, inACall, ours), at(50), "On a call", true, time.Time{}},
		{"the call became a conference", told(inConfCall, inConf, ours), at(1), "In a conference", true, time.Time{}},
		{"call ended: remove ours", told(state.UserState{}, nil, ours), at(1), "", true, time.Time{}},
		{"call ended, nothing shown", told(state.UserState{}, nil, nil), at(1), "", false, time.Time{}},
		{"the user's own message", told(inCall, inACall, &state.StatusMessage{UserText: "Lunch", At: at(0)}), at(1), "On a call", false, time.Time{}},
		{"the user's own after the call", told(state.UserState{}, nil, &state.StatusMessage{UserText: "Lunch", At: at(0)}), at(1), "", false, time.Time{}},
		{"refused text", told(inCall, inACall, &state.StatusMessage{Refused: "On a call", At: at(0)}), at(1), "On a call", false, time.Time{}},
		{"another text after a refusal", told(inConfCall, inConf, &state.StatusMessage{Refused: "On a call", At: at(0)}), at(1), "In a conference", true, time.Time{}},
	}
	w := statusWriter()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, _ := tt.st.Desired(rules, tt.now)
			text, due, next := w.statusDue(tt.st, want, tt.now)
			if text != tt.text || due != tt.due || !next.Equal(tt.at) {
				t.Fatalf("statusDue = %q, %v, %s; want %q, %v, %s", text, due, next, tt.text, tt.due, tt.at)
			}
		})
	}
	off := &writer{e: &Pool{rules: rules}}
	if _, due, _ := off.statusDue(told(inCall, inACall, nil), inACall, at(1)); due {
		t.Fatal("status messages off, yet a message is due")
	}
}

// TestActiveKind: the kind follows Desired's priority, and a presence
// claim or no claim is no kind.
func TestActiveKind(t *testing.T) {
	both := state.UserState{Calls: map[string]*state.CallClaim{
		"pbx/c1": {Source: "pbx", State: "active", Updated: at(0)},
		"pbx/c2": {Source: "pbx", State: "active", Conference: true, Updated: at(0)},
	}}
	present := state.UserState{Presence: map[string]*state.PresenceClaim{"desk": {Pair: awayPair}}}
	for _, tt := range []struct {
		st   state.UserState
		want string
	}{{both, "conference_call"}, {present, ""}, {state.UserState{}, ""}} {
		if got := activeKind(tt.st, rules, at(1)); got != tt.want {
			t.Errorf("activeKind = %q, want %q", got, tt.want)
		}
	}
}

// TestCompareStatus: what an aggregate read's status text says of the
// record.
func TestCompareStatus(t *testing.T) {
	ours := &state.StatusMessage{Text: "On a call", At: at(0), Expires: at(60)}
	users := &state.StatusMessage{UserText: "Lunch", At: at(0)}
	refused := &state.StatusMessage{Refused: "On a call", At: at(0)}
	tests := []struct {
		name    string
		rec     *state.StatusMessage
		text    string
		want    *state.StatusMessage
		changed bool
	}{
		{"ours shows", ours, "On a call ", ours, false},
		{"ours gone", ours, "", nil, true},
		{"the user wrote over ours", ours, "Lunch", users, true},
		{"the user's shows", users, "Lunch", users, false},
		{"the user's gone", users, "", nil, true},
		{"a message before ours", nil, "Lunch", users, true},
		{"nothing", nil, "", nil, false},
		{"refused, nothing shows", refused, "", refused, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := compareStatus(tt.rec, tt.text, at(0))
			if changed != tt.changed || !sameStatus(got, tt.want) {
				t.Fatalf("compareStatus = %+v, %v; want %+v, %v", got, changed, tt.want, tt.changed)
			}
		})
	}
}
