package watch

import "time"

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
