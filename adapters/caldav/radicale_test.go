package caldav

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/caldav/caldavtest"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// The account the test Radicale knows.
const (
	radicaleUser     = caldavtest.User
	radicalePassword = caldavtest.Password
)

// radicale is a real Radicale server started for one test (caldavtest).
type radicale struct {
	*caldavtest.Radicale
	base string // http://127.0.0.1:port
}

// startRadicale starts Radicale, or skips the test when it is absent.
func startRadicale(t *testing.T) *radicale {
	t.Helper()
	r := caldavtest.Start(t)
	return &radicale{Radicale: r, base: r.Base}
}

func (r *radicale) do(t *testing.T, method, path, body string, header map[string]string, want ...int) {
	t.Helper()
	r.Do(t, method, path, body, header, want...)
}

func (r *radicale) mkcalendar(t *testing.T, path string) { t.Helper(); r.MkCalendar(t, path) }

func (r *radicale) put(t *testing.T, path, ics string) { t.Helper(); r.Put(t, path, ics) }

// collector takes published events as the bridge does: an id it has
// stored before is dropped (JetStream's duplicate window), and every other
// event is applied, in order, to its person's state (bridge/state), which
// tells the windows that stand.
type collector struct {
	mu      sync.Mutex
	events  []adapters.Event // stored
	seen    map[string]bool
	states  map[string]*state.UserState
	dropped int // duplicates
	fail    atomic.Bool
}

func (c *collector) publish(_ context.Context, events []adapters.Event) error {
	if c.fail.Load() {
		return fmt.Errorf("event log unavailable")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen, c.states = map[string]bool{}, map[string]*state.UserState{}
	}
	for _, ev := range events {
		if err := ev.Validate(""); err != nil {
			return fmt.Errorf("published an invalid event %+v: %w", ev, err)
		}
		if c.seen[ev.Key()] {
			c.dropped++
			continue
		}
		c.seen[ev.Key()] = true
		c.events = append(c.events, ev)
		if c.states[ev.User] == nil {
			c.states[ev.User] = &state.UserState{}
		}
		c.states[ev.User].Apply(ev, ev.OccurredAt)
	}
	return nil
}

// windows returns the windows the stored events leave open, as sorted
// "start-end showAs" strings.
func (c *collector) windows(t *testing.T) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, st := range c.states {
		for _, m := range st.Meetings {
			if m.State != adapters.MeetingEnded && m.Start != nil {
				out = append(out, m.Start.UTC().Format("Jan 2 15:04")+"-"+m.End.UTC().Format("15:04")+" "+m.ShowAs)
			}
		}
	}
	slices.Sort(out)
	return out
}

// busy reports whether the state makes user busy at now.
func (c *collector) busy(user string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.states[user]
	if st == nil {
		return false
	}
	inMeeting := &adapters.Pair{Availability: "Busy", Activity: "InAConferenceCall"}
	want, _ := st.Desired(state.Rules{Meeting: inMeeting, MeetingShowAs: []string{"busy"}, Priority: []string{"meeting"}}, now)
	return want != nil
}

func (c *collector) waitWindows(t *testing.T, what string, want ...string) {
	t.Helper()
	slices.Sort(want)
	testpoll.UntilOK(t, what, func() error {
		if got := c.windows(t); !slices.Equal(got, want) {
			return fmt.Errorf("windows %q, want %q", got, want)
		}
		return nil
	})
}

func (c *collector) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ev := range c.events {
		out = append(out, ev.ID)
	}
	slices.Sort(out)
	return out
}

// testNow is the fake "now" of the Radicale tests: 08:00 UTC on Dec 3.
var testNow = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

func vevent(uid, extra string) string {
	return "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//presence-bridge test//EN\nBEGIN:VEVENT\nUID:" + uid +
		"\nDTSTAMP:20261201T000000Z\n" + strings.TrimSpace(extra) + "\nEND:VEVENT\nEND:VCALENDAR"
}

// standup is a daily series from Dec 1 with the Dec 4 instance excluded
// and the Dec 5 instance moved to the afternoon.
const standup = `BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//presence-bridge test//EN
BEGIN:VEVENT
UID:standup
DTSTAMP:20261201T000000Z
DTSTART:20261201T090000Z
DTEND:20261201T091500Z
RRULE:FREQ=DAILY
EXDATE:20261204T090000Z
SUMMARY:Standup
END:VEVENT
BEGIN:VEVENT
UID:standup
DTSTAMP:20261201T000000Z
RECURRENCE-ID:20261205T090000Z
DTSTART:20261205T150000Z
DTEND:20261205T153000Z
SUMMARY:Standup, later that day
END:VEVENT
END:VCALENDAR`

