package state

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
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
			if !adapters.SamePair(got, tt.want) || !next.Equal(tt.next) {
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
		if got, _ := s.Desired(r, at(1)); !adapters.SamePair(got, dnd) {
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
	if got, _ := s.Desired(rules, at(8)); !adapters.SamePair(got, inACall) {
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

// TestPrune: a claim is forgotten only once it can no longer count and
// the window for late events about it has passed; an open call counts for
// MaxCallDuration after its last update, however long ago it started.
func TestPrune(t *testing.T) {
	meeting := adapters.Event{ID: "m", Source: "cal", Type: "meeting", OccurredAt: at(0), Start: tp(at(0)), End: tp(at(30)), ShowAs: "busy"}
	presence := adapters.Event{ID: "p", Source: "bus", Type: "presence", State: "set", Availability: "Away", Activity: "Away", OccurredAt: at(0), ExpiresAt: tp(at(10))}
	unlimited := rules
	unlimited.MaxCallDuration = 0
	tests := []struct {
		name   string
		events []adapters.Event
		rules  Rules
		now    time.Time
		kept   int
	}{
		{"ended call within the window", []adapters.Event{call("pbx", "c1", "active", 0, false), call("pbx", "c1", "ended", 1, false)}, rules, at(61), 1},
		{"ended call after the window", []adapters.Event{call("pbx", "c1", "active", 0, false), call("pbx", "c1", "ended", 1, false)}, rules, at(62), 0},
		{"open call after two windows", []adapters.Event{call("pbx", "c1", "active", 0, false)}, rules, at(180), 1},
		{"open call at its maximum duration", []adapters.Event{call("pbx", "c1", "active", 0, false)}, rules, at(240), 1},
		{"open call within the window after its maximum", []adapters.Event{call("pbx", "c1", "active", 0, false)}, rules, at(300), 1},
		{"open call after the window after its maximum", []adapters.Event{call("pbx", "c1", "active", 0, false)}, rules, at(301), 0},
		{"held call after a day, no maximum", []adapters.Event{call("pbx", "c1", "held", 0, false)}, unlimited, at(24 * 60), 1},
		{"ringing call after a day, no maximum", []adapters.Event{call("pbx", "c1", "ringing", 0, false)}, unlimited, at(24 * 60), 1},
		{"ended call after the window, no maximum", []adapters.Event{call("pbx", "c1", "ended", 0, false)}, unlimited, at(61), 0},
		{"past meeting within the window", []adapters.Event{meeting}, rules, at(90), 1},
		{"past meeting after the window", []adapters.Event{meeting}, rules, at(91), 0},
		{"expired presence within the window", []adapters.Event{presence}, rules, at(70), 1},
		{"expired presence after the window", []adapters.Event{presence}, rules, at(71), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s UserState
			for _, ev := range tt.events {
				s.Apply(ev, ev.OccurredAt)
			}
			before := s.Claims()
			forgot := s.Prune(tt.rules, tt.now, time.Hour)
			if s.Claims() != tt.kept || forgot != before-tt.kept {
				t.Fatalf("%d claims kept (%d forgotten), want %d", s.Claims(), forgot, tt.kept)
			}
		})
	}
}

// TestEvict: over the cap, claims that no longer count go first (oldest
// first), then ringing calls, then the least recently updated others;
// the protected claim stays.
func TestEvict(t *testing.T) {
	ended := call("pbx", "ended", "ended", 0, false)
	timedOut := call("pbx", "timedout", "active", 0, false)
	meeting := adapters.Event{ID: "m", Source: "cal", Type: "meeting", OccurredAt: at(0), Start: tp(at(300)), End: tp(at(330)), ShowAs: "busy"}
	cleared := adapters.Event{ID: "p", Source: "bus", Type: "presence", State: "clear", OccurredAt: at(0)}
	// Received at the minute given, the clock at minute 250.
	received := []struct {
		ev  adapters.Event
		min int
	}{
		{timedOut, 0}, {call("pbx", "old", "active", 100, false), 100}, {meeting, 110},
		{call("pbx", "ring1", "ringing", 200, false), 200}, {call("pbx", "ring2", "ringing", 210, false), 210},
		{ended, 220}, {cleared, 230}, {call("pbx", "new", "active", 240, false), 240},
	}
	tests := []struct {
		max     int
		protect string
		left    []string
	}{
		{8, "", []string{"call/pbx/timedout", "call/pbx/old", "meeting/cal/m", "call/pbx/ring1", "call/pbx/ring2", "call/pbx/ended", "presence/bus", "call/pbx/new"}},
		{5, "", []string{"call/pbx/old", "meeting/cal/m", "call/pbx/ring1", "call/pbx/ring2", "call/pbx/new"}},
		{4, "", []string{"call/pbx/old", "meeting/cal/m", "call/pbx/ring2", "call/pbx/new"}},
		{2, "", []string{"meeting/cal/m", "call/pbx/new"}},
		{1, "", []string{"call/pbx/new"}},
		{1, "call/pbx/ring1", []string{"call/pbx/ring1"}},
		{0, "call/pbx/timedout", []string{"call/pbx/timedout"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d keeping %q", tt.max, tt.protect), func(t *testing.T) {
			var s UserState
			for _, r := range received {
				s.Apply(r.ev, at(r.min))
			}
			s.Evict(rules, at(250), tt.max, tt.protect)
			var left []string
			for k := range s.Calls {
				left = append(left, "call/"+k)
			}
			for k := range s.Meetings {
				left = append(left, "meeting/"+k)
			}
			for k := range s.Presence {
				left = append(left, "presence/"+k)
			}
			slices.Sort(left)
			want := slices.Sorted(slices.Values(tt.left))
			if !slices.Equal(left, want) {
				t.Fatalf("left %v, want %v", left, want)
			}
		})
	}
}

// TestCrowdStaysBounded: a hunt group rings one agent 10,000 times; the
// state keeps at most MaxClaims claims and its encoding never grows past
// the size reached early on, so each event costs the same; the agent's
// real call still sets and clears the presence.
func TestCrowdStaysBounded(t *testing.T) {
	r := rules
	r.MaxClaims = DefaultMaxClaims
	var s UserState
	largest := 0
	for i := range 10000 {
		now := t0.Add(time.Duration(i) * time.Second)
		ev := call("hunt", fmt.Sprintf("ring-%05d", i), "ringing", 0, false)
		ev.OccurredAt = now
		applyEvent(&s, ev, r, now)
		if s.Claims() > r.MaxClaims {
			t.Fatalf("%d claims after %d rings, cap %d", s.Claims(), i+1, r.MaxClaims)
		}
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if i == 2*r.MaxClaims {
			largest = len(data)
		}
		if largest > 0 && len(data) > largest+64 { // digits of times may grow a little
			t.Fatalf("state grew to %d bytes after %d rings, from %d", len(data), i+1, largest)
		}
	}
	now := t0.Add(3 * time.Hour)
	active := call("pbx", "real", "active", 0, false)
	active.OccurredAt = now
	applyEvent(&s, active, r, now)
	if got, _ := s.Desired(r, now); !adapters.SamePair(got, inACall) {
		t.Fatalf("desired %v during the real call", got)
	}
	ended := call("pbx", "real", "ended", 0, false)
	ended.OccurredAt = now.Add(time.Second)
	applyEvent(&s, ended, r, now.Add(time.Second))
	if got, _ := s.Desired(r, now.Add(time.Second)); got != nil {
		t.Fatalf("desired %v after the real call ended", got)
	}
}

// TestMeetingKey: every version of one calendar event, its end included,
// shares a key, for Graph's ids and CalDAV's alike; other ids stand alone.
func TestMeetingKey(t *testing.T) {
	start := tp(at(0))
	for _, c := range []struct {
		id    string
		start *time.Time
		state string
		want  string
	}{
		{"graph-event:AAMk=:0a1b2c3d", start, "", "AAMk="},
		{"graph-event:AAMk=:ended", nil, adapters.MeetingEnded, "AAMk="},
		{"caldav-event:5f2b9c:0123456789abcdef", start, "", "5f2b9c"},
		{"caldav-event:5f2b9c:ended-0123456789abcdef", nil, adapters.MeetingEnded, "5f2b9c"},
		{"caldav-event:5f2b9c", start, "", "caldav-event:5f2b9c"},
		{"caldav-event::v1", start, "", "caldav-event::v1"},
		{"meeting-7", start, "", "meeting-7"},
		{"m-8", nil, adapters.MeetingEnded, "state"},
	} {
		ev := adapters.Event{ID: c.id, Type: adapters.TypeMeeting, Start: c.start, State: c.state}
		if got := meetingKey(ev); got != c.want {
			t.Errorf("meetingKey(%q) = %q, want %q", c.id, got, c.want)
		}
	}
}

// TestCalDAVMeetingEnds: a CalDAV window's end, which carries no times,
// ends that window's claim.
func TestCalDAVMeetingEnds(t *testing.T) {
	var s UserState
	window := adapters.Event{ID: "caldav-event:5f2b9c:0123456789abcdef", Source: "cal", Type: adapters.TypeMeeting,
		User: "alice@contoso.example", OccurredAt: at(0), Start: tp(at(-5)), End: tp(at(55)), ShowAs: "busy"}
	s.Apply(window, at(0))
	if want, _ := s.Desired(rules, at(1)); want == nil || *want != *inConf {
		t.Fatalf("during the window: %v, want %v", want, inConf)
	}
	ended := adapters.Event{ID: "caldav-event:5f2b9c:ended-0123456789abcdef", Source: "cal", Type: adapters.TypeMeeting,
		User: "alice@contoso.example", OccurredAt: at(2), State: adapters.MeetingEnded}
	s.Apply(ended, at(2))
	if want, _ := s.Desired(rules, at(3)); want != nil {
		t.Fatalf("after the end: %v, want none", want)
	}
}

// TestMeetingResync: a resync ends the meetings its source claimed
// before its time, and no others; what the source says afterwards about
// one of them still counts, and so does what it said since, whichever is
// applied first.
func TestMeetingResync(t *testing.T) {
	window := func(id, source string, min int) adapters.Event {
		return adapters.Event{ID: "caldav-event:" + id + ":v", Source: source, Type: adapters.TypeMeeting,
			OccurredAt: at(min), Start: tp(at(-5)), End: tp(at(55)), ShowAs: "busy"}
	}
	resync := adapters.Event{ID: "caldav-resync:a:1", Source: "cal", Type: adapters.TypeMeeting, OccurredAt: at(10), State: adapters.MeetingResync}
	open := func(s *UserState) []string {
		var keys []string
		for k, m := range s.Meetings {
			if m.State != adapters.MeetingEnded && m.Start != nil {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		return keys
	}
	for _, tc := range []struct {
		name   string
		events []adapters.Event
		want   []string
	}{
		{"ends what the source claimed before", []adapters.Event{window("gone", "cal", 0), window("kept", "cal", 10), window("other", "graph", 0), resync},
			[]string{"cal/kept", "graph/other"}},
		{"resync applied first", []adapters.Event{window("gone", "cal", 0), resync, window("kept", "cal", 10)},
			[]string{"cal/kept"}},
		{"said again later", []adapters.Event{window("back", "cal", 0), resync, window("back", "cal", 11)},
			[]string{"cal/back"}},
		{"late word from before", []adapters.Event{window("gone", "cal", 5), resync, window("gone", "cal", 5)},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s UserState
			for _, ev := range tc.events {
				s.Apply(ev, at(12))
			}
			if got := open(&s); !slices.Equal(got, tc.want) {
				t.Errorf("open meetings %q, want %q", got, tc.want)
			}
			if tc.want == nil {
				if want, _ := s.Desired(rules, at(12)); want != nil {
					t.Errorf("desired %v after the resync, want none", want)
				}
			}
		})
	}
	var s UserState
	if s.Apply(resync, at(12)) {
		t.Error("a resync with nothing to end changed the state")
	}
}

// TestClearedToldHasNoExpiry: what Graph was told after a clear encodes
// no expiry (not year 1).
func TestClearedToldHasNoExpiry(t *testing.T) {
	data, err := json.Marshal(Told{At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "expires") {
		t.Fatalf("cleared session encodes %s, want no expires", data)
	}
}

func TestSessionSources(t *testing.T) {
	meeting := adapters.Event{ID: "m", Source: "cal", Type: "meeting", OccurredAt: at(0), Start: tp(at(0)), End: tp(at(90)), ShowAs: "busy"}
	tests := []struct {
		name   string
		events []adapters.Event
		want   []string
	}{
		{"no claims, no session", nil, nil},
		{"one call", []adapters.Event{call("pbx", "c1", adapters.CallActive, 1, false)}, []string{"pbx"}},
		{"two sources in a call", []adapters.Event{call("pbx", "c1", adapters.CallActive, 1, false), call("sip", "c2", adapters.CallActive, 1, false)}, []string{"pbx", "sip"}},
		{"the conference outranks the call", []adapters.Event{call("pbx", "c1", adapters.CallActive, 1, false), call("sip", "c2", adapters.CallActive, 1, true)}, []string{"sip"}},
		{"a meeting under a call", []adapters.Event{meeting, call("pbx", "c1", adapters.CallActive, 1, false)}, []string{"pbx"}},
		{"the meeting alone", []adapters.Event{meeting}, []string{"cal"}},
		{"an ended call makes nothing", []adapters.Event{call("pbx", "c1", adapters.CallActive, 1, false), call("pbx", "c1", adapters.CallEnded, 2, false)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s UserState
			for _, ev := range tt.events {
				s.Apply(ev, ev.OccurredAt)
			}
			if got := s.SessionSources(rules, at(5)); !slices.Equal(got, tt.want) {
				t.Fatalf("SessionSources = %v, want %v", got, tt.want)
			}
		})
	}
}
