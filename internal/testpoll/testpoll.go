// Package testpoll waits, in tests, for a condition to hold: it polls
// with a growing pause, so that a condition met at once costs little and
// a slow one does not spin, and fails the test after a deadline generous
// enough for a busy machine, which costs time only when the test fails.
package testpoll

import (
	"errors"
	"testing"
	"time"
)

// Deadline is how long Until and UntilOK wait.
const Deadline = 60 * time.Second

// errNotYet is what a condition without a message reports while it
// does not hold.
var errNotYet = errors.New("not yet")

// Until polls cond until it holds, and fails tb, naming what it waited
// for, when Deadline passes first.
func Until(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	Within(tb, Deadline, what, cond)
}

// Within is Until with a deadline of d, for a wait that is long by
// design (a soak, a benchmark's backlog).
func Within(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	poll(tb, d, firstPause, mostPause, what, holds(cond))
}

// UntilOK polls check until it returns nil, and fails tb when Deadline
// passes first, naming what it waited for and the last error check
// returned, which says what it saw instead.
func UntilOK(tb testing.TB, what string, check func() error) {
	tb.Helper()
	poll(tb, Deadline, firstPause, mostPause, what, check)
}

// WithinOK is UntilOK with a deadline of d.
func WithinOK(tb testing.TB, d time.Duration, what string, check func() error) {
	tb.Helper()
	poll(tb, d, firstPause, mostPause, what, check)
}

// Stepping polls cond every pause of real time, with no growth, until it
// holds, and fails tb after Deadline. It is for a cond that moves a fake
// clock one step each time it is asked (the fake time then moves at a
// steady pace, and the code under test has pause of real time to take in
// each step), or one that must be seen soon after it comes to hold.
func Stepping(tb testing.TB, pause time.Duration, what string, cond func() bool) {
	tb.Helper()
	poll(tb, Deadline, pause, pause, what, holds(cond))
}

// holds turns cond into a check.
func holds(cond func() bool) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}
}

// The pause between polls starts at firstPause and doubles up to
// mostPause.
const (
	firstPause = time.Millisecond
	mostPause  = 50 * time.Millisecond
)

// poll asks check until it returns nil, pausing pause and then twice as
// long each time up to most, and fails tb after d.
func poll(tb testing.TB, d, pause, most time.Duration, what string, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			if errors.Is(err, errNotYet) {
				tb.Fatalf("timed out after %s waiting for %s", d, what)
			}
			tb.Fatalf("timed out after %s waiting for %s: %v", d, what, err)
		}
		time.Sleep(pause)
		pause = min(2*pause, most)
	}
}