// TestRadicaleFollowsCalendar runs the source against a real Radicale,
// discovering Alice's calendars from her principal, and changes her
// calendars through CalDAV: the published windows follow a new event, a
// recurring series with an EXDATE and an override, a reschedule, a move
// to another calendar, a cancellation and deletions.
func TestRadicaleFollowsCalendar(t *testing.T) {
	r := startRadicale(t)
	r.mkcalendar(t, "/alice/work/")
	r.mkcalendar(t, "/alice/home/")
	var now atomic.Pointer[time.Time]
	now.Store(&testNow)
	src, err := New(Config{
		Name:         "calendar",
		PollInterval: time.Second,
		WindowAfter:  72 * time.Hour,
		Calendars: []Calendar{{
			User: "alice@example.com", Principal: r.base + "/alice/",
			Username: radicaleUser, Password: radicalePassword,
		}},
		Now: func() time.Time { return *now.Load() },
	})
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, got.publish) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	r.put(t, "/alice/work/review.ics", vevent("review", "DTSTART:20261203T100000Z\nDTEND:20261203T110000Z"))
	got.waitWindows(t, "a new event", "Dec 3 10:00-11:00 busy")

	r.put(t, "/alice/work/standup.ics", standup)
	got.waitWindows(t, "a recurring series", "Dec 3 10:00-11:00 busy",
		"Dec 3 09:00-09:15 busy", "Dec 5 15:00-15:30 busy")

	r.put(t, "/alice/work/review.ics", vevent("review", "DTSTART:20261203T130000Z\nDTEND:20261203T140000Z"))
	got.waitWindows(t, "a rescheduled event", "Dec 3 13:00-14:00 busy",
		"Dec 3 09:00-09:15 busy", "Dec 5 15:00-15:30 busy")

	r.do(t, "MOVE", "/alice/work/review.ics", "", map[string]string{"Destination": r.base + "/alice/home/review.ics"}, http.StatusCreated, http.StatusNoContent)
	got.waitWindows(t, "an event moved to another calendar", "Dec 3 13:00-14:00 busy",
		"Dec 3 09:00-09:15 busy", "Dec 5 15:00-15:30 busy")
	r.put(t, "/alice/home/review.ics", vevent("review", "DTSTART:20261203T130000Z\nDTEND:20261203T140000Z\nSTATUS:CANCELLED"))
	got.waitWindows(t, "a cancelled event", "Dec 3 09:00-09:15 busy", "Dec 5 15:00-15:30 busy")

	r.put(t, "/alice/work/declined.ics", vevent("declined", "DTSTART:20261203T160000Z\nDTEND:20261203T170000Z\nATTENDEE;PARTSTAT=DECLINED:mailto:alice@example.com"))
	r.put(t, "/alice/work/tentative.ics", vevent("tentative", "DTSTART:20261203T160000Z\nDTEND:20261203T170000Z\nATTENDEE;PARTSTAT=TENTATIVE:mailto:alice@example.com"))
	got.waitWindows(t, "a declined and a tentative invitation", "Dec 3 09:00-09:15 busy", "Dec 5 15:00-15:30 busy", "Dec 3 16:00-17:00 tentative")

	r.do(t, "DELETE", "/alice/work/standup.ics", "", nil, http.StatusOK, http.StatusNoContent)
	r.do(t, "DELETE", "/alice/work/tentative.ics", "", nil, http.StatusOK, http.StatusNoContent)
	got.waitWindows(t, "deleted events")
}

