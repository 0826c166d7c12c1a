package bridge_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters/caldav/caldavtest"
	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/logbuf"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// TestCalDAVThroughTheBridge runs a caldav source in a whole bridge
// against a real Radicale: a meeting put on Alice's calendar makes the
// emulator show her in a meeting, and deleting it frees her. The calendar
// password comes from a file and never reaches the logs.
func TestCalDAVThroughTheBridge(t *testing.T) {
	r := caldavtest.Start(t)
	r.MkCalendar(t, "/alice/work/")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "caldav.txt"), []byte(caldavtest.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := withSource(testConfig(t), calSource(fmt.Sprintf(`{user: alice@contoso.example, url: "%s/alice/work/", username: %s, password_file: caldav.txt}`, r.Base, caldavtest.User)))
	cfg, err := config.Parse([]byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	b, err := bridge.New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Stop(context.Background())
		if strings.Contains(logs.String(), caldavtest.Password) {
			t.Error("the calendar password is in the logs")
		}
		if t.Failed() {
			t.Logf("bridge logs:\n%s", logs.String())
		}
	})
	presence := func() string {
		p, _ := b.Emulator().Presence(aliceID)
		return p.Availability + "/" + p.Activity
	}
	wait := func(what, want string) {
		t.Helper()
		testpoll.UntilOK(t, what, presencesAre(b.Emulator(), map[string]string{aliceID: want}))
	}
	before := presence()
	if before == "Busy/InAConferenceCall" {
		t.Fatalf("Alice is %s before any meeting", before)
	}
	now := time.Now().UTC()
	r.Put(t, "/alice/work/review.ics", "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//presence-bridge test//EN\nBEGIN:VEVENT\nUID:review\n"+
		"DTSTAMP:"+now.Format("20060102T150405Z")+"\nDTSTART:"+now.Add(-5*time.Minute).Format("20060102T150405Z")+
		"\nDTEND:"+now.Add(time.Hour).Format("20060102T150405Z")+"\nSUMMARY:Review\nEND:VEVENT\nEND:VCALENDAR")
	wait("a meeting now", "Busy/InAConferenceCall")
	r.Delete(t, "/alice/work/review.ics")
	wait("the meeting deleted", "Offline/Offline")

	// An invitation accepted, declined and accepted again with the same
	// bytes (so the same etag): the third revision is a new event, not a
	// duplicate JetStream drops.
	invitation := func(partstat string) string {
		return "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//presence-bridge test//EN\nBEGIN:VEVENT\nUID:sync\n" +
			"DTSTAMP:" + now.Format("20060102T150405Z") + "\nDTSTART:" + now.Add(-5*time.Minute).Format("20060102T150405Z") +
			"\nDTEND:" + now.Add(time.Hour).Format("20060102T150405Z") + "\nORGANIZER:mailto:bob@contoso.example" +
			"\nATTENDEE;PARTSTAT=" + partstat + ":mailto:alice@contoso.example\nEND:VEVENT\nEND:VCALENDAR"
	}
	r.Put(t, "/alice/work/sync.ics", invitation("ACCEPTED"))
	wait("an invitation accepted", "Busy/InAConferenceCall")
	r.Put(t, "/alice/work/sync.ics", invitation("DECLINED"))
	wait("the invitation declined", "Offline/Offline")
	r.Put(t, "/alice/work/sync.ics", invitation("ACCEPTED"))
	wait("the invitation accepted again", "Busy/InAConferenceCall")
}

// TestCalDAVTakeoverEndsWhatTheHolderClaimed: two bridges on one NATS,
// one caldav source on a real Radicale. The bridge running it makes Alice
// busy for a meeting now and dies (loses NATS, releases nothing); the
// meeting is deleted before the other bridge takes the source over. That
// bridge never saw the meeting, yet its first full read of the calendar
// ends it: Alice is free long before the meeting's end.
func TestCalDAVTakeoverEndsWhatTheHolderClaimed(t *testing.T) {
	r := caldavtest.Start(t)
	r.MkCalendar(t, "/alice/work/")
	natsURL, em := sharedParts(t)
	yaml := clusterConfig(natsURL, em.Addr()) + calSource(radicaleCalendar(r, "alice@contoso.example", "/alice/work/"))
	bridges := []*bridge.Bridge{startClusterBridgeFrom(t, yaml), startClusterBridgeFrom(t, yaml)}
	holder := -1
	testpoll.Until(t, "a bridge running the source", func() bool {
		for i, b := range bridges {
			if b.Running("cal") {
				holder = i
			}
		}
		return holder >= 0
	})
	presence := func() string {
		p, _ := em.Presence(aliceID)
		return p.Availability + "/" + p.Activity
	}
	now := time.Now().UTC()
	stamp := func(d time.Duration) string { return now.Add(d).Format("20060102T150405Z") }
	r.Put(t, "/alice/work/review.ics", "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//presence-bridge test//EN\nBEGIN:VEVENT\nUID:review\n"+
		"DTSTAMP:"+stamp(0)+"\nDTSTART:"+stamp(-5*time.Minute)+"\nDTEND:"+stamp(time.Hour)+"\nEND:VEVENT\nEND:VCALENDAR")
	testpoll.Until(t, "Alice in the meeting", func() bool { return presence() == "Busy/InAConferenceCall" })

	dead, other := bridges[holder], bridges[1-holder]
	dead.Queue().Conn().Close()
	r.Delete(t, "/alice/work/review.ics")
	if other.Running("cal") {
		t.Fatal("the other bridge took the source over before the meeting was deleted; the lease TTL is too short for this test")
	}
	testpoll.Until(t, "the other bridge running the source", func() bool { return other.Running("cal") })
	testpoll.Until(t, "Alice free after the takeover", func() bool { return presence() == "Offline/Offline" })
}
