package sipua

import (
	"errors"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestBackoff: doubling from the low bound, capped at the high one, with
// at most a quarter added.
func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		failures int
		base     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {10, 8 * time.Second}} {
		for range 20 {
			d := Backoff(time.Second, 8*time.Second, c.failures)
			if d < c.base || d > c.base+c.base/4 {
				t.Errorf("after %d failures: %s, want %s to %s", c.failures, d, c.base, c.base+c.base/4)
			}
		}
	}
}

// TestExpiry: refreshed after two thirds, at least a minute ahead for
// long lifetimes; the granted Expires read from a 2xx.
func TestExpiry(t *testing.T) {
	for granted, want := range map[time.Duration]time.Duration{
		30 * time.Second: 20 * time.Second,
		time.Hour:        time.Hour - 7*time.Minute,
	} {
		if got := RefreshIn(granted); got != want {
			t.Errorf("RefreshIn(%s) = %s, want %s", granted, got, want)
		}
	}
	res := sip.NewResponse(200, "OK")
	if got := GrantedExpiry(res, time.Minute); got != time.Minute {
		t.Errorf("without Expires: %s", got)
	}
	res.AppendHeader(sip.NewHeader("Expires", " 120 "))
	if got := GrantedExpiry(res, time.Minute); got != 2*time.Minute {
		t.Errorf("Expires 120: %s", got)
	}
	if a := Answer(res, nil); a != "200 OK" {
		t.Errorf("Answer %q", a)
	}
	if a := Answer(nil, errors.New("timeout")); a != "timeout" {
		t.Errorf("Answer %q", a)
	}
}
