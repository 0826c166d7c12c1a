package state

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A watcher of the user states that starts (a writer on a restart or a
// new lease, the Teams watcher) reads the states stored first with
// ReadStored, which holds at most storedBatch of them at a time, and only
// then watches the bucket from the revision after the last one read. A
// KV watch pushes everything stored at once, and NATS lets a push
// consumer's client hold up to 32 MB of messages not yet taken: with
// 100,000 people that was the largest part of a restart's peak memory
// (issue 23).

// storedBatch is how many stored states ReadStored asks for at a time.
const storedBatch = 256

// ReadStored hands take every user state of tenant stored now, the newest
// of each key (a deletion as one), as a KV watch would give it, and
// returns the last revision it read (0: none). Watch from the revision
// after it to follow what comes next.
func (s *Store) ReadStored(ctx context.Context, tenant string, take func(jetstream.KeyValueEntry)) (uint64, error) {
	bucket := s.kv.Bucket()
	prefix := "$KV." + bucket + "."
	cons, err := s.js.OrderedConsumer(ctx, "KV_"+bucket, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + UserKeys(tenant)},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return 0, fmt.Errorf("read stored user states: %w", err)
	}
	if cons.CachedInfo().NumPending == 0 {
		return 0, nil
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(storedBatch))
	if err != nil {
		return 0, fmt.Errorf("read stored user states: %w", err)
	}
	defer msgs.Stop()
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
		take(e)
		if meta.NumPending == 0 {
			return e.rev, nil
		}
	}
}

// storedEntry is a stored state read by ReadStored, as a KV watch gives it.
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
