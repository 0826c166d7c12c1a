package bridge

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/engine"
	"github.com/presence-bridge/presence-bridge/bridge/worker"
)

type applyFunc func(ctx context.Context, tenant, userID string, ev adapters.Event) error

func (f applyFunc) Apply(ctx context.Context, tenant, userID string, ev adapters.Event) error {
	return f(ctx, tenant, userID, ev)
}

// TestRefusals: only a state too large becomes permanent (dead-lettered);
// a failed KV write and anything else stay retryable.
func TestRefusals(t *testing.T) {
	tooLarge := fmt.Errorf("%w for u1: 70000 bytes encoded, over the limit of 65536", engine.ErrStateTooLarge)
	kvDown := errors.New("write state of u1: nats: timeout")
	for _, tt := range []struct {
		name      string
		err       error
		permanent bool
	}{
		{"applied", nil, false},
		{"state too large", tooLarge, true},
		{"kv write failed", kvDown, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := refusals{next: applyFunc(func(context.Context, string, string, adapters.Event) error { return tt.err })}
			err := a.Apply(context.Background(), "contoso.example", "u1", adapters.Event{})
			var permanent *worker.PermanentError
			if got := errors.As(err, &permanent); got != tt.permanent {
				t.Fatalf("error %v: permanent %v, want %v", err, got, tt.permanent)
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v does not wrap %v", err, tt.err)
			}
		})
	}
}
