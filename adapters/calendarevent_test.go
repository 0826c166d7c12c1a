package adapters

import (
	"strings"
	"testing"
)

// TestCalendarEventField: a meeting may name a calendar event to read
// instead of a state or window; nothing else may.
func TestCalendarEventField(t *testing.T) {
	const head = `{"id":"e1","source":"calendar","user":"u1","occurredAt":"2026-11-23T10:00:00Z",`
	for _, c := range []struct {
		name, body, problem string
	}{
		{"a meeting to read", head + `"type":"meeting","calendarEvent":"AAMk="}`, ""},
		{"with a state", head + `"type":"meeting","calendarEvent":"AAMk=","state":"started"}`, "calendarEvent: stands instead of state, start, end and showAs"},
		{"with a window", head + `"type":"meeting","calendarEvent":"AAMk=","start":"2026-11-23T11:00:00Z","end":"2026-11-23T12:00:00Z"}`, "calendarEvent: stands instead of state, start, end and showAs"},
		{"on a call", head + `"type":"call","callId":"c","state":"active","calendarEvent":"AAMk="}`, "calendarEvent: only allowed for type meeting"},
		{"not printable", head + `"type":"meeting","calendarEvent":"a\nb"}`, "calendarEvent: must be printable ASCII"},
		{"too long", head + `"type":"meeting","calendarEvent":"` + strings.Repeat("a", 257) + `"}`, "calendarEvent: longer than 256 characters"},
	} {
		t.Run(c.name, func(t *testing.T) {
			events, err := DecodeEvents([]byte(c.body))
			if c.problem == "" {
				if err != nil || len(events) != 1 || events[0].CalendarEvent != "AAMk=" {
					t.Fatalf("%v, %v", events, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.problem) {
				t.Fatalf("error %v, want %q", err, c.problem)
			}
		})
	}
}
