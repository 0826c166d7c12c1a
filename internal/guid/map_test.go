package guid

import (
	"fmt"
	"testing"
)

// TestMapGivesRoomBack: a map that emptied to a quarter of its most is
// built again; GUIDs and other ids are both kept, and given back by
// Update.
func TestMapGivesRoomBack(t *testing.T) {
	id := func(i int) string { return fmt.Sprintf("3a7c0000-0000-4000-8000-%012d", i) }
	var m Map[int]
	const n = 1000
	for i := range n {
		m.Put(id(i), i)
	}
	m.Put("not-a-guid", -1)
	if v, ok := m.Get(id(7)); !ok || v != 7 || len(m.GUIDs) != n {
		t.Fatalf("get %d %t, %d GUIDs; want 7 true, %d", v, ok, len(m.GUIDs), n)
	}
	if v, ok := m.Get("not-a-guid"); !ok || v != -1 {
		t.Fatalf("get other %d %t", v, ok)
	}
	before := m.GUIDs
	for i := range n - 10 {
		m.Delete(id(i))
	}
	if m.Len() != 11 || m.high > 4*11 {
		t.Fatalf("%d ids, high-water mark %d; want 11, at most 44", m.Len(), m.high)
	}
	m.GUIDs[GUID{}] = 0 // a map built again is another map
	if _, ok := before[GUID{}]; ok {
		t.Fatal("the map was not built again after ids left")
	}
	delete(m.GUIDs, GUID{})
	seen := map[string]int{}
	m.Update(func(id func() string, v int) int { seen[id()] = v; return v + 1 })
	if len(seen) != 11 || seen[id(n-1)] != n-1 || seen["not-a-guid"] != -1 {
		t.Fatalf("Update gave %v", seen)
	}
	if v, _ := m.Get(id(n - 1)); v != n {
		t.Fatalf("Update's value not kept: %d", v)
	}
}
