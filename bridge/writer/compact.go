package writer

// Go's maps and slices keep the room they grew to. The writer's indexes
// grow to everyone when a whole tenant is in a call at once, so once most
// of them have gone (people idle again, queues drained) the writer copies
// them into smaller ones (compact), and the room goes back to the
// garbage collector.

// compactFloor is the size below which an index is never copied: the
// room it keeps is too small to matter.
const compactFloor = 1024

// shrinkMap returns m, or a copy of it with room for its entries alone
// once it holds less than a quarter of its high-water mark high (which it
// keeps).
func shrinkMap[K comparable, V any](m map[K]V, high *int) map[K]V {
	*high = max(*high, len(m))
	if *high < compactFloor || len(m) >= *high/4 {
		return m
	}
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	*high = len(m)
	return c
}

// shrinkSlice returns s, or a copy of it with room for its elements
// alone once they fill less than a quarter of its capacity.
func shrinkSlice[T any](s []T) []T {
	if cap(s) < compactFloor || len(s) >= cap(s)/4 {
		return s
	}
	return append(make([]T, 0, len(s)), s...)
}

// highs are the high-water marks of the writer's indexes.
type highs struct{ users, keys, changes, keepAlives, timers int }

// compact shrinks the writer's indexes that have emptied.
func (w *writer) compact() {
	h := &w.highs
	w.users = shrinkMap(w.users, &h.users)
	w.keys = shrinkMap(w.keys, &h.keys)
	w.changes.in = shrinkMap(w.changes.in, &h.changes)
	if w.changes.n < len(w.changes.buf)/4 && len(w.changes.buf) >= compactFloor {
		w.changes.regrow(max(16, 2*w.changes.n))
	}
	w.keepAlives.in = shrinkMap(w.keepAlives.in, &h.keepAlives)
	w.keepAlives.h = shrinkSlice(w.keepAlives.h)
	w.timers.prune()
	w.timers.at = shrinkMap(w.timers.at, &h.timers)
	w.timers.h = shrinkSlice(w.timers.h)
	w.pruneWakes()
	w.wakes = shrinkSlice(w.wakes)
}
