package state

import (
	"context"
	"hash/maphash"
)

// keyLocks lets one write at a time run for a key in this process. Two
// writes of one user's state at once (the apply stage's and the writer's)
// would otherwise race to the same revision: one loses the
// compare-and-set, reads the state again and writes again. Waiting for
// the first costs neither a refused write nor a read. Keys share a lock
// with others of the same hash, so their number stays fixed; a write
// from another process still meets the compare-and-set.
type keyLocks struct {
	seed  maphash.Seed
	slots [keyLockSlots]chan struct{}
}

const keyLockSlots = 512

func newKeyLocks() *keyLocks {
	l := &keyLocks{seed: maphash.MakeSeed()}
	for i := range l.slots {
		l.slots[i] = make(chan struct{}, 1)
	}
	return l
}

// lock waits for key's lock, or for ctx to end; the caller calls unlock
// once written.
func (l *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	slot := l.slots[maphash.String(l.seed, key)%keyLockSlots]
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
