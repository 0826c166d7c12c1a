package emulator

import (
	"sync"
	"time"
)

// Clock tells the emulator the time. Every timeout, expiration, token
// lifetime and throttling window is computed from it when a request
// arrives, so a FakeClock drives them all without background timers.
type Clock interface {
	Now() time.Time
}

// advancer is a Clock that POST /_emulator/clock/advance may move.
type advancer interface {
	Clock
	Advance(d time.Duration)
}

// systemClock is the real time.
type systemClock struct{}

// Now returns the real time.
func (systemClock) Now() time.Time { return time.Now() }

// FakeClock is a Clock that moves only when told to. It is safe for
// concurrent use.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a FakeClock set to t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{now: t} }

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the fake time forward by d; a negative d is ignored.
func (c *FakeClock) Advance(d time.Duration) {
	if d < 0 {
		return
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set sets the fake time to t.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// offsetClock is the real time plus an offset that Advance grows. A
// standalone emulator with admin.test_clock uses it: time flows as usual,
// and the admin API can jump ahead.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the real time plus the offset.
func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance grows the offset by d; a negative d is ignored.
func (c *offsetClock) Advance(d time.Duration) {
	if d < 0 {
		return
	}
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}
