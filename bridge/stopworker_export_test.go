package bridge

import (
	"context"
)

// StopWorker stops what Stop stops behind ingest, in the same way (the
// connect-out sources, the consumer, calendar subscriptions, the writers
// and the history), and leaves the HTTP ingest and NATS running, so that
// a benchmark can store a backlog that nothing reads yet.
func (b *Bridge) StopWorker(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running.Store(false)
	return b.stopWorker(ctx)
}

// StartWorker starts what StopWorker stopped, as connect does.
func (b *Bridge) StartWorker(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.startWorker(ctx); err != nil {
		return err
	}
	b.running.Store(true)
	return nil
}

// Processed is how many events the apply stage has settled, whatever
// the outcome.
func (b *Bridge) Processed() float64 {
	return b.metrics.Settled()
}

// Applied is how many events the apply stage has applied.
func (b *Bridge) Applied() float64 { return b.metrics.Outcome("applied") }

// WriterCaughtUp reports whether this bridge writes for tenant and its
// writer has read the states stored before it started.
func (b *Bridge) WriterCaughtUp(tenant string) bool {
	_, w, _ := b.runningStages()
	return w != nil && w.CaughtUp(tenant)
}
