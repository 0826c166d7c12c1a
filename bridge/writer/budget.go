package writer

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// budget spends a tenant's Graph calls through a token bucket and adapts
// it to the limit Graph really applies.
//
// A bucket of burst tokens refilled at (limit-burst)/window never lets
// more than limit calls go out in any window. Graph counts arrivals, not
// departures, and calls take varying time to arrive, so the window is
// stretched by a thirtieth (a second in Graph's 30 s) to keep that jitter
// inside the limit too. A burst of about 1% keeps the limit usable when
// the loop wakes a little after a token is due.
//
// The bucket starts empty, as if the writer had just spent its burst,
// because a predecessor (another instance, or this one before a restart)
// may have. With W the stretched window and r = (limit-burst)/W: a bucket
// of burst tokens lets out at most burst + r*a calls in any a seconds, so
// the predecessor's last a seconds hold at most burst + r*a calls and
// this writer's first b seconds, from an empty bucket, at most r*b. A
// window of Graph's that spans the handover has a + b <= W - W/31 (nobody
// calls in the gap between them), so it holds at most burst + r*W = limit
// calls even when the calls' arrival shifts them by up to W/31, as within
// one writer's run. One token at the start would make that limit + 1. The
// writer also starts no call before its predecessor's fence has passed
// (package lease).
//
// Learning a lower limit: Microsoft raised the presence limit to 10,000
// per 30 s, but a tenant may still be held to less (1,500 before
// September 2025). A 429 says Graph counted more than its limit in its
// window, and the calls sent within the last window (throttled ones
// included, as Graph counts them) bound that count. On a 429 the limit
// drops to nine tenths of the calls sent in the last window, but by half
// at most and never below a twentieth of the configured budget (the
// floor). A 429 that came while little was sent (after a quiet spell, or
// Graph throttling for reasons of its own) thus halves the rate rather
// than cutting it to nothing, and a storm of 429s halves it on each one
// down to the floor. A 429 to a call sent before the last cut says
// nothing new and cuts nothing.
//
// Growing back: after every window without a 429 (counted from the end
// of the last Retry-After pause) the limit doubles, up to the ceiling;
// above the ceiling it grows by an eighth per window; never above the
// configured budget. The ceiling is the configured budget until a cut
// learns a limit: when nine tenths of the calls sent reach half the
// limit in force (Graph refused what the writer sent at about its
// limit), those nine tenths are the ceiling; any other cut raises the
// ceiling to the limit it cut, if higher. A tenant held to 1,500 thus
// sees a 429 every few busy windows, not a storm, while one 429 after a
// quiet spell costs one window at half the rate.
//
// Its methods are safe for concurrent use: status-message calls take
// tokens from their own goroutines.
type budget struct {
	mu         sync.Mutex
	configured int
	window     time.Duration
	limit      int // calls per window now
	limiter    *rate.Limiter
	// sent are the times of the calls sent within the last window,
	// oldest first, from head on.
	sent []time.Time
	head int
	// ceiling is where doubling stops (see above).
	ceiling int
	// cutAt is when the limit was last cut; quietSince is when it last
	// changed, a 429 came or a pause ended, whichever is latest.
	cutAt, quietSince time.Time
}

func newBudget(configured int, window time.Duration, now time.Time) *budget {
	b := &budget{configured: configured, window: window, limit: configured, ceiling: configured, quietSince: now}
	r, burst := bucket(configured, window)
	b.limiter = rate.NewLimiter(r, burst)
	b.limiter.AllowN(now, burst)
	return b
}

// bucket returns the refill rate and burst that keep to limit calls per
// window.
func bucket(limit int, window time.Duration) (rate.Limit, int) {
	burst := min(max(limit/100, 1), 50)
	stretched := window + window/30
	if limit <= burst {
		return rate.Limit(1 / stretched.Seconds() / 2), burst
	}
	return rate.Limit(float64(limit-burst) / stretched.Seconds()), burst
}

// sessionCapacity is how many sessions limit calls per window keep alive
// when each is refreshed once in five sixths of expiration.
func sessionCapacity(limit int, window, expiration time.Duration) int {
	r, _ := bucket(limit, window)
	return int(float64(r) * (expiration - expiration/urgentShare).Seconds())
}

// allow takes a token if one is there; a token taken is a call sent.
func (b *budget) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.limiter.AllowN(now, 1) {
		return false
	}
	b.trim(now)
	b.sent = append(b.sent, now)
	return true
}

// spent is how many calls were sent within the last window.
func (b *budget) spent(now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spentLocked(now)
}

func (b *budget) spentLocked(now time.Time) int {
	b.trim(now)
	return len(b.sent) - b.head
}

// current is the limit in force, calls per window.
func (b *budget) current() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limit
}

func (b *budget) trim(now time.Time) {
	for b.head < len(b.sent) && now.Sub(b.sent[b.head]) >= b.window {
		b.head++
	}
	if b.head > len(b.sent)/2 {
		b.sent = append(b.sent[:0], b.sent[b.head:]...)
		b.head = 0
	}
}

// throttled takes in a 429 to a call sent at sent: unless the limit was
// cut since, it drops to nine tenths of the calls sent in the last
// window, to half of it at most, never below the floor. It reports
// whether the limit changed.
func (b *budget) throttled(now, sent time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.quietLocked(now)
	if sent.Before(b.cutAt) {
		return false // an answer to a call sent before the last cut
	}
	learned := b.spentLocked(now) * 9 / 10
	limit := max(learned, b.limit/2, b.configured/20, 1)
	if limit >= b.limit {
		return false
	}
	b.cutAt = now
	if learned >= b.limit/2 {
		b.ceiling = learned // Graph refused what was sent at the limit
	} else {
		b.ceiling = max(b.ceiling, b.limit)
	}
	b.set(limit, now)
	return true
}

// quiet starts the wait for a window without a 429 at t, unless it
// starts later already. A window paused for a Retry-After is no sign
// that Graph accepts more, so the writer calls quiet with the pause's end.
func (b *budget) quiet(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.quietLocked(t)
}

func (b *budget) quietLocked(t time.Time) {
	if t.After(b.quietSince) {
		b.quietSince = t
	}
}

// recover grows the limit back after each window without a 429: doubling
// up to the ceiling, by an eighth above it, up to the configured budget.
// It reports whether the limit changed.
func (b *budget) recover(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit >= b.configured || now.Sub(b.quietSince) < b.window {
		return false
	}
	b.quietSince = now
	next := min(2*b.limit, b.ceiling)
	if b.limit >= b.ceiling {
		next = b.limit + max(b.limit/8, 1)
	}
	b.set(min(next, b.configured), now)
	return true
}

func (b *budget) set(limit int, now time.Time) {
	b.limit = limit
	r, burst := bucket(limit, b.window)
	b.limiter.SetLimitAt(now, r)
	b.limiter.SetBurstAt(now, burst)
}
