package writer

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/presence-bridge/presence-bridge/bridge/fault"
)

// callTimeout bounds one Graph call (shorter while the lease runs out).
const callTimeout = 30 * time.Second

// Every Graph request the writer makes goes behind the tenant's circuit
// breaker and within its lease: graphCall.

// newBreaker returns the circuit breaker of a tenant's Graph writes:
// failures consecutive retryable failures open it for timeout; half-open
// it lets one call through. It runs on real time (gobreaker takes no
// clock).
func newBreaker(tenant string, failures uint32, timeout time.Duration, log *slog.Logger) *gobreaker.CircuitBreaker[struct{}] {
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         "graph writes:" + tenant,
		MaxRequests:  1,
		Timeout:      timeout,
		ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		IsSuccessful: breakerSuccess,
		OnStateChange: func(_ string, from, to gobreaker.State) {
			log.Warn("circuit breaker", "from", from.String(), "to", to.String())
		},
	})
}

// breakerSuccess reports whether an answer counts as Graph working: all
// but the retryable failures do (a 429 or a refusal is Graph answering).
func breakerSuccess(err error) bool {
	if err == nil {
		return true
	}
	class, _ := fault.Of(err)
	return class != fault.Retry
}

// leaseLeft is how long the writer may still call Graph: zero or less once
// the lease may have passed to another instance.
func (w *writer) leaseLeft() time.Duration {
	if w.lease == nil {
		return 0
	}
	return w.lease.Left()
}

// fenced reports whether the lease may have passed to another instance.
func (w *writer) fenced() bool { return w.leaseLeft() <= 0 }

// graphCall makes one Graph request behind the breaker, cut off at the
// lease's end (a deposed writer's request must reach Graph before the new
// holder can start), and notes in r whether it reached Graph: a request
// the breaker turned away is r.rejected, a retryable failure.
func (w *writer) graphCall(ctx context.Context, r *result, do func(context.Context) error) error {
	_, err := w.breaker.Execute(func() (struct{}, error) {
		callCtx, cancel := context.WithTimeout(ctx, min(callTimeout, w.leaseLeft()))
		defer cancel()
		return struct{}{}, do(callCtx)
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		r.err, r.class, r.rejected = err, fault.Retry, true
		return err
	}
	r.graph = true
	return err
}
