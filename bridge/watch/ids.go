package watch

import (
	"slices"

	"github.com/presence-bridge/presence-bridge/internal/guid"
)

// What the watcher holds per person is kept by a compact id (issue 23):
// a person's id is nearly always an Entra object id, a GUID, which the
// watcher lowers, so it is kept in its 16 bytes, with no string beside
// it; any other id is kept as a string.

// people are who a cycle reads, each once: the watched people listed
// (the listing's own slice, shared), and the others (session holders
// outside the watch, and with `users: directory` the people events
// named), GUIDs and other ids apart; each part sorted. It is never
// changed in place: setPeople makes a new one.
type people struct {
	listed []string
	guids  []guid.GUID
	other  []string
}

func (p people) len() int { return len(p.listed) + len(p.guids) + len(p.other) }

// cursor is how far a cycle has read into its people.
type cursor struct{ listed, guids, other int }

// next returns the next n ids after c, in the order of their strings,
// and moves c past them; fewer at the end, none past it.
func (p people) next(c *cursor, n int) []string {
	var out []string
	for len(out) < n {
		const none, listed, guids, other = 0, 1, 2, 3
		from, id := none, ""
		if c.listed < len(p.listed) {
			from, id = listed, p.listed[c.listed]
		}
		if c.other < len(p.other) && (from == none || p.other[c.other] < id) {
			from, id = other, p.other[c.other]
		}
		if c.guids < len(p.guids) && (from == none || p.guids[c.guids].CompareString(id) < 0) {
			from, id = guids, p.guids[c.guids].String()
		}
		switch from {
		case none:
			return out
		case listed:
			c.listed++
		case guids:
			c.guids++
		case other:
			c.other++
		}
		out = append(out, id)
	}
	return out
}

// done reports whether c has read all of p.
func (p people) done(c cursor) bool {
	return c.listed >= len(p.listed) && c.guids >= len(p.guids) && c.other >= len(p.other)
}

// listedHas reports whether id is in the sorted list.
func listedHas(list []string, id string) bool {
	_, ok := slices.BinarySearch(list, id)
	return ok
}

// listedHasGUID reports whether g's canonical form is in the sorted list.
func listedHasGUID(list []string, g guid.GUID) bool {
	_, ok := slices.BinarySearchFunc(list, g, func(s string, g guid.GUID) int { return -g.CompareString(s) })
	return ok
}
