package guid

// Map maps ids to V, an id that is a GUID in its lowercase canonical
// form by its 16 bytes (GUIDs), any other by its string (Other): a map
// of people by Entra object id then needs no string beside each key. A
// map keeps the room it grew to, so once a Map has shrunk to a quarter
// of the most it held, Delete builds it again at its size. The zero
// value is empty and ready to use.
type Map[V any] struct {
	GUIDs map[GUID]V
	Other map[string]V
	// high is the most both maps held since they were last built.
	high int
}

// Len returns how many ids m holds.
func (m *Map[V]) Len() int { return len(m.GUIDs) + len(m.Other) }

// Get returns id's value.
func (m *Map[V]) Get(id string) (V, bool) {
	var v V
	var ok bool
	if g, isGUID := Parse(id); isGUID {
		v, ok = m.GUIDs[g]
	} else {
		v, ok = m.Other[id]
	}
	return v, ok
}

// Put sets id's value.
func (m *Map[V]) Put(id string, v V) {
	if g, ok := Parse(id); ok {
		if m.GUIDs == nil {
			m.GUIDs = map[GUID]V{}
		}
		m.GUIDs[g] = v
	} else {
		if m.Other == nil {
			m.Other = map[string]V{}
		}
		m.Other[id] = v
	}
	m.high = max(m.high, m.Len())
}

// Delete removes id.
func (m *Map[V]) Delete(id string) {
	if g, ok := Parse(id); ok {
		delete(m.GUIDs, g)
	} else {
		delete(m.Other, id)
	}
	if n := m.Len(); n < m.high/4 {
		m.GUIDs, m.Other, m.high = rebuilt(m.GUIDs), rebuilt(m.Other), n
	}
}

// Update calls change with every id (made into a string only when called)
// and its value, and keeps the value it returns.
func (m *Map[V]) Update(change func(id func() string, v V) V) {
	for g, v := range m.GUIDs {
		m.GUIDs[g] = change(g.String, v)
	}
	for id, v := range m.Other {
		m.Other[id] = change(func() string { return id }, v)
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
