package watch

import (
	"context"
	"sync/atomic"
	"time"
)

// budget is a sliding-window rate limit: at most limit requests in any
// window of the given length, whichever instant it starts at, so that
// no fixed window Graph counts in can see more.
type budget struct {
	limit  int
	window time.Duration
	// times are the last limit requests, oldest at head once full.
	times []time.Time
	head  int
}

func newBudget(limit int, window time.Duration) *budget {
	return &budget{limit: limit, window: window, times: make([]time.Time, 0, limit)}
}

// allow takes a request at now if the window ending at now has room.
func (b *budget) allow(now time.Time) bool {
	if len(b.times) < b.limit {
		b.times = append(b.times, now)
		return true
	}
	if now.Sub(b.times[b.head]) < b.window {
		return false
	}
	b.times[b.head] = now
	b.head = (b.head + 1) % b.limit
	return true
}

// used counts the requests in the window ending at now.
func (b *budget) used(now time.Time) int {
	n := 0
	for _, t := range b.times {
		if now.Sub(t) < b.window {
			n++
		}
	}
	return n
}

// Reads bounds the presence reads in flight across the watchers that
// share it (every tenant of a bridge), so that no more answers than that
// are held at once however slow Graph or the machine is. Each watcher's
// budget and pace stay its own. A nil *Reads bounds nothing.
type Reads struct {
	slots   chan struct{}
	waiting atomic.Int64 // watchers waiting for a slot, for tests
}

// NewReads returns a bound of n reads in flight (at least one).
func NewReads(n int) *Reads { return &Reads{slots: make(chan struct{}, max(1, n))} }

// acquire waits for a slot; false when ctx ended first.
func (r *Reads) acquire(ctx context.Context) bool {
	if r == nil {
		return true
	}
	select {
	case r.slots <- struct{}{}:
		return true
	default:
	}
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	select {
	case r.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// release frees a slot acquire took.
func (r *Reads) release() {
	if r != nil {
		<-r.slots
	}
}
