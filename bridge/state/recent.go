package state

import (
	"bytes"
	"sync"
)

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
//
// It also holds each write still waiting for its answer, with the bytes
// written: a watcher of the bucket is often sent a write before the
// writer learns its revision, and the bytes tell it the state is the one
// being written.
type recentStates struct {
	mu      sync.Mutex
	max     int
	states  map[string]recentState
	writing map[string]*write
}

type recentState struct {
	rev uint64
	st  UserState
}

// write is a state being written and its encoding.
type write struct {
	data []byte
	st   UserState
}

func newRecentStates(max int) *recentStates {
	return &recentStates{max: max, states: make(map[string]recentState), writing: make(map[string]*write)}
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

// getAt returns the state remembered for key, not a copy, if it is at
// revision rev, or if data, the state stored at rev, is what a write
// still under way wrote; and the revision remembered (0 when none).
func (r *recentStates) getAt(key string, rev uint64, data []byte) (UserState, uint64, bool) {
	r.mu.Lock()
	s, ok := r.states[key]
	w := r.writing[key]
	r.mu.Unlock()
	switch {
	case ok && s.rev == rev:
		return s.st, s.rev, true
	case w != nil && bytes.Equal(w.data, data):
		return w.st, rev, true
	}
	return UserState{}, s.rev, false
}

// put remembers st at rev for key: a copy of it when the caller keeps
// it (keep), else st itself.
func (r *recentStates) put(key string, rev uint64, st UserState, keep bool) {
	if keep {
		st = copyState(st)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keep(key, rev, st)
}

// keep remembers st at rev for key; r.mu is held.
func (r *recentStates) keep(key string, rev uint64, st UserState) {
	if _, ok := r.states[key]; !ok && len(r.states) >= r.max {
		for k := range r.states {
			delete(r.states, k)
			break
		}
	}
	r.states[key] = recentState{rev: rev, st: st}
}

// begin records that st, encoded as data, is being written to key (a
// copy of it when the caller keeps it); the caller ends it with end. Of
// two writes to one key at once, the later one is held.
func (r *recentStates) begin(key string, data []byte, st UserState, keep bool) *write {
	if keep {
		st = copyState(st)
	}
	w := &write{data: data, st: st}
	r.mu.Lock()
	r.writing[key] = w
	r.mu.Unlock()
	return w
}

// end ends w: stored at rev when ok (it is then the state remembered),
// else refused or lost.
func (r *recentStates) end(key string, w *write, rev uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.writing[key] == w {
		delete(r.writing, key)
	}
	if ok {
		r.keep(key, rev, w.st)
	} else {
		delete(r.states, key)
	}
}

func (r *recentStates) drop(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.states, key)
}
