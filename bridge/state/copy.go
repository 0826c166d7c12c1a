package state

import (
	"maps"
	"slices"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// copyState returns a deep copy of s that shares no map or pointer with
// it, its times without monotonic clock readings, as decoding the encoded
// state would give them. The store keeps such copies of the states it last
// read or wrote, so that an update starts without decoding; every field
// that holds a map or a pointer must be copied here
// (TestCopyStateSharesNothing finds one that is not).
func copyState(s UserState) UserState {
	c := s
	c.Calls = copyMap(s.Calls, func(v CallClaim) CallClaim {
		v.OccurredAt, v.Updated = wall(v.OccurredAt), wall(v.Updated)
		return v
	})
	c.Meetings = copyMap(s.Meetings, func(v MeetingClaim) MeetingClaim {
		v.Start, v.End = copyTime(v.Start), copyTime(v.End)
		v.OccurredAt, v.Updated = wall(v.OccurredAt), wall(v.Updated)
		return v
	})
	c.Presence = copyMap(s.Presence, func(v PresenceClaim) PresenceClaim {
		v.Pair, v.ExpiresAt = copyPointer(v.Pair), copyTime(v.ExpiresAt)
		v.OccurredAt, v.Updated = wall(v.OccurredAt), wall(v.Updated)
		return v
	})
	if s.SourceSeen != nil {
		c.SourceSeen = make(map[string]time.Time, len(s.SourceSeen))
		for k, v := range s.SourceSeen {
			c.SourceSeen[k] = wall(v)
		}
	}
	c.Told, c.Pending = copyTold(s.Told), copyTold(s.Pending)
	if s.Failed != nil {
		f := *s.Failed
		f.Pair, f.At = copyPointer(f.Pair), wall(f.At)
		c.Failed = &f
	}
	if s.Manual != nil {
		m := *s.Manual
		m.Since = wall(m.Since)
		c.Manual = &m
	}
	if s.Status != nil {
		m := *s.Status
		m.Expires, m.At = wall(m.Expires), wall(m.At)
		c.Status = &m
	}
	if s.LastEvent != nil {
		e := copyEvent(*s.LastEvent)
		c.LastEvent = &e
	}
	if s.Waiting != nil {
		c.Waiting = make([]Waiting, len(s.Waiting))
		for i, w := range s.Waiting {
			c.Waiting[i] = Waiting{Event: w.Event, Accepted: wall(w.Accepted)}
		}
	}
	return c
}

func copyEvent(e adapters.Event) adapters.Event {
	e.OccurredAt = wall(e.OccurredAt)
	e.Start, e.End, e.ExpiresAt = copyTime(e.Start), copyTime(e.End), copyTime(e.ExpiresAt)
	e.ExceptCalls = slices.Clone(e.ExceptCalls)
	return e
}

func copyTold(t *Told) *Told {
	if t == nil {
		return nil
	}
	c := *t
	c.Pair, c.At, c.Expires = copyPointer(c.Pair), wall(c.At), wall(c.Expires)
	return &c
}

// copyMap copies a map of pointers, each value through copyValue.
func copyMap[V any](m map[string]*V, copyValue func(V) V) map[string]*V {
	if m == nil {
		return nil
	}
	c := maps.Clone(m)
	for k, v := range c {
		if v != nil {
			cv := copyValue(*v)
			c[k] = &cv
		}
	}
	return c
}

func copyPointer[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

func copyTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := wall(*t)
	return &c
}

// wall strips t's monotonic clock reading.
func wall(t time.Time) time.Time { return t.Round(0) }
