package writer

import (
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
// (lease.go).
//
// Learning a lower limit: Microsoft raised the presence limit to 10,000
// per 30 s, but a tenant may still be held to less (1,500 before
// September 2025). On a 429 the limit drops to nine tenths of the calls
// Graph accepted in the window before it (never below a twentieth of the
// configured budget, and never up), so the next windows stay just under
// what Graph let through. After every window without a 429 it grows back
// by a fiftieth of the configured budget, until it reaches the budget
// again: a tenant held to 1,500 sees one 429 every few windows while it is
// busy, not a storm.
type budget struct {
	configured int
	window     time.Duration
	limit      int // calls per window now
	limiter    *rate.Limiter
	// accepted are the times of the calls Graph accepted within the last
	// window, oldest first, from head on.
	accepted []time.Time
	head     int
	// quietSince is when the limit was last changed or a 429 came.
	quietSince time.Time
}

func newBudget(configured int, window time.Duration, now time.Time) *budget {
	b := &budget{configured: configured, window: window, limit: configured, quietSince: now}
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

// allow takes a token if one is there.
func (b *budget) allow(now time.Time) bool { return b.limiter.AllowN(now, 1) }

// accept records a call Graph accepted.
func (b *budget) accept(now time.Time) {
	b.trim(now)
	b.accepted = append(b.accepted, now)
}

func (b *budget) trim(now time.Time) {
	for b.head < len(b.accepted) && now.Sub(b.accepted[b.head]) >= b.window {
		b.head++
	}
	if b.head > len(b.accepted)/2 {
		b.accepted = append(b.accepted[:0], b.accepted[b.head:]...)
		b.head = 0
	}
}

// throttled takes a 429 in: the limit drops to what Graph accepted in the
// last window, less a tenth. It reports whether the limit changed.
func (b *budget) throttled(now time.Time) bool {
	b.trim(now)
	b.quietSince = now
	observed := (len(b.accepted) - b.head) * 9 / 10
	limit := max(observed, b.configured/20, 1)
	if limit >= b.limit {
		return false
	}
	b.set(limit, now)
	return true
}

// recover grows the limit back by a fiftieth of the configured budget
// after each window without a 429. It reports whether the limit changed.
func (b *budget) recover(now time.Time) bool {
	if b.limit >= b.configured || now.Sub(b.quietSince) < b.window {
		return false
	}
	b.quietSince = now
	b.set(min(b.limit+max(b.configured/50, 1), b.configured), now)
	return true
}

func (b *budget) set(limit int, now time.Time) {
	b.limit = limit
	r, burst := bucket(limit, b.window)
	b.limiter.SetLimitAt(now, r)
	b.limiter.SetBurstAt(now, burst)
}
