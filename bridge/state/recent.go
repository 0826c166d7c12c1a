package state

import "sync"

// recentStatesMax bounds the states a Store remembers: about 5 MB at a
// kilobyte a state. It need only cover the states written in the moments
// before the writer takes them from its watch, and a user's events that
// come close together; more would hold a copy of every person in a call
// beside the writer's own (issue 23).
const recentStatesMax = 4096

// recentStates remembers the state a Store last read or wrote for each
// user, decoded, with its revision, so that applying an event usually
// costs one compare-and-set instead of a read, a decoding and a
// compare-and-set. It is a hint: a state someone else changed since fails
// the compare-and-set and is read again. It holds copies (copyState) and
// hands out copies, so a caller may change what it gets. When full, it
// forgets an arbitrary user.
type recentStates struct {
	mu     sync.Mutex
	max    int
	states map[string]recentState
}

type recentState struct {
	rev uint64
	st  UserState
}

func newRecentStates(max int) *recentStates {
	return &recentStates{max: max, states: make(map[string]recentState)}
}

// get returns a copy of the state remembered for key and its revision.
func (r *recentStates) get(key string) (UserState, uint64, bool) {
	r.mu.Lock()
	s, ok := r.states[key]
	r.mu.Unlock()
	if !ok {
		return UserState{}, 0, false
	}
	return copyState(s.st), s.rev, true
}

// getAt returns a copy of the state remembered for key if it is at
// revision rev, and the revision remembered (0 when none).
func (r *recentStates) getAt(key string, rev uint64) (UserState, uint64, bool) {
	r.mu.Lock()
	s, ok := r.states[key]
	r.mu.Unlock()
	if !ok || s.rev != rev {
		return UserState{}, s.rev, false
	}
	return copyState(s.st), s.rev, true
}

// put remembers a copy of st at rev for key.
func (r *recentStates) put(key string, rev uint64, st UserState) {
	st = copyState(st)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.states[key]; !ok && len(r.states) >= r.max {
		for k := range r.states {
			delete(r.states, k)
			break
		}
	}
	r.states[key] = recentState{rev: rev, st: st}
}

func (r *recentStates) drop(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.states, key)
}
