package state

import (
	"strconv"
	"testing"
)

// TestRecentStatesBounded (issue 23): the store remembers at most
// recentStatesMax states, however many users it writes, and a user it
// still remembers is found at its revision.
func TestRecentStatesBounded(t *testing.T) {
	r := newRecentStates(recentStatesMax)
	for i := range 3 * recentStatesMax {
		r.put("k"+strconv.Itoa(i), uint64(i+1), UserState{UserID: "u" + strconv.Itoa(i)})
	}
	if n := len(r.states); n != recentStatesMax {
		t.Fatalf("%d states remembered, want %d", n, recentStatesMax)
	}
	if recentStatesMax > 10_000 {
		t.Fatalf("recentStatesMax %d: a copy of every person in a call of a large tenant", recentStatesMax)
	}
	for key, s := range r.states {
		st, rev, ok := r.getAt(key, s.rev)
		if !ok || rev != s.rev || st.UserID != s.st.UserID {
			t.Fatalf("getAt(%s, %d) = %v, %d, %v", key, s.rev, st.UserID, rev, ok)
		}
		break
	}
}
