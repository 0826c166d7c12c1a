package adapters

import (
	"bytes"
	"encoding/json"
	"io"
)

// decodeOne is DecodeEvents' fast path for a body holding one event whose
// every key is exactly a field's name, the shape the bridge itself
// publishes and most senders post: one pass of encoding/json into the
// struct, then validation. Whatever it does not accept (a batch, an
// unknown or differently cased key, a value of the wrong type, an invalid
// event) it leaves to the slow path, which names every problem; ok then
// is false.
func decodeOne(body []byte) (e Event, ok bool) {
	if !exactKeys(body) {
		return Event{}, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return Event{}, false
	}
	if e.Validate("") != nil {
		return Event{}, false
	}
	return e, true
}

// exactKeys reports whether body is an object whose keys, at its top
// level, are all field names of Event written exactly (encoding/json would
// take "ID" for "id"; the slow path refuses it). It looks at nothing else:
// a malformed body is the decoder's to refuse.
func exactKeys(body []byte) bool {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
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
			end := endOfString(body, i)
			if end < 0 {
				return false
			}
			if expectKey {
				key := body[i+1 : end]
				if bytes.IndexByte(key, '\\') >= 0 {
					return false // an escaped key: the slow path decides
				}
				if _, known := eventFields[string(key)]; !known {
					return false
				}
				expectKey = false
			}
			i = end
		}
	}
	return depth == 0
}

// endOfString returns the index of the quote closing the string that
// opens at body[start], or -1.
func endOfString(body []byte, start int) int {
	for i := start + 1; i < len(body); i++ {
		switch body[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

func skipSpace(body []byte, i int) int {
	for i < len(body) && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r') {
		i++
	}
	return i
}
