package identity

import (
	"sync"
	"time"
)

// budget lets at most n calls go in any window. It remembers when each of
// the last n calls went (a ring, oldest first at next): one more may go
// once the oldest of them is a window old.
type budget struct {
	window time.Duration

	mu   sync.Mutex
	sent []time.Time
	next int
}

func newBudget(n int, window time.Duration) *budget {
	return &budget{window: window, sent: make([]time.Time, max(n, 1))}
}

// take takes one call at now and returns zero when the budget has room;
// otherwise it takes nothing and returns how long until there is room.
func (b *budget) take(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if oldest := b.sent[b.next]; !oldest.IsZero() {
		if wait := oldest.Add(b.window).Sub(now); wait > 0 {
			return wait
		}
	}
	b.sent[b.next] = now
	b.next = (b.next + 1) % len(b.sent)
	return 0
}
