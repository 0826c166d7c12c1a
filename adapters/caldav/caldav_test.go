package caldav

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestConfigValidate lists configurations that are refused, with the
// problem named, and checks that no secret is quoted.
func TestConfigValidate(t *testing.T) {
	const secret = "s3cr3t-never-quoted"
	ok := Calendar{User: "alice@example.com", URL: "https://caldav.example.com/cal/", Username: "alice", Password: secret}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"valid", func(*Config) {}, ""},
		{"bad name", func(c *Config) { c.Name = "Cal Endar" }, "name:"},
		{"no calendars", func(c *Config) { c.Calendars = nil }, "calendars: at least one"},
		{"no user", func(c *Config) { c.Calendars[0].User = "" }, "calendars[0].user"},
		{"url and principal", func(c *Config) { c.Calendars[0].Principal = "https://x.example/" }, "exactly one of url and principal"},
		{"neither", func(c *Config) { c.Calendars[0].URL = "" }, "exactly one of url and principal"},
		{"relative url", func(c *Config) { c.Calendars[0].URL = "/cal/" }, "absolute http or https"},
		{"credentials in url", func(c *Config) { c.Calendars[0].URL = "https://alice:" + secret + "@x.example/" }, "must not hold credentials"},
		{"token and password", func(c *Config) { c.Calendars[0].Token = secret }, "either token or username and password"},
		{"password alone", func(c *Config) { c.Calendars[0].Username = "" }, "username and password go together"},
		{"fast poll", func(c *Config) { c.PollInterval = time.Millisecond }, "poll_interval"},
		{"huge window", func(c *Config) { c.WindowAfter = 90 * 24 * time.Hour }, "window_before, window_after"},
		{"bad zone", func(c *Config) { c.TimeZone = "Mars/Olympus" }, "time_zone"},
		{"tiny object cap", func(c *Config) { c.MaxObjectBytes = 10 }, "max_object_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Name: "calendar", Calendars: []Calendar{ok}}
			tc.edit(&c)
			_, err := New(c)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), secret):
				t.Fatalf("the error quotes a secret: %v", err)
			}
		})
	}
}

// TestOccurrenceCap fills a calendar with more windows than
// MaxOccurrences: the same ones are published poll after poll, and none
// is ended for having been cut off.
func TestOccurrenceCap(t *testing.T) {
	src, err := New(Config{Name: "calendar", MaxOccurrences: 3, Calendars: []Calendar{{User: "alice@example.com", URL: "http://127.0.0.1:1/cal/"}}})
	if err != nil {
		t.Fatal(err)
	}
	a := src.people[0]
	c := a.collections["http://127.0.0.1:1/cal/"]
	p := person{addresses: a.addresses, loc: time.UTC}
	for i := range 6 {
		ics := fmt.Sprintf("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:e%d\r\nDTSTART:20261203T1%d0000Z\r\nDURATION:PT30M\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", i, i)
		comps, err := parseObject([]byte(ics), DefaultMaxObjectBytes, p)
		if err != nil {
			t.Fatal(err)
		}
		c.objects[fmt.Sprintf("/cal/e%d.ics", i)] = &object{etag: "1", comps: comps}
	}
	from, to := testNow.Add(-time.Hour), testNow.Add(24*time.Hour)
	var first []string
	for poll := range 3 {
		current, complete := a.windows(from, to, 3)
		if complete || len(current) != 3 {
			t.Fatalf("poll %d: %d windows, complete %v; want 3, false", poll, len(current), complete)
		}
		events, next := a.diff("calendar", current, complete, from, testNow, int64(poll))
		a.published = next
		for _, ev := range events {
			if ev.State == adapters.MeetingEnded {
				t.Errorf("poll %d ended %s", poll, ev.ID)
			}
			if poll == 0 {
				first = append(first, ev.ID)
			}
		}
		if poll > 0 && len(events) != 0 {
			t.Errorf("poll %d published %d events again (first poll: %q)", poll, len(events), first)
		}
	}
	if len(first) != 3 {
		t.Errorf("the first poll published %q", first)
	}
}
