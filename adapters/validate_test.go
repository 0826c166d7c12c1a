package adapters

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// validEvent returns a call event that passes validation.
func validEvent() Event {
	return Event{
		ID: "pbx-1:CA42:3", Source: "demo", Type: TypeCall, User: "alice@contoso.example",
		OccurredAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), CallID: "CA42", State: CallActive,
	}
}

func meetingWindow(e *Event) {
	start := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	end := start.Add(time.Hour)
	e.Type, e.CallID, e.State, e.Start, e.End, e.ShowAs = TypeMeeting, "", "", &start, &end, "busy"
}

// TestValidateEdges: at the limits of every validate tag, Validate
// accepts and refuses as the validator does, with the same message.
func TestValidateEdges(t *testing.T) {
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	calls := func(n int, each string) []string {
		l := make([]string, n)
		for i := range l {
			l[i] = each
		}
		return l
	}
	tests := []struct {
		name   string
		change func(e *Event)
		want   string // the error, "" when valid
	}{
		{"call", func(*Event) {}, ""},
		{"id at the limit", func(e *Event) { e.ID = long("x", 256) }, ""},
		{"id too long", func(e *Event) { e.ID = long("x", 257) }, "invalid event: id: longer than 256 characters"},
		{"id empty", func(e *Event) { e.ID = "" }, "invalid event: id: required"},
		{"id with space and tilde", func(e *Event) { e.ID = " a~" }, ""},
		{"id with DEL", func(e *Event) { e.ID = "a\x7f" }, "invalid event: id: must be printable ASCII"},
		{"id with a tab", func(e *Event) { e.ID = "a\tb" }, "invalid event: id: must be printable ASCII"},
		{"id not ASCII", func(e *Event) { e.ID = "é" }, "invalid event: id: must be printable ASCII"},
		{"id not UTF-8", func(e *Event) { e.ID = "a\xff" }, "invalid event: id: must be printable ASCII"},
		{"source at the limit", func(e *Event) { e.Source = long("a", 64) }, ""},
		{"source too long", func(e *Event) { e.Source = long("a", 65) }, "invalid event: source: longer than 64 characters"},
		{"source with dash and underscore", func(e *Event) { e.Source = "a-_9" }, ""},
		{"source starts with a dash", func(e *Event) { e.Source = "-a" }, "invalid event: source: must be lower-case letters, digits, '-' or '_'"},
		{"source starts with an underscore", func(e *Event) { e.Source = "_a" }, "invalid event: source: must be lower-case letters, digits, '-' or '_'"},
		{"source upper case", func(e *Event) { e.Source = "Demo" }, "invalid event: source: must be lower-case letters, digits, '-' or '_'"},
		{"source not ASCII", func(e *Event) { e.Source = "dé" }, "invalid event: source: must be lower-case letters, digits, '-' or '_'"},
		{"source empty", func(e *Event) { e.Source = "" }, "invalid event: source: required"},
		{"type upper case", func(e *Event) { e.Type = "Call" }, "invalid event: type: must be one of call meeting presence"},
		{"type empty", func(e *Event) { e.Type = "" }, "invalid event: type: required"},
		{"user at the limit in runes", func(e *Event) { e.User = long("é", 256) }, ""},
		{"user too long in runes", func(e *Event) { e.User = long("é", 257) }, "invalid event: user: longer than 256 characters"},
		{"user with a control character", func(e *Event) { e.User = "a\x01b" }, ""},
		{"user not UTF-8", func(e *Event) { e.User = "a\xffb" }, "invalid event: user: is not valid UTF-8"},
		{"user empty", func(e *Event) { e.User = "" }, "invalid event: user: required"},
		{"no time", func(e *Event) { e.OccurredAt = time.Time{} }, "invalid event: occurredAt: required"},
		{"year 1 in a zone", func(e *Event) { e.OccurredAt = time.Time{}.In(time.FixedZone("X", 3600)) }, ""},
		{"time with an offset", func(e *Event) { e.OccurredAt = e.OccurredAt.In(time.FixedZone("", -7*3600)) }, ""},
		{"sequence 0", func(e *Event) { e.Sequence = 0 }, ""},
		{"sequence negative", func(e *Event) { e.Sequence = -1 }, "invalid event: sequence: must be at least 0"},
		{"call without call id", func(e *Event) { e.CallID = "" }, "invalid event: callId: required"},
		{"call id at the limit", func(e *Event) { e.CallID = long("ß", 256) }, ""},
		{"call id too long", func(e *Event) { e.CallID = long("c", 257) }, "invalid event: callId: longer than 256 characters"},
		{"call id on a meeting", func(e *Event) { meetingWindow(e); e.CallID = "c1" }, "invalid event: callId: only allowed for type call"},
		{"every call ended", func(e *Event) { e.CallID, e.State, e.ExceptCalls = AllCalls, CallEnded, calls(256, long("c", 256)) }, ""},
		{"too many except calls", func(e *Event) { e.CallID, e.State, e.ExceptCalls = AllCalls, CallEnded, calls(257, "c") }, "invalid event: exceptCalls: longer than 256 characters"},
		{"except call empty", func(e *Event) { e.CallID, e.State, e.ExceptCalls = AllCalls, CallEnded, []string{"a", ""} }, "invalid event: exceptCalls[1]: required"},
		{"except call too long", func(e *Event) { e.CallID, e.State, e.ExceptCalls = AllCalls, CallEnded, []string{long("c", 257)} }, "invalid event: exceptCalls[0]: longer than 256 characters"},
		{"except calls empty list", func(e *Event) { e.CallID, e.State, e.ExceptCalls = AllCalls, CallEnded, []string{} }, ""},
		{"meeting window", meetingWindow, ""},
		{"showAs free", func(e *Event) { meetingWindow(e); e.ShowAs = "free" }, ""},
		{"showAs tentative", func(e *Event) { meetingWindow(e); e.ShowAs = "tentative" }, ""},
		{"showAs oof", func(e *Event) { meetingWindow(e); e.ShowAs = "oof" }, ""},
		{"showAs workingElsewhere", func(e *Event) { meetingWindow(e); e.ShowAs = "workingElsewhere" }, ""},
		{"showAs unknown", func(e *Event) { meetingWindow(e); e.ShowAs = "unknown" }, ""},
		{"showAs in another case", func(e *Event) { meetingWindow(e); e.ShowAs = "Busy" }, "invalid event: showAs: must be one of free tentative busy oof workingElsewhere unknown"},
		{"showAs on a call", func(e *Event) { e.ShowAs = "busy" }, "invalid event: showAs: only allowed for type meeting"},
		{"window backwards", func(e *Event) { meetingWindow(e); e.Start, e.End = e.End, e.Start }, "invalid event: end: must be after start"},
		{"calendar event at the limit", func(e *Event) {
			e.Type, e.CallID, e.State, e.CalendarEvent = TypeMeeting, "", "", long("A", 256)
		}, ""},
		{"calendar event too long", func(e *Event) {
			e.Type, e.CallID, e.State, e.CalendarEvent = TypeMeeting, "", "", long("A", 257)
		}, "invalid event: calendarEvent: longer than 256 characters"},
		{"calendar event not ASCII", func(e *Event) { e.Type, e.CallID, e.State, e.CalendarEvent = TypeMeeting, "", "", "Aé" }, "invalid event: calendarEvent: must be printable ASCII"},
		{"presence set", func(e *Event) {
			e.Type, e.CallID, e.State, e.Availability, e.Activity = TypePresence, "", PresenceSet, "Busy", "InACall"
		}, ""},
		{"everything wrong", func(e *Event) { *e = Event{Type: "fax", Sequence: -2, ShowAs: "x"} }, "invalid event: id: required; source: required; type: must be one of call meeting presence; user: required; occurredAt: required; sequence: must be at least 0; showAs: must be one of free tentative busy oof workingElsewhere unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEvent()
			tt.change(&e)
			got := errorText(e.Validate("")) // the tags checked by hand when they hold
			slow := errorText(e.validate("", true))
			if got != tt.want {
				t.Errorf("Validate\n got: %s\nwant: %s", got, tt.want)
			}
			if got != slow {
				t.Errorf("Validate and the validator differ\n fast: %s\nslow: %s", got, slow)
			}
		})
	}
}

