package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Retry delays of KeepConnecting.
const (
	connectRetryMin = 500 * time.Millisecond
	connectRetryMax = 5 * time.Second
)

// KeepConnecting calls connect, which connects a Queue and starts what
// runs on it, in the background until it succeeds or ctx ends, waiting
// longer after each failure (up to connectRetryMax). It logs a failure
// only when its reason changes. stop ends the attempts and waits, bounded
// by its ctx, until the one in hand returns.
func KeepConnecting(ctx context.Context, connect func(context.Context) error, log *slog.Logger) (stop func(context.Context) error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); keepConnecting(ctx, connect, log) }()
	return func(stopCtx context.Context) error {
		cancel()
		select {
		case <-done:
			return nil
		case <-stopCtx.Done():
			return errors.New("stop: timed out waiting for the NATS connection attempt")
		}
	}
}

func keepConnecting(ctx context.Context, connect func(context.Context) error, log *slog.Logger) {
	delay, lastErr := connectRetryMin, ""
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		err := connect(ctx)
		if err == nil {
			log.Info("NATS connected; the bridge is ready")
			return
		}
		if ctx.Err() != nil {
			return
		}
		if err.Error() != lastErr {
			log.Warn("NATS still not available; retrying", "err", err)
			lastErr = err.Error()
		}
		delay = min(2*delay, connectRetryMax)
		timer.Reset(delay)
	}
}

// Down reports why events can not be published while the NATS connection
// is known to be lost (as Ready reports it), nil otherwise, so that ingest
// can answer 503 at once instead of after nats.publish_timeout.
func (q *Queue) Down() error {
	nc := q.Conn()
	if nc == nil {
		return errors.New("NATS is not connected")
	}
	if !nc.IsConnected() {
		return fmt.Errorf("the NATS connection is lost (%s); reconnecting", nc.Status())
	}
	return nil
}
