package testpoll

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestUntilPollsUntilTheConditionHolds: the condition is asked again
// until it holds, and not after.
func TestUntilPollsUntilTheConditionHolds(t *testing.T) {
	var asked atomic.Int32
	Until(t, "the fifth question", func() bool { return asked.Add(1) == 5 })
	if n := asked.Load(); n != 5 {
		t.Fatalf("asked %d times, want 5", n)
	}
}

// fatalTB records the failure a poll reports and ends the goroutine, as
// testing's Fatalf does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs poll in a goroutine of its own and returns what it failed
// with, or "" when it returned.
func failure(t *testing.T, poll func(tb testing.TB)) string {
	t.Helper()
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		poll(f)
	}()
	<-done
	return f.msg
}

// TestFailuresNameTheWaitAndWhatWasSeen: a wait that times out names
// what it waited for, its deadline and, for UntilOK, the last error.
func TestFailuresNameTheWaitAndWhatWasSeen(t *testing.T) {
	tests := []struct {
		name string
		poll func(tb testing.TB)
		want string
	}{
		{"within", func(tb testing.TB) { Within(tb, 20*time.Millisecond, "the moon", func() bool { return false }) },
			"timed out after 20ms waiting for the moon"},
		{"within holds", func(tb testing.TB) { Within(tb, 20*time.Millisecond, "the sun", func() bool { return true }) }, ""},
		{"ok", func(tb testing.TB) {
			n := 0
			WithinOK(tb, 20*time.Millisecond, "the tide", func() error { n++; return fmt.Errorf("seen %d", min(n, 1)) })
		}, "timed out after 20ms waiting for the tide: seen 1"},
		{"ok holds", func(tb testing.TB) { UntilOK(tb, "the dawn", func() error { return nil }) }, ""},
		{"stepping", func(tb testing.TB) {
			n := 0
			Stepping(tb, time.Millisecond, "the third step", func() bool { n++; return n == 3 })
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := failure(t, tt.poll); got != tt.want {
				t.Fatalf("failed with %q, want %q", got, tt.want)
			}
		})
	}
}

// TestUntilPausesLongerAndLonger: the pause between questions doubles,
// so that a slow condition is not asked in a spin; ten questions take
// at least the first nine pauses, 1+2+...+50 ms.
func TestUntilPausesLongerAndLonger(t *testing.T) {
	start, asked := time.Now(), 0
	Until(t, "the tenth question", func() bool { asked++; return asked == 10 })
	if least := (1 + 2 + 4 + 8 + 16 + 32 + 50 + 50 + 50) * time.Millisecond; time.Since(start) < least {
		t.Fatalf("ten questions in %s, want at least %s", time.Since(start), least)
	}
}
