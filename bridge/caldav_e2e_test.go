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
	yaml := strings.Replace(testConfig(t), "admin: {token", fmt.Sprintf(`  - name: cal
    type: caldav
    caldav:
      poll_interval: 1s
      calendars:
        - user: alice@contoso.example
          url: %s/alice/work/
          username: %s
          password_file: caldav.txt
admin: {token`, r.Base, caldavtest.User), 1)
	cfg, err := config.Parse([]byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
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
		deadline := time.Now().Add(60 * time.Second)
		for presence() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: Alice is %s, want %s", what, presence(), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
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
}
