package adapters

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DuplicateKey finds the first object in body that gives a key twice and
// names where: its path ("events[1].id", "data.callId"). Keys are
// compared as encoding/json matches them to struct fields: after
// unescaping ("\u0069d" is "id") and without regard to case ("ID" is
// "id"). Decoders disagree about such a body (encoding/json keeps the last
// value, others the first), so a signature checked on one reading could
// vouch for another. It returns nil when no key repeats, or when body is
// not JSON (the decoder reports that).
func DuplicateKey(body []byte) *FieldError {
	var frames [8]keyFrame
	stack := frames[:0]
	// keys holds the keys of every open object, innermost last; an
	// object's keys go when it closes.
	var keyBuf [16][]byte
	keys := keyBuf[:0]
	expectKey := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; c {
		case '{':
			stack = append(stack, keyFrame{object: true, start: len(keys)})
			expectKey = true
		case '[':
			stack = append(stack, keyFrame{start: len(keys)})
			expectKey = false
		case '}', ']':
			if len(stack) == 0 {
				return nil
			}
			keys = keys[:stack[len(stack)-1].start]
			stack = stack[:len(stack)-1]
			expectKey = false
		case ',':
			if n := len(stack); n > 0 {
				if stack[n-1].object {
					expectKey = true
				} else {
					stack[n-1].index++
				}
			}
		case '"':
			end := endOfString(body, i)
			if end < 0 {
				return nil
			}
			if n := len(stack); expectKey && n > 0 && stack[n-1].object {
				key, ok := jsonKey(body[i : end+1])
				if !ok {
					return nil
				}
				top := &stack[n-1]
				if top.seen(keys[top.start:], key) {
					return &FieldError{Field: keyPath(stack[:n-1], key), Problem: "duplicate key"}
				}
				keys = append(keys, key)
				top.key = key
				expectKey = false
			}
			i = end
		}
	}
	return nil
}

// keyFrame is one open object or array of DuplicateKey's walk.
type keyFrame struct {
	object bool
	start  int    // where the object's keys begin among all open keys
	index  int    // an array's current element
	key    []byte // an object's current key
	set    map[string]bool
}

// manyKeys is how many keys an object holds before they are also kept in
// a map rather than only searched one by one.
const manyKeys = 16

// seen reports whether key matches one of the object's keys before it
// (as encoding/json matches keys to fields), and remembers it in the map
// once the object has many keys.
func (f *keyFrame) seen(before [][]byte, key []byte) bool {
	if len(before) < manyKeys {
		for _, k := range before {
			if bytes.EqualFold(k, key) {
				return true
			}
		}
		return false
	}
	if f.set == nil {
		f.set = make(map[string]bool, 2*len(before))
		for _, k := range before {
			f.set[foldKey(string(k))] = true
		}
	}
	folded := foldKey(string(key))
	if f.set[folded] {
		return true
	}
	f.set[folded] = true
	return false
}

// jsonKey unescapes a quoted key.
func jsonKey(quoted []byte) ([]byte, bool) {
	raw := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw, true
	}
	var key string
	if err := json.Unmarshal(quoted, &key); err != nil {
		return nil, false
	}
	return []byte(key), true
}

// foldKey maps key to one spelling for all the keys encoding/json would
// take for it (bytes.EqualFold's simple case folding): each rune becomes
// the least of its folding orbit, which for ASCII is the upper case.
func foldKey(key string) string {
	ascii := true
	for i := 0; i < len(key); i++ {
		if key[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToUpper(key)
	}
	var b strings.Builder
	for _, r := range key {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

// keyPath names key inside the open frames, as the decoders name fields.
func keyPath(stack []keyFrame, key []byte) string {
	var b strings.Builder
	for _, f := range stack {
		if !f.object {
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.Write(f.key)
	}
	if b.Len() > 0 {
		b.WriteByte('.')
	}
	b.Write(key)
	return b.String()
}
