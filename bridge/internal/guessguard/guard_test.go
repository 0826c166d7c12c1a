package guessguard

import (
	"fmt"
	"testing"
	"time"
)

// TestGuard: a client may present Attempts wrong tokens, then waits Every
// for each more; other clients are not held back; and the guard remembers
// a bounded number of clients however many try.
func TestGuard(t *testing.T) {
	now := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	g := New(func() time.Time { return now })
	for i := range Attempts {
		if wait := g.Wait("192.0.2.1"); wait != 0 {
			t.Fatalf("attempt %d waits %s, want none", i+1, wait)
		}
		g.Failed("192.0.2.1")
	}
	wait := g.Wait("192.0.2.1")
	if wait <= 0 || wait > Every {
		t.Fatalf("after %d wrong tokens the client waits %s, want up to %s", Attempts, wait, Every)
	}
	if g.Wait("192.0.2.2") != 0 {
		t.Fatal("another client is held back")
	}
	now = now.Add(Every)
	if g.Wait("192.0.2.1") != 0 {
		t.Fatalf("after %s the client may still not try", Every)
	}
	g.Failed("192.0.2.1")
	if g.Wait("192.0.2.1") == 0 {
		t.Fatal("a refilled attempt was not used up by a wrong token")
	}

	for i := range 3 * Clients {
		g.Failed(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	if n := len(g.clients); n > Clients {
		t.Fatalf("the guard remembers %d clients, at most %d", n, Clients)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, c := range []struct {
		wait time.Duration
		want string
	}{{time.Millisecond, "1"}, {time.Second, "1"}, {1500 * time.Millisecond, "2"}, {6 * time.Second, "6"}} {
		if got := RetryAfter(c.wait); got != c.want {
			t.Errorf("RetryAfter(%s) = %s, want %s", c.wait, got, c.want)
		}
	}
}
