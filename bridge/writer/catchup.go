package writer

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// catchUp takes in every user state of the tenant stored now, a batch at
// a time (state.Store.ReadStored), and returns the last revision it read
// (0: none); the writer then watches from the revision after it.
func (w *writer) catchUp(ctx context.Context) (uint64, error) {
	return w.e.store.ReadStored(ctx, w.tenant.ID, func(e jetstream.KeyValueEntry) {
		w.takeEntry(e)
		w.watched.Store(e.Revision())
	})
}
