package admin

import (
	"fmt"
	"testing"
	"time"
)

// TestGuessGuard: a client may present guessAttempts wrong tokens, then
// waits guessEvery for each more; other clients are not held back; and the
// guard remembers a bounded number of clients however many try.
func TestGuessGuard(t *testing.T) {
	now := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	g := newGuessGuard(func() time.Time { return now })
	for i := range guessAttempts {
		if wait := g.wait("192.0.2.1"); wait != 0 {
			t.Fatalf("attempt %d waits %s, want none", i+1, wait)
		}
		g.failed("192.0.2.1")
	}
	wait := g.wait("192.0.2.1")
	if wait <= 0 || wait > guessEvery {
		t.Fatalf("after %d wrong tokens the client waits %s, want up to %s", guessAttempts, wait, guessEvery)
	}
	if g.wait("192.0.2.2") != 0 {
		t.Fatal("another client is held back")
	}
	now = now.Add(guessEvery)
	if g.wait("192.0.2.1") != 0 {
		t.Fatalf("after %s the client may still not try", guessEvery)
	}
	g.failed("192.0.2.1")
	if g.wait("192.0.2.1") == 0 {
		t.Fatal("a refilled attempt was not used up by a wrong token")
	}

	for i := range 3 * guessClients {
		g.failed(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	if n := len(g.clients); n > guessClients {
		t.Fatalf("the guard remembers %d clients, at most %d", n, guessClients)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, c := range []struct {
		wait time.Duration
		want string
	}{{time.Millisecond, "1"}, {time.Second, "1"}, {1500 * time.Millisecond, "2"}, {6 * time.Second, "6"}} {
		if got := retryAfter(c.wait); got != c.want {
			t.Errorf("retryAfter(%s) = %s, want %s", c.wait, got, c.want)
		}
	}
}
