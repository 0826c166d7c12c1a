package adapters

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// encoding/json turns invalid UTF-8 and escaped lone surrogates ("\ud800")
// into U+FFFD without a word, so a name or call id would silently change.
// The checks below look at the raw text before it is decoded.

// JSONTextProblem finds the first JSON string in body (a key or a value)
// that is not valid UTF-8 or escapes a lone UTF-16 surrogate, and names
// where it is: its path ("events[1].user", "payload.object.call_id"; "body"
// for a top-level string) and the byte offset in the problem. It returns
// nil when every string is good text, or when body is not JSON at all
// (the decoder reports that).
func JSONTextProblem(body []byte) *FieldError {
	if utf8.Valid(body) && !bytes.Contains(body, []byte(`\ud`)) && !bytes.Contains(body, []byte(`\uD`)) {
		return nil // the common case: nothing to look at closely
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var stack []jsonFrame
	// done records that a value ended, so the enclosing array moves to its
	// next index or the enclosing object expects its next key.
	done := func() {
		if n := len(stack); n > 0 {
			top := &stack[n-1]
			if top.array {
				top.index++
			} else {
				top.expectKey = true
			}
		}
	}
	var start int64
	for {
		tok, err := dec.Token()
		if err != nil {
			// io.EOF: all read; anything else is a syntax error for the
			// decoder to report.
			return nil
		}
		end := dec.InputOffset()
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, jsonFrame{expectKey: true})
			case '[':
				stack = append(stack, jsonFrame{array: true})
			default:
				stack = stack[:len(stack)-1]
				done()
			}
		case string:
			key := len(stack) > 0 && !stack[len(stack)-1].array && stack[len(stack)-1].expectKey
			if problem := textProblem(body[start:end], start); problem != "" {
				field := jsonPath(stack)
				if key {
					problem = "a key " + problem
				}
				return &FieldError{Field: field, Problem: problem}
			}
			if key {
				top := &stack[len(stack)-1]
				top.key, top.expectKey = v, false
			} else {
				done()
			}
		default:
			done()
		}
		start = end
	}
}

type jsonFrame struct {
	array     bool
	index     int
	key       string
	expectKey bool
}

// jsonPath names the value the innermost frame is at, as the decoders name
// fields: "events[1].user".
func jsonPath(stack []jsonFrame) string {
	var b strings.Builder
	for _, f := range stack {
		if f.array {
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
			continue
		}
		if f.expectKey {
			break // a key itself: name the object that holds it
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(f.key)
	}
	if b.Len() == 0 {
		return "body"
	}
	return b.String()
}

// textProblem checks one stretch of raw JSON (a string token with the
// separators before it) that starts at byte offset base of the body. Valid
// JSON has backslashes only inside strings, so escapes can be read without
// tracking quotes.
func textProblem(raw []byte, base int64) string {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				return fmt.Sprintf("is not valid UTF-8 (byte %d)", base+int64(i))
			}
			i += size
			continue
		}
		if c != '\\' || i+1 >= len(raw) {
			i++
			continue
		}
		if raw[i+1] != 'u' {
			i += 2 // \" \\ \n and the like
			continue
		}
		r, ok := hexRune(raw[i+2:])
		switch {
		case !ok:
			return "" // malformed: the decoder reports it
		case r >= 0xD800 && r <= 0xDBFF:
			if low, ok := escapedRune(raw[i+6:]); ok && low >= 0xDC00 && low <= 0xDFFF {
				i += 12 // a proper pair
				continue
			}
			return fmt.Sprintf("escapes a lone UTF-16 surrogate (byte %d)", base+int64(i))
		case r >= 0xDC00 && r <= 0xDFFF:
			return fmt.Sprintf("escapes a lone UTF-16 surrogate (byte %d)", base+int64(i))
		}
		i += 6
	}
	return ""
}

// escapedRune reads a \uXXXX escape at the start of b.
func escapedRune(b []byte) (rune, bool) {
	if len(b) < 2 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	return hexRune(b[2:])
}

// hexRune reads four hex digits at the start of b.
func hexRune(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 16)
	return rune(n), err == nil
}

// CheckJSONText answers 400 for raw JSON that decoding would silently
// change or read ambiguously: it names the first string in body that is
// not good text (see JSONTextProblem), or the first key an object gives
// twice (see DuplicateKey), whose value encoding/json would take from the
// last occurrence.
func CheckJSONText(body []byte) error {
	if p := JSONTextProblem(body); p != nil {
		return textError(*p)
	}
	if p := DuplicateKey(body); p != nil {
		return &RequestError{Status: http.StatusBadRequest, Code: "duplicate_key", Message: p.Error(), Fields: []FieldError{*p}}
	}
	return nil
}

// CheckFormText answers 400 naming the first form or query parameter whose
// name or decoded value is not valid UTF-8 (a "%FF" decodes to a byte that
// is not text), or that is given more than once (readers disagree about
// which value counts, as they do about a repeated JSON key).
func CheckFormText(values url.Values) error {
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !utf8.ValidString(name) {
			return textError(FieldError{Field: strconv.QuoteToASCII(name), Problem: "parameter name is not valid UTF-8"})
		}
		for _, v := range values[name] {
			if !utf8.ValidString(v) {
				return textError(FieldError{Field: name, Problem: "is not valid UTF-8"})
			}
		}
		if len(values[name]) > 1 {
			return &RequestError{Status: http.StatusBadRequest, Code: "duplicate_key", Message: name + ": duplicate key", Fields: []FieldError{{Field: name, Problem: "duplicate key"}}}
		}
	}
	return nil
}

func textError(p FieldError) error {
	return &RequestError{Status: http.StatusBadRequest, Code: "invalid_text", Message: p.Error(), Fields: []FieldError{p}}
}

// Token reports whether s is fit to echo back to a vendor's handshake: 1
// to max printable ASCII characters, so that the answer can not carry
// markup-breaking bytes, control characters or a large payload.
func Token(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
