package adapters

import (
	"strings"
	"testing"
	"time"
)

// TestAllCallsValidation: the call id "*" goes only with state ended, and
// exceptCalls only with it, bounded in number and length.
func TestAllCallsValidation(t *testing.T) {
	base := func(callID, state string, except ...string) string {
		ev := `{"id":"s1","source":"pbx","type":"call","user":"ext:1001","occurredAt":"2026-11-23T10:00:00Z","callId":"` + callID + `","state":"` + state + `"`
		if except != nil {
			ev += `,"exceptCalls":["` + strings.Join(except, `","`) + `"]`
		}
		return ev + "}"
	}
	many := make([]string, MaxExceptCalls+1)
	for i := range many {
		many[i] = "c"
	}
	tests := []struct {
		name, body, problem string
	}{
		{"every call ended", base("*", "ended"), ""},
		{"every call but two ended", base("*", "ended", "c1", "c2"), ""},
		{"every call active", base("*", "active"), "callId"},
		{"except without every call", base("c9", "ended", "c1"), "exceptCalls"},
		{"an empty exception", base("*", "ended", ""), "exceptCalls[0]"},
		{"a long exception", base("*", "ended", strings.Repeat("x", 257)), "exceptCalls[0]"},
		{"too many exceptions", base("*", "ended", many...), "exceptCalls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := DecodeEvents([]byte(tt.body))
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if events[0].CallID != AllCalls || !events[0].OccurredAt.Equal(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)) {
					t.Fatalf("decoded %+v", events[0])
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.problem+":") {
				t.Fatalf("error %v, want one naming %s", err, tt.problem)
			}
		})
	}
}
