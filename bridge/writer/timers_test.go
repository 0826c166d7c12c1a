package writer

import (
	"slices"
	"testing"
	"time"
)

func TestDeadlines(t *testing.T) {
	for _, tt := range []struct {
		name string
		push []timer
		want []string
	}{
		{"empty", nil, nil},
		{"earliest first", []timer{{at(3), "c"}, {at(1), "a"}, {at(2), "b"}}, []string{"a", "b", "c"}},
		{"a user once, its first deadline stands", []timer{{at(3), "a"}, {at(2), "b"}, {at(1), "a"}}, []string{"b", "a"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var d deadlines
			for _, p := range tt.push {
				d.push(p.userID, p.at)
			}
			if d.len() != len(tt.want) {
				t.Fatalf("len %d, want %d", d.len(), len(tt.want))
			}
			var got []string
			for {
				k, ok := d.front()
				if !ok {
					break
				}
				got = append(got, k.userID)
				d.pop()
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("order %v, want %v", got, tt.want)
			}
			if len(d.in) != 0 {
				t.Fatalf("%d users still marked after popping all", len(d.in))
			}
			d.push("a", at(1)) // a popped user may come back
			if k, ok := d.front(); !ok || k.userID != "a" {
				t.Fatalf("a popped user can not come back: %v %v", k, ok)
			}
		})
	}
}

func TestTimers(t *testing.T) {
	type set struct {
		user string
		at   time.Time
	}
	for _, tt := range []struct {
		name string
		sets []set
		now  time.Time
		want []string
	}{
		{"none", nil, at(5), nil},
		{"due in time order", []set{{"b", at(2)}, {"a", at(1)}, {"c", at(3)}}, at(5), []string{"a", "b", "c"}},
		{"not yet due", []set{{"a", at(1)}, {"b", at(6)}}, at(5), []string{"a"}},
		{"due exactly at now", []set{{"a", at(5)}}, at(5), []string{"a"}},
		{"a later timer replaces an earlier one", []set{{"a", at(1)}, {"a", at(6)}}, at(5), nil},
		{"an earlier timer replaces a later one", []set{{"a", at(6)}, {"a", at(1)}}, at(5), []string{"a"}},
		{"the same time twice fires once", []set{{"a", at(1)}, {"a", at(1)}}, at(5), []string{"a"}},
		{"back to a replaced time fires once", []set{{"a", at(1)}, {"a", at(2)}, {"a", at(1)}}, at(5), []string{"a"}},
		{"zero sets nothing", []set{{"a", at(1)}, {"a", time.Time{}}}, at(5), []string{"a"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ts timers
			for _, s := range tt.sets {
				ts.set(s.user, s.at)
			}
			var got []string
			for {
				id, ok := ts.due(tt.now)
				if !ok {
					break
				}
				got = append(got, id)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("due %v, want %v", got, tt.want)
			}
			// A fired timer is gone: setting the same time again fires again.
			for _, id := range got {
				ts.set(id, tt.now)
				if again, ok := ts.due(tt.now); !ok || again != id {
					t.Fatalf("%s's timer set again after firing did not fire: %q %v", id, again, ok)
				}
			}
		})
	}
}
