package sip_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/internal/logbuf"

	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/outputstest"
	sipout "github.com/presence-bridge/presence-bridge/outputs/sip"
	"github.com/presence-bridge/presence-bridge/outputs/sip/siptest"
)

// count is how many lines of logs hold every one of substrings.
func count(logs *logbuf.Buffer, substrings ...string) int {
	n := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		all := true
		for _, sub := range substrings {
			all = all && strings.Contains(line, sub)
		}
		if all {
			n++
		}
	}
	return n
}

// teamsChange is the n-th change of alice to the pair.
func teamsChange(n int, availability, activity string) outputs.Change {
	c := outputstest.Change("contoso.example", "00000000-0000-4000-8000-00000000a11c", n)
	c.User = "alice@contoso.example"
	c.Availability, c.Activity = availability, activity
	return c
}

// presenceOf is the newest presence and dialog state w was notified of
// for extension.
func presenceOf(t *testing.T, w *siptest.Watcher, extension string) (siptest.Presence, map[string]string) {
	t.Helper()
	var p siptest.Presence
	d := map[string]string{}
	if n, ok := w.Latest(extension, "presence"); ok {
		var err error
		if p, err = siptest.ParsePIDF(n.Body); err != nil {
			t.Fatalf("NOTIFY presence body: %v\n%s", err, n.Body)
		}
	}
	if n, ok := w.Latest(extension, "dialog"); ok {
		var err error
		if d, err = siptest.Dialogs(n.Body); err != nil {
			t.Fatalf("NOTIFY dialog body: %v\n%s", err, n.Body)
		}
	}
	return p, d
}

// confirmed reports whether dialogs hold a confirmed dialog of the
// bridge's.
func confirmed(d map[string]string) bool {
	for id, state := range d {
		if strings.HasPrefix(id, "teams-") && state == "confirmed" {
			return true
		}
	}
	return false
}

// TestKamailio publishes through a real Kamailio to a watcher that
// subscribed like a desk phone: a Teams call shows on-the-phone and a
// confirmed dialog, its end open and the dialog gone; 503s are retried
// and logged once; a Kamailio restart is survived; closing removes the
// publications.
func TestKamailio(t *testing.T) {
	k := siptest.StartKamailio(t)
	logs := &logbuf.Buffer{}
	out, err := sipout.New(sipout.Config{
		Name: "phones", Server: k.Addr(), Domain: siptest.Domain, User: siptest.BridgeUser, Password: siptest.BridgePassword,
		Expires: 10 * time.Second, RequestTimeout: 2 * time.Second,
		Backoff:    sipout.Backoff{Min: 100 * time.Millisecond, Max: time.Second},
		Extensions: map[string]string{"alice@contoso.example": "1001"},
	}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			out.Close()
		}
		if t.Failed() {
			t.Logf("output log:\n%s", siptest.Tail(logs.String(), 6000))
		}
	})
	ctx := context.Background()
	w := siptest.NewWatcher(t, "1002", k.Addr())
	w.Subscribe("1001", "presence")
	w.Subscribe("1001", "dialog")

	// A Teams call: on the phone, and a confirmed dialog for the BLF.
	if err := out.Publish(ctx, teamsChange(1, "Busy", "InACall")); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "a NOTIFY of 1001 on the phone with a confirmed dialog", func() bool {
		p, d := presenceOf(t, w, "1001")
		return p.Basic == "open" && slices.Contains(p.Activities, "on-the-phone") && confirmed(d)
	})
	// The call ends: available, the dialog terminated.
	if err := out.Publish(ctx, teamsChange(2, "Available", "Available")); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "a NOTIFY of 1001 available without a confirmed dialog", func() bool {
		p, d := presenceOf(t, w, "1001")
		return p.Basic == "open" && len(p.Activities) == 0 && !confirmed(d)
	})

	// The server fails: the publication is retried with backoff, the
	// failure logged once, and the state gets through when it recovers.
	k.RPC("htable.seti", "fail", "code", "503")
	k.RPC("htable.seti", "fail", "count", "4")
	if err := out.Publish(ctx, teamsChange(3, "Busy", "InAMeeting")); err == nil {
		t.Error("a publication answered 503 reported no error")
	}
	testpoll.Until(t, "the meeting through after the failures", func() bool {
		p, _ := presenceOf(t, w, "1001")
		return slices.Contains(p.Activities, "meeting")
	})
	// Kamailio may notify the phone before the output has logged the 200.
	testpoll.Until(t, "the recovery logged", func() bool { return count(logs, "sip publication succeeds again") > 0 })
	if n := count(logs, "sip publication failed"); n != 1 {
		t.Errorf("the failure was logged %d times, want once", n)
	}
	if n := count(logs, "sip publication succeeds again"); n != 1 {
		t.Errorf("the recovery was logged %d times, want once", n)
	}
	if s := out.Stats(); s.Responses["5xx"] < 4 || s.Responses["2xx"] == 0 || !strings.Contains(s.LastError, "503") {
		t.Errorf("stats %+v", s)
	}

	// Kamailio restarts and forgets every publication and subscription.
	// The phone subscribes again; the bridge's next refresh meets 412 and
	// it publishes the meeting anew, without a Teams change.
	if err := out.Publish(ctx, teamsChange(4, "Busy", "InACall")); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "the call before the restart", func() bool {
		_, d := presenceOf(t, w, "1001")
		return confirmed(d)
	})
	k.Restart()
	w2 := siptest.NewWatcher(t, "1003", k.Addr())
	w2.Subscribe("1001", "presence")
	w2.Subscribe("1001", "dialog")
	testpoll.Until(t, "the call notified again after the restart", func() bool {
		p, d := presenceOf(t, w2, "1001")
		return slices.Contains(p.Activities, "on-the-phone") && confirmed(d)
	})
	testpoll.Until(t, "the restart noticed through 412", func() bool { return count(logs, "sip publication unknown to the server") > 0 })

	// Closing removes the publications: the watcher is told 1001 is no
	// longer on the phone.
	closed = true
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range w2.Notifies() {
				t.Logf("NOTIFY %s %s at %s:\n%s", n.Entity, n.Event, n.At.Format(time.StampMilli), n.Body)
			}
		}
	})
	testpoll.Until(t, "the publications removed", func() bool {
		p, d := presenceOf(t, w2, "1001")
		return !slices.Contains(p.Activities, "on-the-phone") && !confirmed(d)
	})
	if strings.Contains(logs.String(), siptest.BridgePassword) {
		t.Error("the password appears in the logs")
	}
}
