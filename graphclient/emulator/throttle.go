package emulator

import (
	"math"
	"strconv"
	"time"
)

// limiter is Graph's presence throttling: per application per tenant, at
// most limit requests in each fixed window. A window opens with the first
// request after the previous one closed and covers [start, start+window):
// a request exactly at start+window opens the next window. Every request
// counts, throttled ones included, as in Graph.
type limiter struct {
	limit   int
	window  time.Duration
	windows map[string]*fixedWindow // by tenant + "/" + client id
}

type fixedWindow struct {
	start time.Time
	count int
}

func newLimiter(limit int, window time.Duration) *limiter {
	return &limiter{limit: limit, window: window, windows: map[string]*fixedWindow{}}
}

// take counts one request of key at now. Over the limit it returns false
// and how long until the window closes.
func (l *limiter) take(key string, now time.Time) (ok bool, wait time.Duration) {
	w := l.windows[key]
	if w == nil || !now.Before(w.start.Add(l.window)) || now.Before(w.start) {
		w = &fixedWindow{start: now}
		l.windows[key] = w
	}
	w.count++
	if w.count <= l.limit {
		return true, 0
	}
	return false, w.start.Add(l.window).Sub(now)
}

// retryAfterSeconds writes a Retry-After value for wait: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(wait time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
}

// retryAfterExact writes wait as seconds with the fraction kept, such as
// 2.128, the way Graph's throttling documentation shows it.
func retryAfterExact(wait time.Duration) string {
	if wait <= 0 {
		return "0"
	}
	return strconv.FormatFloat(wait.Seconds(), 'f', -1, 64)
}

// errThrottled is Graph's 429 answer.
func errThrottled(retryAfter string) *apiError {
	return &apiError{status: 429, code: "TooManyRequests", message: "Please retry again later.", retryAfter: retryAfter}
}
