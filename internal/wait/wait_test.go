package wait

import (
	"context"
	"testing"
	"time"
)

// TestFor: For returns true when its channel delivers, false once the
// context has ended.
func TestFor(t *testing.T) {
	ready := make(chan time.Time, 1)
	ready <- time.Time{}
	if !For(context.Background(), ready) {
		t.Fatal("For reported an ended context while it was live")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if For(ctx, make(chan time.Time)) {
		t.Fatal("For reported a live context after it ended")
	}
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep waited out an hour on an ended context")
	}
}
