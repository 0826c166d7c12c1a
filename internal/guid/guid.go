// Package guid keeps a GUID, the form of an Entra object id, in its 16
// bytes instead of a 36-character string: a map keyed by GUIDs needs no
// string beside each key, about half of what a string key costs.
package guid

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
)

// GUID is a GUID's 16 bytes.
type GUID [16]byte

// Parse reads a GUID in its lowercase canonical form (8-4-4-4-12 hex
// digits), the form String gives back; any other string, upper case
// included, is not one (it would not come back the same).
func Parse(s string) (GUID, bool) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, false
	}
	var digits [32]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
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

// String writes g in the lowercase canonical form.
func (g GUID) String() string {
	b := g.text()
	return string(b[:])
}

func (g GUID) text() [36]byte {
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

// CompareString orders g's canonical form and s as strings.Compare
// would, without making a string of g.
func (g GUID) CompareString(s string) int {
	b := g.text()
	for i := range min(len(b), len(s)) {
		if b[i] != s[i] {
			return cmp.Compare(b[i], s[i])
		}
	}
	return cmp.Compare(len(b), len(s))
}

// Compare orders GUIDs as their canonical forms are ordered: their bytes
// compared as two big-endian numbers, faster than bytes.Compare.
func Compare(a, b GUID) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]))
}
