package writer

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// A writer that starts reads the tenant's stored states first through a
// pull consumer (catchUp), which holds at most catchUpBatch of them at a
// time, and only then watches the bucket from the revision after the
// last one read. A KV watch pushes everything stored at once, and NATS
// lets a push consumer's client hold up to 32 MB of messages not yet
// taken: with 100,000 people that was the largest part of a restart's
// peak memory (issue 23).

// catchUpBatch is how many stored states the writer asks for at a time.
const catchUpBatch = 256

// catchUp takes in every user state of the tenant stored now, the newest
// of each key, and returns the last revision it read (0: none).
func (w *writer) catchUp(ctx context.Context) (uint64, error) {
	js := w.e.opts.JetStream
	if js == nil {
		return 0, nil // the watch alone reads them
	}
	bucket := w.e.store.KV().Bucket()
	prefix := "$KV." + bucket + "."
	cons, err := js.OrderedConsumer(ctx, "KV_"+bucket, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + state.UserKeys(w.tenant.ID)},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return 0, fmt.Errorf("read stored user states: %w", err)
	}
	if cons.CachedInfo().NumPending == 0 {
		return 0, nil
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(catchUpBatch))
	if err != nil {
		return 0, fmt.Errorf("read stored user states: %w", err)
	}
	defer msgs.Stop()
	var last uint64
	for {
		msg, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			return 0, fmt.Errorf("read stored user states: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return 0, fmt.Errorf("read stored user states: %w", err)
		}
		e := storedEntry{bucket: bucket, key: msg.Subject()[len(prefix):], value: msg.Data(), rev: meta.Sequence.Stream, created: meta.Timestamp}
		switch msg.Headers().Get("KV-Operation") {
		case "DEL":
			e.op = jetstream.KeyValueDelete
		case "PURGE":
			e.op = jetstream.KeyValuePurge
		}
		w.takeEntry(e)
		w.watched.Store(e.rev)
		last = e.rev
		if meta.NumPending == 0 {
			return last, nil
		}
	}
}

// storedEntry is a stored state read by catchUp, as a KV watch gives it.
type storedEntry struct {
	bucket, key string
	value       []byte
	rev         uint64
	created     time.Time
	op          jetstream.KeyValueOp
}

func (e storedEntry) Bucket() string                  { return e.bucket }
func (e storedEntry) Key() string                     { return e.key }
func (e storedEntry) Value() []byte                   { return e.value }
func (e storedEntry) Revision() uint64                { return e.rev }
func (e storedEntry) Created() time.Time              { return e.created }
func (e storedEntry) Delta() uint64                   { return 0 }
func (e storedEntry) Operation() jetstream.KeyValueOp { return e.op }
