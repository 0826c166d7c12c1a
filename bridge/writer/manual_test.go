package writer

import (
	"testing"

	"github.com/presence-bridge/presence-bridge/adapters"
)

func TestCompareAggregate(t *testing.T) {
	pair := func(a, b string) adapters.Pair { return adapters.Pair{Availability: a, Activity: b} }
	tests := []struct {
		name       string
		told, got  adapters.Pair
		lost       bool
		manualSeen bool
	}{
		{"aggregate is our session", *inACall, *inACall, false, false},
		{"a Teams client presenting outranks us", *inACall, pair("DoNotDisturb", "Presenting"), false, false},
		{"a Teams meeting at the same rank", *inACall, pair("Busy", "InAMeeting"), false, false},
		{"preferred do not disturb", *inACall, pair("DoNotDisturb", "DoNotDisturb"), false, true},
		{"preferred busy", *inConf, pair("Busy", "Busy"), false, true},
		{"preferred be right back", *inACall, pair("BeRightBack", "BeRightBack"), false, true},
		{"preferred appear offline", *inACall, pair("Offline", "OffWork"), false, true},
		{"preferred available below our busy", *inACall, pair("Available", "Available"), false, true},
		{"preferred away below our busy", *dnd, pair("Away", "Away"), false, true},
		{"a Teams client available above our away", *awayPair, pair("Available", "Available"), false, false},
		{"our session is gone", *inACall, pair("Offline", "Offline"), true, false},
		{"unknown presence says nothing", *inACall, pair("PresenceUnknown", "PresenceUnknown"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lost, manual := compareAggregate(tt.told, tt.got)
			if lost != tt.lost || (manual != nil) != tt.manualSeen {
				t.Fatalf("compareAggregate(%v, %v) = %v, %v; want lost %v, manual %v", tt.told, tt.got, lost, manual, tt.lost, tt.manualSeen)
			}
			if manual != nil && *manual != tt.got {
				t.Fatalf("manual %v, want %v", manual, tt.got)
			}
		})
	}
}
