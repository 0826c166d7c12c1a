package caldav

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
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
