package writer

import "github.com/presence-bridge/presence-bridge/internal/guid"

// idleSet holds the idle users by idleID. A user id is nearly always an
// Entra object id, a GUID: such an id is kept in its 16 bytes, as the key
// of a map that needs no string beside it, about half of what a string
// key costs a person; any other id is kept as a string. The zero value is
// empty and ready to use.
type idleSet struct {
	guids map[guid.GUID]idleUser
	other map[string]idleUser
	// highs are the maps' high-water marks (compact).
	highGUIDs, highOther int
}

func (s *idleSet) len() int { return len(s.guids) + len(s.other) }

func (s *idleSet) get(id string) (idleUser, bool) {
	var u idleUser
	var ok bool
	if g, isGUID := guid.Parse(id); isGUID {
		u, ok = s.guids[g]
	} else {
		u, ok = s.other[id]
	}
	return u, ok
}

func (s *idleSet) put(id string, u idleUser) {
	if g, ok := guid.Parse(id); ok {
		if s.guids == nil {
			s.guids = map[guid.GUID]idleUser{}
		}
		s.guids[g] = u
		return
	}
	if s.other == nil {
		s.other = map[string]idleUser{}
	}
	s.other[id] = u
}

func (s *idleSet) delete(id string) {
	if g, ok := guid.Parse(id); ok {
		delete(s.guids, g)
	} else {
		delete(s.other, id)
	}
}

// update calls change for every idle user, and keeps what it returns.
func (s *idleSet) update(change func(id func() string, u idleUser) idleUser) {
	for g, u := range s.guids {
		s.guids[g] = change(func() string { return g.String() }, u)
	}
	for id, u := range s.other {
		s.other[id] = change(func() string { return id }, u)
	}
}

// compact shrinks the maps once they have emptied (compact.go).
func (s *idleSet) compact() {
	s.guids = shrinkMap(s.guids, &s.highGUIDs)
	s.other = shrinkMap(s.other, &s.highOther)
}
