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
	poll(tb, d, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// UntilOK polls check until it returns nil, and fails tb when Deadline
// passes first, naming what it waited for and the last error check
// returned, which says what it saw instead.
func UntilOK(tb testing.TB, what string, check func() error) {
	tb.Helper()
	poll(tb, Deadline, what, check)
}

// WithinOK is UntilOK with a deadline of d.
func WithinOK(tb testing.TB, d time.Duration, what string, check func() error) {
	tb.Helper()
	poll(tb, d, what, check)
}

func poll(tb testing.TB, d time.Duration, what string, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(d)
	pause := time.Millisecond
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
		pause = min(2*pause, 50*time.Millisecond)
	}
}
