package bridge

// StopWorker stops the bridge's consumer and engine and leaves its HTTP
// ingest running, so that a benchmark can measure ingest alone: events
// are stored in JetStream and nothing reads them.
func (b *Bridge) StopWorker() {
	if b.stopConsume != nil {
		b.stopConsume()
		b.stopConsume = nil
	}
	if b.stopWriters != nil {
		b.stopWriters()
		b.stopWriters = nil
	}
}
