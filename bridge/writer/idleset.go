package writer

import "encoding/hex"

// idleSet holds the idle users by idleID. A user id is nearly always an
// Entra object id, a GUID: such an id is kept in its 16 bytes, as the key
// of a map that needs no string beside it, about half of what a string
// key costs a person; any other id is kept as a string. The zero value is
// empty and ready to use.
type idleSet struct {
	guids map[[16]byte]idleUser
	other map[string]idleUser
	// highs are the maps' high-water marks (compact).
	highGUIDs, highOther int
}

func (s *idleSet) len() int { return len(s.guids) + len(s.other) }

func (s *idleSet) get(id string) (idleUser, bool) {
	var u idleUser
	var ok bool
	if g, isGUID := parseGUID(id); isGUID {
		u, ok = s.guids[g]
	} else {
		u, ok = s.other[id]
	}
	return u, ok
}

func (s *idleSet) put(id string, u idleUser) {
	if g, ok := parseGUID(id); ok {
		if s.guids == nil {
			s.guids = map[[16]byte]idleUser{}
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
	if g, ok := parseGUID(id); ok {
		delete(s.guids, g)
	} else {
		delete(s.other, id)
	}
}

// update calls change for every idle user, and keeps what it returns.
func (s *idleSet) update(change func(id func() string, u idleUser) idleUser) {
	for g, u := range s.guids {
		s.guids[g] = change(func() string { return formatGUID(g) }, u)
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

// parseGUID reads a GUID in its lowercase canonical form
// (8-4-4-4-12 hex digits), the form formatGUID gives back.
func parseGUID(id string) ([16]byte, bool) {
	var g [16]byte
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return g, false
	}
	var digits [32]byte
	n := 0
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			continue
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
			digits[n] = c
			n++
		default:
			return g, false // upper case too: it would not come back the same
		}
	}
	if _, err := hex.Decode(g[:], digits[:]); err != nil {
		return g, false
	}
	return g, true
}

// formatGUID writes g in the lowercase canonical form.
func formatGUID(g [16]byte) string {
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
	return string(b[:])
}
