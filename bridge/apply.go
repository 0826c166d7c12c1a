package bridge

import (
	"context"
	"errors"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/engine"
	"github.com/presence-bridge/presence-bridge/bridge/worker"
)

// refusals hands events to the engine and turns what the engine can never
// store (a user's state over its size limit) into the worker's permanent
// error, so that the event is dead-lettered with the reason instead of
// retried forever. Every other error stays retryable.
type refusals struct {
	next worker.Applier
}

var _ worker.Applier = refusals{}

// Apply applies ev through the wrapped applier.
func (r refusals) Apply(ctx context.Context, tenant, userID string, ev adapters.Event) error {
	err := r.next.Apply(ctx, tenant, userID, ev)
	if errors.Is(err, engine.ErrStateTooLarge) {
		return &worker.PermanentError{Reason: "event not stored", Err: err}
	}
	return err
}
