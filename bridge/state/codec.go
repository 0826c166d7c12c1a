package state

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// A user state is stored as the JSON encoding/json makes of UserState.
// It is encoded here by hand, byte for byte as encoding/json encodes it
// (TestEncodeAsEncodingJSON, FuzzEncodeState), without reflection and
// without checking time.Time's MarshalJSON output again, in about a
// quarter of encoding/json's time (BenchmarkEncodeState); it is decoded
// by encoding/json. goccy/go-json's encoder is not used: it ignores
// omitzero, so its bytes differ. A field added to UserState or a type it holds must be
// added to the encoder below: TestEncodeAsEncodingJSON fills every field
// and fails until it is.

// encode is st as it is stored.
func encode(st UserState) ([]byte, error) {
	e := encoder{b: make([]byte, 0, 1024)}
	e.state(&st)
	if e.err != nil {
		return nil, e.err
	}
	return e.b, nil
}

// decode reads a stored user state with encoding/json. (goccy/go-json
// reads it in about a third of the time, but the strings it makes share
// the whole document's bytes: a claim carried from state to state would
// keep every document it came from.)
func decode(data []byte, userID string) (UserState, error) {
	var st UserState
	if err := json.Unmarshal(data, &st); err != nil {
		return UserState{}, fmt.Errorf("decode state of %s: %w", userID, err)
	}
	return st, nil
}

// encoder appends JSON to b; err is the first time that has no RFC 3339
// form (as encoding/json, it then fails).
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) state(st *UserState) {
	e.b = append(e.b, '{')
	e.str("tenant", st.Tenant)
	e.str("userId", st.UserID)
	if len(st.Calls) > 0 {
		e.key("calls")
		e.b = appendMap(e, st.Calls, e.call)
	}
	if len(st.Meetings) > 0 {
		e.key("meetings")
		e.b = appendMap(e, st.Meetings, e.meeting)
	}
	if len(st.Presence) > 0 {
		e.key("presence")
		e.b = appendMap(e, st.Presence, e.presence)
	}
	if len(st.SourceSeen) > 0 {
		e.key("sourceSeen")
		e.b = appendMap(e, st.SourceSeen, e.timeValue)
	}
	e.told("told", st.Told)
	e.told("pending", st.Pending)
	if f := st.Failed; f != nil {
		e.key("failed")
		e.b = append(e.b, '{')
		e.pair("pair", f.Pair)
		e.str("reason", f.Reason)
		e.time("at", f.At)
		e.b = append(e.b, '}')
	}
	if m := st.Manual; m != nil {
		e.key("manual")
		e.b = append(e.b, '{')
		e.pair("pair", &m.Pair)
		e.time("since", m.Since)
		e.b = append(e.b, '}')
	}
	if s := st.Status; s != nil {
		e.key("status")
		e.b = append(e.b, '{')
		e.strOmitEmpty("text", s.Text)
		e.timeOmitZero("expires", s.Expires)
		e.strOmitEmpty("userText", s.UserText)
		e.strOmitEmpty("refused", s.Refused)
		e.time("at", s.At)
		e.b = append(e.b, '}')
	}
	if st.LastEvent != nil {
		e.key("lastEvent")
		e.event(st.LastEvent)
	}
	if len(st.Waiting) > 0 {
		e.key("waiting")
		e.b = append(e.b, '[')
		for i, w := range st.Waiting {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.b = append(e.b, '{')
			e.str("event", w.Event)
			e.time("accepted", w.Accepted)
			e.b = append(e.b, '}')
		}
		e.b = append(e.b, ']')
	}
	e.b = append(e.b, '}')
}

func (e *encoder) call(c *CallClaim) {
	if e.null(c == nil) {
		return
	}
	e.b = append(e.b, '{')
	e.str("source", c.Source)
	e.str("state", c.State)
	e.boolOmitEmpty("conference", c.Conference)
	e.time("occurredAt", c.OccurredAt)
	e.intOmitEmpty("sequence", c.Sequence)
	e.time("updated", c.Updated)
	e.b = append(e.b, '}')
}

func (e *encoder) meeting(m *MeetingClaim) {
	if e.null(m == nil) {
		return
	}
	e.b = append(e.b, '{')
	e.str("source", m.Source)
	e.strOmitEmpty("state", m.State)
	e.timeOmitNil("start", m.Start)
	e.timeOmitNil("end", m.End)
	e.strOmitEmpty("showAs", m.ShowAs)
	e.time("occurredAt", m.OccurredAt)
	e.intOmitEmpty("sequence", m.Sequence)
	e.timeOmitZero("updated", m.Updated)
	e.b = append(e.b, '}')
}

