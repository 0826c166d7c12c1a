package writer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/presence-bridge/presence-bridge/bridge/fault"
)

// TestBreakerSuccess: only retryable failures count against Graph.
func TestBreakerSuccess(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"answered", nil, true},
		{"network or 5xx", err503, false},
		{"timeout", context.DeadlineExceeded, false},
		{"throttled", err429, true},
		{"refused", err403, true},
		{"permanent", err400, true},
	} {
		if got := breakerSuccess(tt.err); got != tt.want {
			t.Errorf("%s: breakerSuccess = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestGraphCall: a call reaches Graph within the lease; after failures
// in a row the breaker turns calls away before Graph, as rejected
// retryable failures; a fenced writer's call gets a context already over.
func TestGraphCall(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := &writer{breaker: newBreaker("t", 2, time.Hour, log)}
	w.fenceAt(time.Now().Add(10 * time.Second))
	var deadline time.Time
	calls := 0
	fail := func(ctx context.Context) error {
		calls++
		deadline, _ = ctx.Deadline()
		return err503
	}
	for i := range 2 {
		var r result
		if err := w.graphCall(context.Background(), &r, fail); !errors.Is(err, err503) || !r.graph || r.rejected {
			t.Fatalf("call %d: err %v, graph %v, rejected %v", i, err, r.graph, r.rejected)
		}
		if left := time.Until(deadline); left > 10*time.Second || left < 5*time.Second {
			t.Fatalf("call %d's deadline is %s away, want the lease's 10 s, not callTimeout's 30 s", i, left)
		}
	}
	if w.breaker.State() != gobreaker.StateOpen {
		t.Fatalf("breaker %s after 2 failures, want open", w.breaker.State())
	}
	var r result
	if err := w.graphCall(context.Background(), &r, fail); err == nil || r.graph || !r.rejected || r.class != fault.Retry || calls != 2 {
		t.Fatalf("open breaker: err %v, graph %v, rejected %v, class %v, %d calls", err, r.graph, r.rejected, r.class, calls)
	}

	w = &writer{breaker: newBreaker("t", 2, time.Hour, log)}
	w.fenceAt(time.Now().Add(-time.Second))
	var ctxErr error
	_ = w.graphCall(context.Background(), &result{}, func(ctx context.Context) error { ctxErr = ctx.Err(); return ctxErr })
	if !errors.Is(ctxErr, context.DeadlineExceeded) {
		t.Fatalf("a fenced writer's call ran with context error %v", ctxErr)
	}
}
