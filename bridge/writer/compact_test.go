package writer

import (
	"reflect"
	"strconv"
	"testing"
	"time"
)

// TestCompactReturnsRoom (issue 23): once most users have left the
// writer's indexes (idle again, queues drained), compact copies them into
// smaller ones and drops the stale timers; the entries left are kept.
func TestCompactReturnsRoom(t *testing.T) {
	w := &writer{users: map[string]*tracked{}, keys: map[string]string{}}
	const n = 10 * compactFloor
	for i := range n {
		id := "u" + strconv.Itoa(i)
		w.users[id] = &tracked{}
		w.changes.push(id)
		w.timers.set(id, t0.Add(4*time.Hour)) // a call's deadline
	}
	w.compact()
	before := reflect.ValueOf(w.users).Pointer()
	for i := range n - 10 {
		id := "u" + strconv.Itoa(i)
		delete(w.users, id)
		w.changes.pop()
		w.timers.set(id, t0.Add(time.Hour)) // the old deadline is stale now
		w.timers.clear(id)                  // and the user idle
	}
	w.compact()
	if reflect.ValueOf(w.users).Pointer() == before || len(w.users) != 10 || w.users["u"+strconv.Itoa(n-1)] == nil {
		t.Fatalf("users not copied into a smaller map (%d left)", len(w.users))
	}
	if len(w.changes.buf) > 32 || w.changes.len() != 10 {
		t.Fatalf("the change queue keeps a ring of %d for %d users", len(w.changes.buf), w.changes.len())
	}
	if id, ok := w.changes.front(); !ok || id != "u"+strconv.Itoa(n-10) {
		t.Fatalf("the queue's front is %q, want u%d", id, n-10)
	}
	if len(w.timers.h) != 10 || len(w.timers.at) != 10 {
		t.Fatalf("timers: %d in the heap for %d users", len(w.timers.h), len(w.timers.at))
	}
	if id, ok := w.timers.due(t0.Add(5 * time.Hour)); !ok || id == "" {
		t.Fatal("a kept timer did not come due")
	}
}

// TestCompactDropsStaleWakes (issue 23): the times of idle users who have
// woken since are dropped once they outnumber the idle users; the times
// still current are kept and come due in order.
func TestCompactDropsStaleWakes(t *testing.T) {
	w := &writer{users: map[string]*tracked{}, keys: map[string]string{}}
	const n = 10 * compactFloor
	for i := range n {
		id := "u" + strconv.Itoa(i)
		w.idle.Put(id, idleUser{rev: 1, wakeAt: int64(i + 1)})
		w.wakes.push(id, int64(i+1))
	}
	for i := range n - 10 {
		w.idle.Delete("u" + strconv.Itoa(i)) // woken by the watch: its time is stale
	}
	w.compact()
	if len(w.wakes) != 10 {
		t.Fatalf("%d times kept for 10 idle users", len(w.wakes))
	}
	current := func(id string, at int64) bool { u, ok := w.idle.Get(id); return ok && u.wakeAt == at }
	for i := n - 10; i < n; i++ {
		if id, ok := w.wakes.due(int64(n), current); !ok || id != "u"+strconv.Itoa(i) {
			t.Fatalf("due %q %v, want u%d", id, ok, i)
		}
	}
}
