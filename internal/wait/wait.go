// Package wait pauses a goroutine until a moment comes or its context
// ends: the one sleep helper of the module.
package wait

import (
	"context"
	"time"
)

// Sleep waits d or until ctx ends, and reports whether ctx is still live.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	return For(ctx, t.C)
}

// For waits until c delivers or ctx ends, and reports whether ctx is
// still live. It lets a caller sleep on a clock of its own (one a test
// moves), as Sleep sleeps on the real one.
func For(ctx context.Context, c <-chan time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-c:
		return ctx.Err() == nil
	}
}
