package adapters

import (
	"encoding/json"
	"strings"

	gojson "github.com/goccy/go-json"
)

// decodeOne is DecodeEvents' fast path for a body holding one event whose
// every key is exactly a field's name, given once: the shape the bridge
// itself publishes and most senders post. Once encoding/json finds the
// body well-formed, goccy/go-json decodes it into the struct in one pass
// (several times faster), then it is validated. Whatever it does not
// accept (a batch, an unknown, repeated, escaped or differently cased key,
// malformed JSON, a value of the wrong type, an invalid event) it leaves
// to the slow path, which names every problem; ok then is false. It must
// accept nothing the slow path refuses (see FuzzDecodeFastPathAgrees).
func decodeOne(body []byte) (e Event, ok bool) {
	if !exactKeys(body) || !json.Valid(body) {
		return Event{}, false
	}
	// Every key is known, so there is no unknown field to refuse; and as
	// every field is a string, number, bool, time or list of strings, a
	// body that decodes holds no nested object that could repeat a key.
	if !unmarshalFast(body, &e) || e.Validate("") != nil {
		return Event{}, false
	}
	e.ownStrings()
	return e, true
}

// ownStrings gives e's strings bytes of their own. goccy/go-json's share
// the bytes of the whole body it decoded, which a claim made of the event
// would keep as long as it is kept: a sender padding small events to the
// body limit would make each cost a megabyte. They are copied into one
// buffer the size of the strings.
func (e *Event) ownStrings() {
	fields := []*string{&e.ID, &e.Source, &e.Type, &e.User, &e.CallID, &e.State, &e.ShowAs,
		&e.Availability, &e.Activity, &e.CalendarEvent}
	for i := range e.ExceptCalls {
		fields = append(fields, &e.ExceptCalls[i])
	}
	size := 0
	for _, f := range fields {
		size += len(*f)
	}
	var b strings.Builder
	b.Grow(size)
	for _, f := range fields {
		b.WriteString(*f)
	}
	all := b.String()
	for _, f := range fields {
		n := len(*f)
		*f, all = all[:n], all[n:]
	}
}

// unmarshalFast decodes body into e with goccy/go-json, reporting whether
// it could. body is well-formed JSON; a panic of the decoder (it has had
// some on odd input: goccy/go-json issues 575 and 604) counts as could
// not.
func unmarshalFast(body []byte, e *Event) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return gojson.Unmarshal(body, e) == nil
}

// exactKeys reports whether body is an object whose keys, at its top
// level, are field names of Event written exactly (encoding/json would
// take "ID" for "id"; the slow path refuses it) and without escapes, each
// given once. It looks at nothing else: a malformed body is json.Valid's
// to refuse.
func exactKeys(body []byte) bool {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
	var seen uint64 // bit i: the field with struct index i was given
	depth := 0
	expectKey := false
	for ; i < len(body); i++ {
		switch c := body[i]; c {
		case '{', '[':
			depth++
			expectKey = depth == 1 && c == '{'
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case '"':
			end, escaped := scanString(body, i)
			if end < 0 {
				return false
			}
			if expectKey {
				if escaped {
					return false // an escaped key: the slow path decides
				}
				f := fieldIndex(body[i+1 : end])
				if f < 0 || seen&(1<<f) != 0 {
					return false
				}
				seen |= 1 << f
				expectKey = false
			}
			i = end
		}
	}
	return depth == 0
}

// eventFieldNames holds Event's JSON field names by struct index.
var eventFieldNames = func() []string {
	names := make([]string, len(eventFields))
	for name, i := range eventFields {
		names[i] = name
	}
	return names
}()

// fieldIndex returns the struct index of the Event field named key
// exactly, or -1; for so few names a search beats hashing.
func fieldIndex(key []byte) int {
	for i, name := range eventFieldNames {
		if len(name) == len(key) && name == string(key) {
			return i
		}
	}
	return -1
}

// scanString returns the index of the quote closing the string that
// opens at body[start], or -1, and whether the string holds an escape.
func scanString(body []byte, start int) (end int, escaped bool) {
	for i := start + 1; i < len(body); i++ {
		switch body[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i, escaped
		}
	}
	return -1, escaped
}

// endOfString returns the index of the quote closing the string that
// opens at body[start], or -1.
func endOfString(body []byte, start int) int {
	end, _ := scanString(body, start)
	return end
}

func skipSpace(body []byte, i int) int {
	for i < len(body) && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r') {
		i++
	}
	return i
}