func (e *encoder) presence(p *PresenceClaim) {
	if e.null(p == nil) {
		return
	}
	e.b = append(e.b, '{')
	e.pair("pair", p.Pair)
	e.timeOmitNil("expiresAt", p.ExpiresAt)
	e.time("occurredAt", p.OccurredAt)
	e.intOmitEmpty("sequence", p.Sequence)
	e.timeOmitZero("updated", p.Updated)
	e.b = append(e.b, '}')
}

func (e *encoder) told(name string, t *Told) {
	if t == nil {
		return
	}
	e.key(name)
	e.b = append(e.b, '{')
	e.pair("pair", t.Pair)
	e.time("at", t.At)
	e.timeOmitZero("expires", t.Expires)
	e.b = append(e.b, '}')
}

func (e *encoder) event(ev *adapters.Event) {
	e.b = append(e.b, '{')
	e.str("id", ev.ID)
	e.str("source", ev.Source)
	e.str("type", ev.Type)
	e.str("user", ev.User)
	e.time("occurredAt", ev.OccurredAt)
	e.intOmitEmpty("sequence", ev.Sequence)
	e.strOmitEmpty("callId", ev.CallID)
	e.strOmitEmpty("state", ev.State)
	e.boolOmitEmpty("conference", ev.Conference)
	if len(ev.ExceptCalls) > 0 {
		e.key("exceptCalls")
		e.b = append(e.b, '[')
		for i, c := range ev.ExceptCalls {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.b = appendString(e.b, c)
		}
		e.b = append(e.b, ']')
	}
	e.timeOmitNil("start", ev.Start)
	e.timeOmitNil("end", ev.End)
	e.strOmitEmpty("showAs", ev.ShowAs)
	e.strOmitEmpty("availability", ev.Availability)
	e.strOmitEmpty("activity", ev.Activity)
	e.timeOmitNil("expiresAt", ev.ExpiresAt)
	e.strOmitEmpty("calendarEvent", ev.CalendarEvent)
	e.b = append(e.b, '}')
}

// pair appends a pair, left out when nil (omitempty).
func (e *encoder) pair(name string, p *adapters.Pair) {
	if p == nil {
		return
	}
	e.key(name)
	e.b = append(e.b, '{')
	e.str("availability", p.Availability)
	e.str("activity", p.Activity)
	e.b = append(e.b, '}')
}

// appendMap appends m with its keys sorted, as encoding/json does, each
// value through value, and returns e.b.
func appendMap[V any](e *encoder, m map[string]V, value func(V)) []byte {
	var small [8]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.b = append(e.b, '{')
	for i, k := range keys {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.b = appendString(e.b, k)
		e.b = append(e.b, ':')
		value(m[k])
	}
	return append(e.b, '}')
}

// null appends null for a nil claim and reports whether it did.
func (e *encoder) null(isNil bool) bool {
	if isNil {
		e.b = append(e.b, "null"...)
	}
	return isNil
}

// key appends the name of an object's member, after a comma unless it is
// the first.
func (e *encoder) key(name string) {
	if e.b[len(e.b)-1] != '{' {
		e.b = append(e.b, ',')
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, name...)
	e.b = append(e.b, '"', ':')
}

func (e *encoder) str(name, s string) {
	e.key(name)
	e.b = appendString(e.b, s)
}

func (e *encoder) strOmitEmpty(name, s string) {
	if s != "" {
		e.str(name, s)
	}
}

func (e *encoder) boolOmitEmpty(name string, v bool) {
	if v {
		e.key(name)
		e.b = append(e.b, "true"...)
	}
}

func (e *encoder) intOmitEmpty(name string, v int64) {
	if v != 0 {
		e.key(name)
		e.b = strconv.AppendInt(e.b, v, 10)
	}
}

func (e *encoder) time(name string, t time.Time) {
	e.key(name)
	e.timeValue(t)
}

func (e *encoder) timeOmitZero(name string, t time.Time) {
	if !t.IsZero() {
		e.time(name, t)
	}
}

func (e *encoder) timeOmitNil(name string, t *time.Time) {
	if t != nil {
		e.time(name, *t)
	}
}

// timeValue appends t as time.Time's MarshalJSON does: RFC 3339 with
// nanoseconds, quoted.
func (e *encoder) timeValue(t time.Time) {
	e.b = append(e.b, '"')
	b, err := t.AppendText(e.b)
	if err != nil {
		if e.err == nil {
			e.err = fmt.Errorf("time %v: %w", t, err)
		}
	} else {
		e.b = b
	}
	e.b = append(e.b, '"')
}

// appendString appends s as a JSON string as encoding/json writes it:
// <, > and & escaped (as \u003c...), control characters as \n, \r, \t,
// \b, \f or \u00XX, invalid UTF-8 as \ufffd, and U+2028 and U+2029
// escaped.
func appendString(b []byte, s string) []byte {
	const digits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', digits[c>>4], digits[c&0x0f])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			start = i + size
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', digits[r&0x0f])
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
