package writer

import (
	"fmt"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// TestRefreshAt: every user's refresh falls between a half and two
// thirds of the expiration, the same for a user each time, spread
// across users.
func TestRefreshAt(t *testing.T) {
	for _, exp := range []time.Duration{30 * time.Second, 5 * time.Minute, 15 * time.Minute, time.Hour} {
		told := &state.Told{At: t0}
		points := map[time.Time]bool{}
		for i := range 200 {
			id := fmt.Sprintf("user%d", i)
			due := refreshAt(id, told, exp)
			if due.Before(t0.Add(exp/2)) || !due.Before(t0.Add(exp*2/3)) {
				t.Fatalf("expiration %s: %s due after %s, want within [%s, %s)", exp, id, due.Sub(t0), exp/2, exp*2/3)
			}
			if !refreshAt(id, told, exp).Equal(due) {
				t.Fatalf("%s's refresh point moved", id)
			}
			points[due] = true
		}
		if len(points) < 100 {
			t.Fatalf("expiration %s: 200 users share %d refresh points", exp, len(points))
		}
	}
}

func TestExpiresAt(t *testing.T) {
	for _, tt := range []struct {
		told state.Told
		want time.Time
	}{
		{state.Told{At: at(0)}, at(15)},
		{state.Told{At: at(0), Expires: at(10)}, at(10)},
	} {
		if got := expiresAt(&tt.told, 15*time.Minute); !got.Equal(tt.want) {
			t.Errorf("expiresAt(%+v) = %s, want %s", tt.told, got.Sub(t0), tt.want.Sub(t0))
		}
	}
}

// TestUrgent: keep-alives go first once the earliest expiry is closer
// than the time to send them all plus a sixth of the expiration.
func TestUrgent(t *testing.T) {
	const exp = 30 * time.Minute // a sixth: 5 minutes
	for _, tt := range []struct {
		name      string
		left      time.Duration // until the earliest expiry
		due       int
		perSecond float64
		want      bool
	}{
		{"plenty of time", 10 * time.Minute, 0, 1, false},
		{"a sixth and the one call left", 5*time.Minute + time.Second, 0, 1, true},
		{"just more than that", 5*time.Minute + 2*time.Second, 0, 1, false},
		{"many due take longer", 6 * time.Minute, 59, 1, true},
		{"a faster budget sends them sooner", 6 * time.Minute, 59, 100, false},
		{"expired", -time.Minute, 0, 1000, true},
	} {
		if got := urgent(t0, t0.Add(tt.left), tt.due, tt.perSecond, exp); got != tt.want {
			t.Errorf("%s: urgent = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestSessionCount: the count follows sessions set and gone and warns
// once, the first time it passes the capacity.
func TestSessionCount(t *testing.T) {
	c := sessionCount{capacity: 2}
	steps := []struct {
		had, has bool
		live     int
		warn     bool
	}{
		{false, true, 1, false},
		{false, true, 2, false},
		{true, true, 2, false},
		{false, true, 3, true},
		{true, false, 2, false},
		{false, true, 3, false}, // warned once already
		{false, false, 3, false},
	}
	for i, s := range steps {
		if warn := c.change(s.had, s.has); warn != s.warn || c.live != s.live {
			t.Fatalf("step %d: live %d, warn %v; want %d, %v", i, c.live, warn, s.live, s.warn)
		}
	}
}
