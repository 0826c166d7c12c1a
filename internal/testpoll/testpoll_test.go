package testpoll

import (
	"sync/atomic"
	"testing"
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
