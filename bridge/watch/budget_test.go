package watch

import (
	"testing"
	"time"
)

// TestBudgetSlidingWindow: no window of the budget's length, wherever it
// starts, holds more requests than the limit, and a request is allowed
// again exactly a window after the one it replaces.
func TestBudgetSlidingWindow(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	b := newBudget(3, 10*time.Second)
	var taken []time.Time
	for ms := 0; ms <= 60_000; ms += 250 {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		if b.allow(now) {
			taken = append(taken, now)
		}
	}
	for i := range taken {
		n := 0
		for _, u := range taken[i:] {
			if u.Sub(taken[i]) < 10*time.Second {
				n++
			}
		}
		if n > 3 {
			t.Fatalf("%d requests in the window from %s", n, taken[i])
		}
	}
	if len(taken) != 3*6+1 { // three at the start of each 10 s, one at 60 s
		t.Fatalf("%d requests allowed in 60 s at 3 per 10 s, want %d", len(taken), 3*6+1)
	}
	if got := b.used(t0.Add(60 * time.Second)); got != 3 {
		t.Fatalf("used = %d, want 3", got)
	}
}