// TestRadicaleUnchangedCalendarCostsOneRequest counts the HTTP requests
// of each poll of a calendar collection through the transport: one when
// nothing changed, more when something did.
func TestRadicaleUnchangedCalendarCostsOneRequest(t *testing.T) {
	r := startRadicale(t)
	r.mkcalendar(t, "/alice/work/")
	r.put(t, "/alice/work/review.ics", vevent("review", "DTSTART:20261203T100000Z\nDTEND:20261203T110000Z"))
	now := testNow
	var requests atomic.Int64
	var listings atomic.Int64 // PROPFINDs of every member's etag
	count := roundTripper(func(req *http.Request) (*http.Response, error) {
		requests.Add(1)
		if req.Method == "PROPFIND" && req.Header.Get("Depth") == "1" {
			listings.Add(1)
		}
		return http.DefaultTransport.RoundTrip(req)
	})
	cfg := Config{
		Name: "calendar",
		Calendars: []Calendar{{
			User: "alice@example.com", URL: r.base + "/alice/work/",
			Username: radicaleUser, Password: radicalePassword,
		}},
		Now:       func() time.Time { return now },
		Transport: count,
	}
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	ctx := context.Background()
	poll := func(what string) int64 {
		t.Helper()
		requests.Store(0)
		if err := src.Poll(ctx, got.publish); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return requests.Load()
	}
	if n := poll("first poll"); n < 2 {
		t.Errorf("the first poll made %d requests; it has to list and fetch", n)
	}
	got.waitWindows(t, "first poll", "Dec 3 10:00-11:00 busy")
	if n := poll("unchanged"); n != 1 {
		t.Errorf("a poll of an unchanged calendar made %d requests, want 1", n)
	}
	r.put(t, "/alice/work/review.ics", vevent("review", "DTSTART:20261203T120000Z\nDTEND:20261203T130000Z"))
	listings.Store(0)
	if n := poll("changed"); n < 2 {
		t.Errorf("a poll of a changed calendar made %d requests; it has to read the change", n)
	}
	if n := listings.Load(); n != 0 {
		t.Errorf("a changed calendar was listed whole %d times instead of asked with sync-collection", n)
	}
	got.waitWindows(t, "after the change", "Dec 3 12:00-13:00 busy")
	if n := poll("unchanged again"); n != 1 {
		t.Errorf("a poll of an unchanged calendar made %d requests, want 1", n)
	}

	// A restarted source (or the next bridge) publishes the window again,
	// under a new id, and a resync: applied, they change nothing.
	now = now.Add(time.Minute)
	other, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stored := len(got.ids())
	if err := other.Poll(ctx, got.publish); err != nil {
		t.Fatal(err)
	}
	if n := len(got.ids()) - stored; n != 2 || got.dropped != 0 {
		t.Errorf("the restarted source stored %d events (%d dropped as duplicates), want its window and its resync", n, got.dropped)
	}
	got.waitWindows(t, "after a restart", "Dec 3 12:00-13:00 busy")

	// An event log that can not store the events makes the next poll
	// publish them again.
	r.put(t, "/alice/work/review.ics", vevent("review", "DTSTART:20261203T140000Z\nDTEND:20261203T150000Z"))
	got.fail.Store(true)
	if err := src.Poll(ctx, got.publish); err == nil {
		t.Error("a failed publish was not reported")
	}
	got.fail.Store(false)
	if err := src.Poll(ctx, got.publish); err != nil {
		t.Fatal(err)
	}
	got.waitWindows(t, "after a failed publish", "Dec 3 14:00-15:00 busy")
}

