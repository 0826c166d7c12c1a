package bridge_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters/caldav/caldavtest"
	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// calSource is a caldav source named cal, polling every second, for a
// config's sources list: one calendar per flow mapping given.
func calSource(calendars ...string) string {
	return `  - name: cal
    type: caldav
    caldav:
      poll_interval: 1s
      calendars: [` + strings.Join(calendars, ", ") + `]
`
}

// radicaleCalendar is the flow mapping of user's calendar at path on r,
// with the test account's credentials.
func radicaleCalendar(r *caldavtest.Radicale, user, path string) string {
	return fmt.Sprintf(`{user: %s, url: "%s%s", username: %s, password: %s}`, user, r.Base, path, caldavtest.User, caldavtest.Password)
}

// withSource adds source to the sources list of testConfig's YAML.
func withSource(yaml, source string) string {
	return strings.Replace(yaml, "admin: {token", source+"admin: {token", 1)
}

// TestConnectOutSourceOneBridgeAtATime: of three bridges on one NATS,
// only one runs a connect-out source; when it stops, another takes it over
// at once; when that one loses NATS (as if it died), its lease runs out
// and the last takes over. (The calendar here answers nothing: which
// bridge polls is what counts.)
func TestConnectOutSourceOneBridgeAtATime(t *testing.T) {
	natsURL, em := sharedParts(t)
	yaml := clusterConfig(natsURL, em.Addr()) + calSource(`{user: alice@contoso.example, url: "http://127.0.0.1:1/alice/calendar/"}`)
	bridges := []*bridge.Bridge{startClusterBridgeFrom(t, yaml), startClusterBridgeFrom(t, yaml), startClusterBridgeFrom(t, yaml)}
	runner := func() int {
		t.Helper()
		return theOne(t, bridges, "run the source", runsCal)
	}
	first := runner()
	if bridges[first].Running("demo") {
		t.Error("a webhook source is reported running")
	}
	if err := bridges[first].Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if bridges[first].Running("cal") {
		t.Fatal("a stopped bridge still runs the source")
	}
	bridges[first] = nil
	second := runner()

	// The second loses NATS: it can renew no more and stops the source;
	// the lease's TTL frees the source for the last bridge.
	cut := bridges[second]
	bridges[second] = nil
	cut.Queue().Conn().Close()
	last := runner()
	testpoll.Until(t, "the bridge without NATS to stop the source", func() bool { return !cut.Running("cal") })
	if last == first || last == second {
		t.Fatalf("bridge %d runs the source after %d and %d left", last, first, second)
	}
}

// TestCalDAVHandoverBetweenBridges: two bridges on one NATS and one
// Graph emulator, one caldav source on a real Radicale. The bridge that
// runs it makes Alice busy for a meeting now; it stops, and the other
// bridge, taking the source over, follows the calendar: it moves Alice's
// meeting to later (a new version of the same meeting, so she is free)
// and puts Bob in his.
func TestCalDAVHandoverBetweenBridges(t *testing.T) {
	r := caldavtest.Start(t)
	r.MkCalendar(t, "/alice/work/")
	r.MkCalendar(t, "/alice/bob/")
	natsURL, em := sharedParts(t)
	yaml := clusterConfig(natsURL, em.Addr()) + calSource(radicaleCalendar(r, "alice@contoso.example", "/alice/work/"), radicaleCalendar(r, "bob@contoso.example", "/alice/bob/"))
	bridges := []*bridge.Bridge{startClusterBridgeFrom(t, yaml), startClusterBridgeFrom(t, yaml)}
	runner := func() int {
		t.Helper()
		return theOne(t, bridges, "run the source", runsCal)
	}
	wait := func(what, id, want string) {
		t.Helper()
		testpoll.UntilOK(t, what, presencesAre(em, map[string]string{id: want}))
	}
	now := time.Now().UTC()
	meeting := func(uid string, from, to time.Duration) string {
		stamp := func(d time.Duration) string { return now.Add(d).Format("20060102T150405Z") }
		return "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//presence-bridge test//EN\nBEGIN:VEVENT\nUID:" + uid +
			"\nDTSTAMP:" + stamp(0) + "\nDTSTART:" + stamp(from) + "\nDTEND:" + stamp(to) + "\nEND:VEVENT\nEND:VCALENDAR"
	}
	first := runner()
	r.Put(t, "/alice/work/review.ics", meeting("review", -5*time.Minute, time.Hour))
	wait("a meeting now", aliceID, "Busy/InAConferenceCall")

	if err := bridges[first].Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	bridges[first] = nil
	runner()
	r.Put(t, "/alice/work/review.ics", meeting("review", 2*time.Hour, 3*time.Hour))
	r.Put(t, "/alice/bob/sync.ics", meeting("sync", -time.Minute, time.Hour))
	wait("Bob's meeting, after the handover", bobID, "Busy/InAConferenceCall")
	wait("Alice's meeting moved to later, after the handover", aliceID, "Offline/Offline")
}

// runsCal reports whether b runs the connect-out source "cal".
func runsCal(b *bridge.Bridge) bool { return b.Running("cal") }
