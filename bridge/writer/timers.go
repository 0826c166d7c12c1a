package writer

import (
	"container/heap"
	"time"
)

// deadlines are the users due for a keep-alive, earliest deadline first,
// each at most once.
type deadlines struct {
	h  timerHeap
	in map[string]bool
}

func (d *deadlines) len() int { return len(d.h) }

// push adds userID with its deadline at, unless it is in already (its
// earlier deadline stands).
func (d *deadlines) push(userID string, at time.Time) {
	if d.in == nil {
		d.in = map[string]bool{}
	}
	if !d.in[userID] {
		d.in[userID] = true
		heap.Push(&d.h, timer{at: at, userID: userID})
	}
}

// front returns the earliest deadline without taking it off.
func (d *deadlines) front() (timer, bool) {
	if len(d.h) == 0 {
		return timer{}, false
	}
	return d.h[0], true
}

// pop takes the earliest deadline off; there must be one.
func (d *deadlines) pop() {
	tm := heap.Pop(&d.h).(timer)
	delete(d.in, tm.userID)
}

// timers hold one timer per user: setting a user's timer replaces the
// one set before, which is left in the heap and recognised as stale when
// it comes due.
type timers struct {
	h  timerHeap
	at map[string]time.Time // each user's current timer
}

// set sets userID's timer to at; a zero at changes nothing.
func (ts *timers) set(userID string, at time.Time) {
	if at.IsZero() || at.Equal(ts.at[userID]) {
		return
	}
	if ts.at == nil {
		ts.at = map[string]time.Time{}
	}
	ts.at[userID] = at
	heap.Push(&ts.h, timer{at: at, userID: userID})
}

// prune drops the stale timers once they outnumber the current ones by
// more than compactFloor, so that the heap holds about one timer per user
// with one set (an ended call's deadline hours away is stale as soon as
// the call ends).
func (ts *timers) prune() {
	if len(ts.h) <= 2*len(ts.at)+compactFloor {
		return
	}
	h := make(timerHeap, 0, len(ts.at))
	for userID, at := range ts.at {
		h = append(h, timer{at: at, userID: userID})
	}
	heap.Init(&h)
	ts.h = h
}

// clear drops userID's timer; the entry left in the heap is stale.
func (ts *timers) clear(userID string) { delete(ts.at, userID) }

// due takes off and returns the next user whose timer is due at now,
// skipping stale timers; false when none is due.
func (ts *timers) due(now time.Time) (string, bool) {
	for len(ts.h) > 0 && !ts.h[0].at.After(now) {
		tm := heap.Pop(&ts.h).(timer)
		if cur, ok := ts.at[tm.userID]; ok && cur.Equal(tm.at) {
			delete(ts.at, tm.userID)
			return tm.userID, true
		}
	}
	return "", false
}

type timer struct {
	at     time.Time
	userID string
}

// timerHeap is a min-heap of timers by time (container/heap).
type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