// TestRadicaleSecretsNeverLeak polls with a wrong password and with a
// bearer token that Radicale refuses, and checks that neither appears in
// the errors or the logs.
func TestRadicaleSecretsNeverLeak(t *testing.T) {
	r := startRadicale(t)
	const wrong, token = "pw-wrong-7c1d-secret", "tok-91be-bearer-secret"
	var logs bytes.Buffer
	logger := slogTo(&logs)
	for _, cal := range []Calendar{
		{User: "alice@example.com", URL: r.base + "/alice/work/", Username: radicaleUser, Password: wrong},
		{User: "alice@example.com", Principal: r.base + "/", Token: token},
	} {
		src, err := New(Config{Name: "calendar", Calendars: []Calendar{cal}, Now: func() time.Time { return testNow }, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err = src.Poll(ctx, func(context.Context, []adapters.Event) error { return nil })
		cancel()
		if err == nil {
			t.Fatalf("a poll with refused credentials succeeded")
		}
		logger.Warn("poll failed", "err", err)
		if !strings.Contains(err.Error(), "401") {
			t.Errorf("the error does not say the server refused: %v", err)
		}
	}
	_, err := New(Config{Name: "calendar", Calendars: []Calendar{{User: "a", URL: "https://alice:" + wrong + "@example.com/cal/"}}})
	if err == nil {
		t.Fatal("a URL with credentials was accepted")
	}
	all := logs.String() + err.Error()
	for _, secret := range []string{wrong, token} {
		if strings.Contains(all, secret) {
			t.Errorf("a secret leaked: %s", all)
		}
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestRadicaleWithoutSyncCollection polls as against a server that has
// no sync-token, only a ctag: the probe asks Radicale for getctag alone.
// An unchanged calendar still costs one request; a change is found by
// listing the members' etags, and a deleted member ends its window.
func TestRadicaleWithoutSyncCollection(t *testing.T) {
	r := startRadicale(t)
	r.mkcalendar(t, "/alice/work/")
	r.put(t, "/alice/work/a.ics", vevent("a", "DTSTART:20261203T100000Z\nDTEND:20261203T110000Z"))
	r.put(t, "/alice/work/b.ics", vevent("b", "DTSTART:20261203T120000Z\nDTEND:20261203T130000Z"))
	var requests, syncReports atomic.Int64
	ctagOnly := roundTripper(func(req *http.Request) (*http.Response, error) {
		requests.Add(1)
		body, _ := io.ReadAll(req.Body)
		if bytes.Contains(body, []byte("sync-collection")) {
			syncReports.Add(1)
		}
		body = bytes.ReplaceAll(body, []byte("<d:sync-token/>"), nil)
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		return http.DefaultTransport.RoundTrip(req)
	})
	src, err := New(Config{
		Name: "calendar",
		Calendars: []Calendar{{
			User: "alice@example.com", URL: r.base + "/alice/work/",
			Username: radicaleUser, Password: radicalePassword,
		}},
		Now:       func() time.Time { return testNow },
		Transport: ctagOnly,
	})
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	poll := func() int64 {
		t.Helper()
		requests.Store(0)
		if err := src.Poll(context.Background(), got.publish); err != nil {
			t.Fatal(err)
		}
		return requests.Load()
	}
	poll()
	got.waitWindows(t, "first poll", "Dec 3 10:00-11:00 busy", "Dec 3 12:00-13:00 busy")
	if n := poll(); n != 1 {
		t.Errorf("a poll of an unchanged calendar made %d requests, want 1", n)
	}
	r.do(t, "DELETE", "/alice/work/b.ics", "", nil, http.StatusOK, http.StatusNoContent)
	if n := poll(); n < 2 {
		t.Errorf("a poll of a changed calendar made %d requests", n)
	}
	got.waitWindows(t, "after a deletion", "Dec 3 10:00-11:00 busy")
	if n := syncReports.Load(); n != 0 {
		t.Errorf("%d sync-collection REPORTs without a sync-token", n)
	}
}

// TestRadicaleRepeatedRevisions changes Alice's calendar on a real
// Radicale to content it held before, whose etag is then the same: a
// meeting accepted, declined and accepted again with the same bytes makes
// her busy again, and an occurrence moved away, back and away again
// leaves her free. The collector drops ids it stored before, as
// JetStream does; the clock moves a minute per step.
func TestRadicaleRepeatedRevisions(t *testing.T) {
	r := startRadicale(t)
	r.mkcalendar(t, "/alice/work/")
	now := testNow.Add(-time.Minute)
	src, err := New(Config{
		Name: "calendar",
		Calendars: []Calendar{{
			User: "alice@example.com", URL: r.base + "/alice/work/",
			Username: radicaleUser, Password: radicalePassword,
		}},
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	step := func(what string, busy bool, want ...string) {
		t.Helper()
		now = now.Add(time.Minute)
		if err := src.Poll(context.Background(), got.publish); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got.waitWindows(t, what, want...)
		if b := got.busy("alice@example.com", now); b != busy {
			t.Fatalf("%s: busy %v, want %v (%d events dropped as duplicates)", what, b, busy, got.dropped)
		}
	}
	invitation := func(partstat string) string {
		return vevent("review", "DTSTART:20261203T073000Z\nDTEND:20261203T093000Z\nORGANIZER:mailto:bob@example.com\nATTENDEE;PARTSTAT="+partstat+":mailto:alice@example.com")
	}
	r.put(t, "/alice/work/review.ics", invitation("ACCEPTED"))
	step("accepted", true, "Dec 3 07:30-09:30 busy")
	r.put(t, "/alice/work/review.ics", invitation("DECLINED"))
	step("declined", false)
	r.put(t, "/alice/work/review.ics", invitation("ACCEPTED"))
	step("accepted again", true, "Dec 3 07:30-09:30 busy")
	r.put(t, "/alice/work/review.ics", invitation("DECLINED"))
	step("declined again", false)

	// A daily series whose Dec 3 occurrence is now; moved to Dec 10 it
	// leaves the window.
	series := "BEGIN:VEVENT\nUID:standup\nDTSTAMP:20261201T000000Z\nDTSTART:20261201T074500Z\nDTEND:20261201T081500Z\nRRULE:FREQ=DAILY;COUNT=3\nEND:VEVENT"
	moved := series + "\nBEGIN:VEVENT\nUID:standup\nDTSTAMP:20261201T000000Z\nRECURRENCE-ID:20261203T074500Z\nDTSTART:20261210T074500Z\nDTEND:20261210T081500Z\nEND:VEVENT"
	calendar := func(body string) string {
		return "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//presence-bridge test//EN\n" + body + "\nEND:VCALENDAR"
	}
	r.put(t, "/alice/work/standup.ics", calendar(series))
	step("a series", true, "Dec 3 07:45-08:15 busy")
	r.put(t, "/alice/work/standup.ics", calendar(moved))
	step("the occurrence moved away", false)
	r.put(t, "/alice/work/standup.ics", calendar(series))
	step("the occurrence moved back", true, "Dec 3 07:45-08:15 busy")
	r.put(t, "/alice/work/standup.ics", calendar(moved))
	step("the occurrence moved away again", false)
}

// TestRadicaleResyncAfterTakeover: a source claims two meetings and
// stops without a word (its bridge died); one meeting is deleted before
// the next source runs. That source, knowing nothing of what the first
// claimed, ends it with the resync after its first full read, and keeps
// the other. A source of which one calendar of the person can not be read
// sends no resync: it could end meetings that stand. Another restart with
// nothing changed changes nothing.
func TestRadicaleResyncAfterTakeover(t *testing.T) {
	r := startRadicale(t)
	r.mkcalendar(t, "/alice/work/")
	r.put(t, "/alice/work/review.ics", vevent("review", "DTSTART:20261203T073000Z\nDTEND:20261203T093000Z"))
	r.put(t, "/alice/work/lunch.ics", vevent("lunch", "DTSTART:20261203T120000Z\nDTEND:20261203T130000Z"))
	now := testNow
	work := Calendar{User: "alice@example.com", URL: r.base + "/alice/work/", Username: radicaleUser, Password: radicalePassword}
	source := func(cals ...Calendar) *Source {
		t.Helper()
		src, err := New(Config{Name: "calendar", Calendars: cals, Now: func() time.Time { return now }, RequestTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	var got collector
	ctx := context.Background()
	if err := source(work).Poll(ctx, got.publish); err != nil {
		t.Fatal(err)
	}
	got.waitWindows(t, "the first holder", "Dec 3 07:30-09:30 busy", "Dec 3 12:00-13:00 busy")
	r.do(t, "DELETE", "/alice/work/review.ics", "", nil, http.StatusOK, http.StatusNoContent)

	now = now.Add(time.Minute)
	unreadable := Calendar{User: "alice@example.com", URL: "http://127.0.0.1:1/alice/other/"}
	if err := source(work, unreadable).Poll(ctx, got.publish); err == nil {
		t.Fatal("a poll of an unreadable calendar succeeded")
	}
	got.waitWindows(t, "a holder that could not read every calendar", "Dec 3 07:30-09:30 busy", "Dec 3 12:00-13:00 busy")

	now = now.Add(time.Minute)
	if err := source(work).Poll(ctx, got.publish); err != nil {
		t.Fatal(err)
	}
	got.waitWindows(t, "the next holder", "Dec 3 12:00-13:00 busy")
	if got.busy("alice@example.com", now) {
		t.Error("Alice is still busy with the deleted meeting")
	}

	now = now.Add(time.Minute)
	if err := source(work).Poll(ctx, got.publish); err != nil {
		t.Fatal(err)
	}
	got.waitWindows(t, "a restart with nothing changed", "Dec 3 12:00-13:00 busy")
	if got.dropped != 0 {
		t.Errorf("%d events dropped as duplicates", got.dropped)
	}
}
