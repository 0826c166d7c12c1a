package engine

import "time"

// breaker holds a tenant's Graph calls back after consecutive retryable
// failures, on the engine's clock. Closed, it lets every call through;
// after threshold retryable failures in a row it opens for timeout; then
// it is half-open and lets exactly one call through (the probe): its
// success closes the breaker, its failure opens it again. Only the
// writer's loop uses it.
type breaker struct {
	threshold uint32
	timeout   time.Duration
	failures  uint32
	state     breakerState
	openUntil time.Time
}

type breakerState int

const (
	breakerClosed breakerState = iota
	breakerOpen
	breakerHalfOpen
)

func (s breakerState) String() string {
	return [...]string{"closed", "open", "half-open"}[s]
}

// allow reports whether a call may start at now while inFlight calls are
// under way: half-open, only when none is, so the probe goes alone.
func (b *breaker) allow(now time.Time, inFlight int) bool {
	if b.state == breakerOpen && !now.Before(b.openUntil) {
		b.state = breakerHalfOpen
	}
	switch b.state {
	case breakerClosed:
		return true
	case breakerHalfOpen:
		return inFlight == 0
	}
	return false
}

// record takes a call's outcome; failed is a retryable failure. It
// returns the state before and after.
func (b *breaker) record(failed bool, now time.Time) (from, to breakerState) {
	from = b.state
	switch {
	case !failed:
		b.failures, b.state = 0, breakerClosed
	case b.state == breakerHalfOpen:
		b.state, b.openUntil = breakerOpen, now.Add(b.timeout)
	case b.state == breakerClosed:
		b.failures++
		if b.failures >= b.threshold {
			b.state, b.openUntil = breakerOpen, now.Add(b.timeout)
		}
	}
	return from, b.state
}
