package bridge

import (
	"context"
)

// StopWorker stops the bridge's consumer and writers and leaves its HTTP
// ingest running, so that a benchmark can measure ingest alone: events
// are stored in JetStream and nothing reads them.
func (b *Bridge) StopWorker() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopConsume != nil {
		b.stopConsume()
		b.stopConsume = nil
	}
	if b.stopWriters != nil {
		b.stopWriters()
		b.stopWriters = nil
	}
}

// StartWorker starts what StopWorker stopped.
func (b *Bridge) StartWorker(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.startWorker(ctx)
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
