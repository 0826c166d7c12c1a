package writer

import (
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// TestEmptyAt: a state with nothing under way is empty once Prune has
// taken its last claim (found to the second), never while it holds
// something the writer must remember or a claim that never lapses.
func TestEmptyAt(t *testing.T) {
	endless := rules
	endless.MaxCallDuration = 0
	with := func(evs []adapters.Event, change func(*state.UserState)) state.UserState {
		st := state.UserState{UserID: "u1"}
		for _, ev := range evs {
			st.Apply(ev, ev.OccurredAt)
		}
		if change != nil {
			change(&st)
		}
		return st
	}
	ended := []adapters.Event{call("pbx", "c", "active", 0, false), call("pbx", "c", "ended", 0, false)}
	active := []adapters.Event{call("pbx", "c", "active", 0, false)}
	now := at(1)
	for _, tt := range []struct {
		name  string
		st    state.UserState
		rules state.Rules
		ok    bool
		want  time.Time // the state is empty within a second after want
	}{
		{"no claims", with(nil, nil), rules, true, now.Add(-time.Second)},
		{"an ended call, once kept long enough", with(ended, nil), rules, true, at(0).Add(state.KeepClaims)},
		{"an open call, once it timed out and was kept", with(active, nil), rules, true, at(0).Add(rules.MaxCallDuration + state.KeepClaims)},
		{"an open call that never times out", with(active, nil), endless, false, time.Time{}},
		{"a session", with(ended, func(s *state.UserState) { s.Told = &state.Told{Pair: inACall, At: at(0)} }), rules, false, time.Time{}},
		{"a session cleared", with(ended, func(s *state.UserState) { s.Told = &state.Told{At: at(0)} }), rules, true, at(0).Add(state.KeepClaims)},
		{"a pending call", with(ended, func(s *state.UserState) { s.Pending = &state.Told{At: at(0)} }), rules, false, time.Time{}},
		{"a refusal", with(ended, func(s *state.UserState) { s.Failed = &state.Failure{Pair: inACall} }), rules, false, time.Time{}},
		{"a manual status", with(ended, func(s *state.UserState) { s.Manual = &state.ManualStatus{Pair: *awayPair} }), rules, false, time.Time{}},
		{"the writer's status message", with(ended, func(s *state.UserState) { s.Status = &state.StatusMessage{Text: "On a call"} }), rules, false, time.Time{}},
		{"the user's own status message", with(ended, func(s *state.UserState) { s.Status = &state.StatusMessage{UserText: "lunch"} }), rules, true, at(0).Add(state.KeepClaims)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			claims := tt.st.Claims()
			got, ok := emptyAt(tt.st, now, tt.rules)
			if tt.st.Claims() != claims {
				t.Fatalf("emptyAt pruned the state it was given: %d claims, had %d", tt.st.Claims(), claims)
			}
			if ok != tt.ok {
				t.Fatalf("emptyAt ok = %v, want %v", ok, tt.ok)
			}
			if ok && (got.Before(tt.want) || got.After(tt.want.Add(time.Second))) {
				t.Fatalf("empty at %s, want within a second after %s", got.Sub(t0), tt.want.Sub(t0))
			}
			if ok && !prunedEmpty(tt.st, tt.rules, got) {
				t.Fatalf("not empty at the time emptyAt gave")
			}
		})
	}
}
