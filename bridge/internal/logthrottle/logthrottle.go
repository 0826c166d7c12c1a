// Package logthrottle keeps repeated identical failures from flooding the
// log: the first of a kind is logged at once, the ones after it within an
// interval are only counted, and the next one logged carries the count.
package logthrottle

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxKeys bounds how many kinds of failure are remembered; past it, the
// oldest memory is dropped (at worst, one extra line).
const maxKeys = 1024

// Throttle logs at most one line per key and interval.
type Throttle struct {
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	kinds map[string]*kind
}

type kind struct {
	logged     time.Time
	suppressed int
}

// New returns a Throttle that logs each key at most once per every.
func New(every time.Duration) *Throttle {
	return &Throttle{every: every, now: time.Now, kinds: map[string]*kind{}}
}

// WithClock makes t tell time by now; for tests.
func (t *Throttle) WithClock(now func() time.Time) *Throttle {
	t.now = now
	return t
}

// Log logs msg with args at level on log unless a line with the same key
// was logged less than the interval ago; then it only counts it. A line
// logged after some were counted carries "repeated", how many were left
// out since the last line of its key.
func (t *Throttle) Log(ctx context.Context, log *slog.Logger, level slog.Level, key, msg string, args ...any) {
	if !log.Enabled(ctx, level) {
		return
	}
	now := t.now()
	t.mu.Lock()
	k := t.kinds[key]
	if k != nil && now.Sub(k.logged) < t.every {
		k.suppressed++
		t.mu.Unlock()
		return
	}
	if k == nil {
		if len(t.kinds) >= maxKeys {
			t.forgetOldest()
		}
		k = &kind{}
		t.kinds[key] = k
	}
	repeated := k.suppressed
	k.logged, k.suppressed = now, 0
	t.mu.Unlock()
	if repeated > 0 {
		args = append(args, "repeated", repeated, "repeated_within", t.every)
	}
	log.Log(ctx, level, msg, args...)
}

// forgetOldest drops the key logged longest ago; t.mu is held.
func (t *Throttle) forgetOldest() {
	oldest, at := "", time.Time{}
	for key, k := range t.kinds {
		if oldest == "" || k.logged.Before(at) {
			oldest, at = key, k.logged
		}
	}
	delete(t.kinds, oldest)
}
