// Package testpoll waits, in tests, for a condition to hold: it polls
// with a growing pause, so that a condition met at once costs little and
// a slow one does not spin, and fails the test after a deadline generous
// enough for a busy machine, which costs time only when the test fails.
package testpoll

import (
	"testing"
	"time"
)

// Deadline is how long Until waits.
const Deadline = 60 * time.Second

// Until polls cond until it holds, and fails tb, naming what it waited
// for, when Deadline passes first.
func Until(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(Deadline)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", Deadline, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}
