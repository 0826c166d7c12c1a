package state

import "sync"

// recentStatesMax bounds the states a Store remembers: about 50 MB at a
// kilobyte a state, and every user of a large tenant.
const recentStatesMax = 50_000

// recentStates remembers the state a Store last read or wrote for each
// user, with its revision, so that applying an event usually costs one
// compare-and-set instead of a read and a compare-and-set. It is a hint:
// a state someone else changed since fails the compare-and-set and is
// read again. When full, it forgets an arbitrary user.
type recentStates struct {
	mu     sync.Mutex
	max    int
	states map[string]recentState
}

type recentState struct {
	rev  uint64
	data []byte
}

func newRecentStates(max int) *recentStates {
	return &recentStates{max: max, states: make(map[string]recentState)}
}

func (r *recentStates) get(key string) (uint64, []byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.states[key]
	return s.rev, s.data, ok
}

func (r *recentStates) put(key string, rev uint64, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.states[key]; !ok && len(r.states) >= r.max {
		for k := range r.states {
			delete(r.states, k)
			break
		}
	}
	r.states[key] = recentState{rev: rev, data: data}
}

func (r *recentStates) drop(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.states, key)
}
