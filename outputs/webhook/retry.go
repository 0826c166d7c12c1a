package webhook

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Schedule is the Standard Webhooks retry schedule: the pause before
// each try, the first immediately. Tries past its end wait as long as
// its last.
var Schedule = []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// Jitter is the largest share of a pause added at random, so that
// deliveries that failed together do not come back together.
const Jitter = 0.1

// MaxRetryAfter caps the Retry-After a receiver may ask for.
const MaxRetryAfter = 10 * time.Hour

// Pause returns the pause before try n+1 after n tries have failed
// (n >= 1), with jitter; retryAfter, when positive, replaces the
// schedule's pause.
func Pause(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, MaxRetryAfter)
	}
	d := Schedule[min(n, len(Schedule)-1)]
	return d + time.Duration(rand.Float64()*Jitter*float64(d))
}

// RetryAfter reads a Retry-After header, seconds or an HTTP date, as a
// pause from now; 0 when it is absent, malformed or in the past. It
// accepts at most MaxRetryAfter.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 64 {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(n)*time.Second, MaxRetryAfter)
	}
	t, err := http.ParseTime(v)
	if err != nil || !t.After(now) {
		return 0
	}
	return min(t.Sub(now), MaxRetryAfter)
}
