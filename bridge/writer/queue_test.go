package writer

import (
	"fmt"
	"slices"
	"testing"
)

// drainQueue pops every id off q, in order.
func drainQueue(q *queue) []string {
	var out []string
	for {
		id, ok := q.pop()
		if !ok {
			return out
		}
		out = append(out, id)
	}
}

func TestQueue(t *testing.T) {
	for _, tt := range []struct {
		name string
		ops  func(q *queue)
		want []string
	}{
		{"empty", func(q *queue) {}, nil},
		{"fifo", func(q *queue) { q.push("a"); q.push("b"); q.push("c") }, []string{"a", "b", "c"}},
		{"a user stands once", func(q *queue) { q.push("a"); q.push("b"); q.push("a"); q.pushFront("b") }, []string{"a", "b"}},
		{"pushFront goes first", func(q *queue) { q.push("a"); q.push("b"); q.pushFront("c") }, []string{"c", "a", "b"}},
		{"pushFront on empty", func(q *queue) { q.pushFront("a"); q.push("b") }, []string{"a", "b"}},
		{"popped may come back", func(q *queue) { q.push("a"); q.push("b"); q.pop(); q.push("a") }, []string{"b", "a"}},
		{"grows in order across the ring's end", func(q *queue) {
			for i := range 10 {
				q.push(fmt.Sprint(i))
			}
			for range 8 {
				q.pop()
			}
			for i := 10; i < 40; i++ { // wraps, then grows twice
				q.push(fmt.Sprint(i))
			}
			q.pushFront("front")
		}, append([]string{"front", "8", "9"}, func() []string {
			var s []string
			for i := 10; i < 40; i++ {
				s = append(s, fmt.Sprint(i))
			}
			return s
		}()...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var q queue
			tt.ops(&q)
			if q.len() != len(tt.want) {
				t.Fatalf("len %d, want %d", q.len(), len(tt.want))
			}
			if front, ok := q.front(); ok != (len(tt.want) > 0) || (ok && front != tt.want[0]) {
				t.Fatalf("front %q, %v", front, ok)
			}
			if got := drainQueue(&q); !slices.Equal(got, tt.want) {
				t.Fatalf("popped %v, want %v", got, tt.want)
			}
			if q.len() != 0 || len(q.in) != 0 {
				t.Fatalf("after draining: len %d, %d marked queued", q.len(), len(q.in))
			}
		})
	}
}
