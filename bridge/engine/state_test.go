package engine

import (
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

var (
	t0       = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	inACall  = &adapters.Pair{Availability: "Busy", Activity: "InACall"}
	inConf   = &adapters.Pair{Availability: "Busy", Activity: "InAConferenceCall"}
	dnd      = &adapters.Pair{Availability: "DoNotDisturb", Activity: "Presenting"}
	awayPair = &adapters.Pair{Availability: "Away", Activity: "Away"}
	rules    = Rules{
		Call: inACall, ConferenceCall: inConf, Meeting: inConf, MeetingShowAs: []string{"busy", "oof"},
		Priority: []string{"conference", "call", "meeting", "presence"}, MaxCallDuration: 4 * time.Hour,
		SourceLapse: map[string]time.Duration{"flaky": 10 * time.Minute},
	}
)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func tp(t time.Time) *time.Time { return &t }

func call(source, id, state string, min int, conference bool) adapters.Event {
	return adapters.Event{ID: id + state, Source: source, Type: "call", CallID: id, State: state, OccurredAt: at(min), Conference: conference}
}

func TestDesired(t *testing.T) {
	meeting := adapters.Event{ID: "m", Source: "cal", Type: "meeting", OccurredAt: at(0), Start: tp(at(30)), End: tp(at(90)), ShowAs: "busy"}
	presence := adapters.Event{ID: "p", Source: "bus", Type: "presence", State: "set", Availability: "DoNotDisturb", Activity: "Presenting", OccurredAt: at(0), ExpiresAt: tp(at(120))}
	tests := []struct {
		name   string
		events []adapters.Event
		now    time.Time
		want   *adapters.Pair
		next   time.Time
	}{
		{"nothing", nil, at(0), nil, time.Time{}},
		{"active call", []adapters.Event{call("pbx", "c1", "active", 0, false)}, at(1), inACall, at(240)},
		{"held call", []adapters.Event{call("pbx", "c1", "held", 0, false)}, at(1), inACall, at(240)},
		{"ringing is nothing", []adapters.Event{call("pbx", "c1", "ringing", 0, false)}, at(1), nil, at(240)},
		{"ended call", []adapters.Event{call("pbx", "c1", "active", 0, false), call("pbx", "c1", "ended", 1, false)}, at(2), nil, time.Time{}},
		{"conference beats call", []adapters.Event{call("pbx", "c1", "active", 0, false), call("pbx", "c2", "active", 0, true)}, at(1), inConf, at(240)},
		{"one of two calls ends", []adapters.Event{call("pbx", "c1", "active", 0, false), call("zoom", "c2", "active", 0, false), call("pbx", "c1", "ended", 1, false)}, at(2), inACall, at(240)},
		{"call beats presence", []adapters.Event{presence, call("pbx", "c1", "active", 0, false)}, at(1), inACall, at(120)},
		{"presence alone", []adapters.Event{presence}, at(1), dnd, at(120)},
		{"presence expired", []adapters.Event{presence}, at(121), nil, time.Time{}},
		{"meeting not yet", []adapters.Event{meeting}, at(10), nil, at(30)},
		{"meeting on", []adapters.Event{meeting}, at(30), inConf, at(90)},
		{"meeting over", []adapters.Event{meeting}, at(90), nil, time.Time{}},
		{"free meeting", []adapters.Event{{ID: "f", Source: "cal", Type: "meeting", OccurredAt: at(0), Start: tp(at(0)), End: tp(at(60)), ShowAs: "free"}}, at(1), nil, time.Time{}},
		{"call beats meeting", []adapters.Event{meeting, call("pbx", "c1", "active", 31, false)}, at(31), inACall, at(90)},
		{"call too long", []adapters.Event{call("pbx", "c1", "active", 0, false)}, at(240), nil, time.Time{}},
		{"silent source lapses", []adapters.Event{call("flaky", "c1", "active", 0, false)}, at(10), nil, time.Time{}},
		{"source not yet lapsed", []adapters.Event{call("flaky", "c1", "active", 0, false)}, at(9), inACall, at(10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s UserState
			for _, ev := range tt.events {
				s.Apply(ev, ev.OccurredAt)
			}
			got, next := s.Desired(rules, tt.now)
			if !samePair(got, tt.want) || !next.Equal(tt.next) {
				t.Fatalf("Desired = %v next %v, want %v next %v", got, next, tt.want, tt.next)
			}
		})
	}
	t.Run("priority is configurable", func(t *testing.T) {
		var s UserState
		s.Apply(presence, at(0))
		s.Apply(call("pbx", "c1", "active", 0, false), at(0))
		r := rules
		r.Priority = []string{"presence", "conference", "call", "meeting"}
		if got, _ := s.Desired(r, at(1)); !samePair(got, dnd) {
			t.Fatalf("got %v", got)
		}
	})
}

func TestOrderingAndDuplicates(t *testing.T) {
	var s UserState
	if !s.Apply(call("pbx", "c1", "active", 5, false), at(5)) {
		t.Fatal("first event changed nothing")
	}
	tests := []struct {
		name    string
		ev      adapters.Event
		changed bool
	}{
		{"duplicate", call("pbx", "c1", "active", 5, false), false},
		{"older", call("pbx", "c1", "ended", 4, false), false},
		{"same time, lower sequence", adapters.Event{Source: "pbx", Type: "call", CallID: "c1", State: "ended", OccurredAt: at(5), Sequence: -1}, false},
		{"same time, higher sequence", adapters.Event{Source: "pbx", Type: "call", CallID: "c1", State: "held", OccurredAt: at(5), Sequence: 2}, true},
		{"newer", call("pbx", "c1", "ended", 6, false), true},
		{"late active after ended", call("pbx", "c1", "active", 5, false), false},
		{"another call, older", call("pbx", "c2", "active", 1, false), true},
	}
	for _, tt := range tests {
		if got := s.Apply(tt.ev, at(7)); got != tt.changed {
			t.Errorf("%s: changed = %v, want %v", tt.name, got, tt.changed)
		}
	}
	if got, _ := s.Desired(rules, at(8)); !samePair(got, inACall) {
		t.Fatalf("c2 is still active: got %v", got)
	}
}

// TestTies: sources with one-second clocks send several events in one
// second; a different state at a tie applies, a duplicate does not, and a
// tie never reopens an ended call.
func TestTies(t *testing.T) {
	var s UserState
	s.Apply(call("pbx", "c1", "active", 5, false), at(5))
	if !s.Apply(call("pbx", "c1", "ended", 5, false), at(5)) {
		t.Fatal("ended in the same second as active was ignored")
	}
	if s.Apply(call("pbx", "c1", "active", 5, false), at(5)) {
		t.Fatal("a tie reopened an ended call")
	}
	if got, _ := s.Desired(rules, at(6)); got != nil {
		t.Fatalf("desired %v after ended", got)
	}
	var p UserState
	p.Apply(call("pbx", "c2", "active", 5, false), at(5))
	if p.Apply(call("pbx", "c2", "active", 5, false), at(5)) {
		t.Fatal("a duplicate changed the state")
	}
	if !p.Apply(call("pbx", "c2", "held", 5, false), at(5)) {
		t.Fatal("held in the same second as active was ignored")
	}
}

func TestPrune(t *testing.T) {
	var s UserState
	s.Apply(call("pbx", "c1", "active", 0, false), at(0))
	s.Apply(call("pbx", "c1", "ended", 1, false), at(1))
	s.Apply(call("pbx", "c2", "active", 0, false), at(0))
	s.Prune(at(62), time.Hour)
	if _, ok := s.Calls["pbx/c1"]; ok {
		t.Fatal("ended call kept past the window")
	}
	if _, ok := s.Calls["pbx/c2"]; !ok {
		t.Fatal("open call pruned")
	}
}
