package state

import (
	"maps"
	"slices"
	"testing"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// TestAllCallsEnds: an event for every call of a source (a snapshot after
// a subscription starts over) ends that source's open calls older than
// itself, except those it lists, and leaves other sources alone.
func TestAllCallsEnds(t *testing.T) {
	snapshot := func(min int, except ...string) adapters.Event {
		return adapters.Event{ID: "snap", Source: "pbx", Type: "call", CallID: adapters.AllCalls, State: "ended", OccurredAt: at(min), Sequence: 3, ExceptCalls: except}
	}
	tests := []struct {
		name      string
		ev        adapters.Event
		changed   bool
		stillOpen []string
	}{
		{"ends every older call of the source", snapshot(10), true, []string{"other/o1"}},
		{"keeps the calls it lists", snapshot(10, "c2"), true, []string{"other/o1", "pbx/c2"}},
		{"keeps every call it lists", snapshot(10, "c1", "c2", "c3"), false, []string{"other/o1", "pbx/c1", "pbx/c2", "pbx/c3"}},
		{"keeps a call newer than itself", snapshot(4), true, []string{"other/o1", "pbx/c3"}},
		{"older than every call: nothing", snapshot(1), false, []string{"other/o1", "pbx/c1", "pbx/c2", "pbx/c3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s UserState
			s.Apply(call("pbx", "c1", "active", 2, false), at(2))
			s.Apply(call("pbx", "c2", "ringing", 3, false), at(3))
			s.Apply(call("pbx", "c3", "active", 5, false), at(5))
			s.Apply(call("pbx", "c0", "ended", 1, false), at(1))
			s.Apply(call("other", "o1", "active", 1, false), at(1))
			if got := s.Apply(tt.ev, at(11)); got != tt.changed {
				t.Errorf("changed = %v, want %v", got, tt.changed)
			}
			var open []string
			for key, c := range s.Calls {
				if c.State != adapters.CallEnded {
					open = append(open, key)
				}
			}
			slices.Sort(open)
			if !slices.Equal(open, tt.stillOpen) {
				t.Errorf("open calls %v, want %v", open, tt.stillOpen)
			}
			if _, ok := s.Calls["pbx/"+adapters.AllCalls]; ok {
				t.Errorf("the snapshot became a claim of its own: %v", slices.Collect(maps.Keys(s.Calls)))
			}
			// A late event of an ended call does not reopen it.
			if s.Calls["pbx/c1"].State == adapters.CallEnded && s.Apply(call("pbx", "c1", "active", 2, false), at(12)) {
				t.Error("a late event reopened a call the snapshot ended")
			}
		})
	}
}
