package writer

import (
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// The writer tests' fixtures: a start time, the pairs and rules of a
// usual configuration, and a call event minutes after t0.
var (
	t0       = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	inACall  = &adapters.Pair{Availability: "Busy", Activity: "InACall"}
	inConf   = &adapters.Pair{Availability: "Busy", Activity: "InAConferenceCall"}
	dnd      = &adapters.Pair{Availability: "DoNotDisturb", Activity: "Presenting"}
	awayPair = &adapters.Pair{Availability: "Away", Activity: "Away"}
	rules    = state.Rules{
		Call: inACall, ConferenceCall: inConf, Meeting: inConf, MeetingShowAs: []string{"busy", "oof"},
		Priority: []string{"conference", "call", "meeting", "presence"}, MaxCallDuration: 4 * time.Hour,
		SourceLapse: map[string]time.Duration{"flaky": 10 * time.Minute},
	}
)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func tp(t time.Time) *time.Time { return &t }

func call(source, id, st string, min int, conference bool) adapters.Event {
	return adapters.Event{ID: id + st, Source: source, Type: "call", CallID: id, State: st, OccurredAt: at(min), Conference: conference}
}