// TestValidateSkipsValidator: the common events keep every tag, and
// validating one allocates nothing (the validator would).
func TestValidateSkipsValidator(t *testing.T) {
	presence := validEvent()
	presence.Type, presence.CallID, presence.State, presence.Availability, presence.Activity = TypePresence, "", PresenceSet, "Away", "Away"
	meeting := validEvent()
	meetingWindow(&meeting)
	for _, e := range []Event{validEvent(), presence, meeting} {
		if !e.tagsHold() {
			t.Errorf("%s event: tagsHold false", e.Type)
		}
		if allocs := testing.AllocsPerRun(100, func() { _ = e.Validate("") }); allocs != 0 {
			t.Errorf("%s event: Validate allocates %.0f times", e.Type, allocs)
		}
	}
}

// FuzzValidateAgrees: Validate, which skips the validator when the tags
// hold, answers as the validator does, to the letter.
func FuzzValidateAgrees(f *testing.F) {
	f.Add("e1", "demo", "call", "a@b.c", int64(1795000000), int64(0), "c1", "active", 0, "", "", "")
	f.Add("e\x7f", "-x", "meeting", "é", int64(0), int64(-1), "*", "ended", 3, "", "busy", "Aé")
	f.Add(strings.Repeat("x", 256), strings.Repeat("a", 64), "presence", strings.Repeat("é", 257), int64(-62135596800), int64(5), "", "set", 257, "c", "", "AAMk")
	f.Fuzz(func(t *testing.T, id, source, typ, user string, unix, seq int64, callID, state string, exceptN int, except, showAs, calendarEvent string) {
		e := Event{ID: id, Source: source, Type: typ, User: user, OccurredAt: time.Unix(unix, 0).UTC(), Sequence: seq,
			CallID: callID, State: state, ShowAs: showAs, CalendarEvent: calendarEvent}
		if exceptN = exceptN % 300; exceptN > 0 {
			e.ExceptCalls = make([]string, exceptN)
			for i := range e.ExceptCalls {
				e.ExceptCalls[i] = except
			}
		}
		if got, slow := errorText(e.Validate("")), errorText(e.validate("", true)); got != slow {
			t.Fatalf("Validate and the validator differ for %#v\n fast: %s\nslow: %s", e, got, slow)
		}
		if e.tagsHold() && eventValidator().Struct(&e) != nil {
			t.Fatalf("tagsHold, but the validator refuses %#v: %v", e, eventValidator().Struct(&e))
		}
	})
}

// FuzzValidSourceName: the hand-written check takes exactly the names
// the pattern it replaced took, up to MaxSourceLength bytes.
func FuzzValidSourceName(f *testing.F) {
	pattern := regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	for _, s := range []string{"demo", "a-_9", "-a", "_a", "Demo", "dé", "", strings.Repeat("a", 64), strings.Repeat("a", 65), "a\n", "a.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := ValidSourceName(name), len(name) <= MaxSourceLength && pattern.MatchString(name); got != want {
			t.Fatalf("ValidSourceName(%q) = %v, the pattern says %v", name, got, want)
		}
	})
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func BenchmarkValidate(b *testing.B) {
	e := validEvent()
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Validate(""); err != nil {
			b.Fatal(err)
		}
	}
}
