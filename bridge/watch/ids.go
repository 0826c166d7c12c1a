package watch

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"slices"
)

// What the watcher holds per person is kept by a compact id (issue 23):
// a person's id is nearly always an Entra object id, a GUID, which the
// watcher lowers, so it is kept in its 16 bytes, with no string beside
// it; any other id is kept as a string.

// guid is a GUID id in its 16 bytes.
type guid [16]byte

// parseGUID reads an id in the lowercase canonical form of a GUID
// (8-4-4-4-12 hex digits), the form String gives back; any other id
// (upper case too, as it would not come back the same) is false.
func parseGUID(id string) (guid, bool) {
	var g guid
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return g, false
	}
	var digits [32]byte
	n := 0
	for i := range len(id) {
		c := id[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			continue
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
			digits[n] = c
			n++
		default:
			return g, false
		}
	}
	if _, err := hex.Decode(g[:], digits[:]); err != nil {
		return g, false
	}
	return g, true
}

// text writes g in the lowercase canonical form.
func (g guid) text() [36]byte {
	var b [36]byte
	hex.Encode(b[0:8], g[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], g[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], g[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], g[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], g[10:16])
	return b
}

func (g guid) String() string {
	b := g.text()
	return string(b[:])
}

// compare orders g's canonical form and s as strings.Compare would,
// without making a string of g.
func (g guid) compare(s string) int {
	b := g.text()
	for i := range min(len(b), len(s)) {
		if b[i] != s[i] {
			return cmp.Compare(b[i], s[i])
		}
	}
	return cmp.Compare(len(b), len(s))
}

// byID maps person ids to V, a GUID id by its 16 bytes. The zero value
// is empty and ready to use. A map keeps its room when people leave, so
// one that has shrunk to a quarter of its most is built again.
type byID[V any] struct {
	guids map[guid]V
	other map[string]V
	// high is the most both maps held since they were last built.
	high int
}

func (m *byID[V]) len() int { return len(m.guids) + len(m.other) }

func (m *byID[V]) get(id string) (V, bool) {
	var v V
	var ok bool
	if g, isGUID := parseGUID(id); isGUID {
		v, ok = m.guids[g]
	} else {
		v, ok = m.other[id]
	}
	return v, ok
}

func (m *byID[V]) put(id string, v V) {
	if g, ok := parseGUID(id); ok {
		if m.guids == nil {
			m.guids = map[guid]V{}
		}
		m.guids[g] = v
	} else {
		if m.other == nil {
			m.other = map[string]V{}
		}
		m.other[id] = v
	}
	m.high = max(m.high, m.len())
}

func (m *byID[V]) delete(id string) {
	if g, ok := parseGUID(id); ok {
		delete(m.guids, g)
	} else {
		delete(m.other, id)
	}
	if n := m.len(); n < m.high/4 {
		m.guids, m.other, m.high = rebuilt(m.guids), rebuilt(m.other), n
	}
}

// rebuilt returns a copy of m with no more room than it needs, nil when
// m is empty.
func rebuilt[K comparable, V any](m map[K]V) map[K]V {
	if len(m) == 0 {
		return nil
	}
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// people are who a cycle reads, each once: the watched people listed
// (the listing's own slice, shared), and the others (session holders
// outside the watch, and with `users: directory` the people events
// named), GUIDs and other ids apart; each part sorted. It is never
// changed in place: setPeople makes a new one.
type people struct {
	listed []string
	guids  []guid
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
		if c.guids < len(p.guids) && (from == none || p.guids[c.guids].compare(id) < 0) {
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
func listedHasGUID(list []string, g guid) bool {
	_, ok := slices.BinarySearchFunc(list, g, func(s string, g guid) int { return -g.compare(s) })
	return ok
}

// compareGUIDs orders GUIDs as their canonical forms are ordered.
// Their bytes are compared as two big-endian numbers: bytes.Compare made
// sorting most of setPeople's time.
func compareGUIDs(a, b guid) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]))
}
