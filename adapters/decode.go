package adapters

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// eventFields maps each JSON field name of Event to its struct index.
var eventFields = func() map[string]int {
	fields := map[string]int{}
	t := reflect.TypeOf(Event{})
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		fields[name] = i
	}
	return fields
}()

// DecodeEvents decodes and validates a request body holding either one
// canonical event or {"events":[...]}. Every problem is reported in an
// *InvalidError whose field names locate it ("events[1].state"); text that
// is not valid UTF-8 is refused, never replaced, and so is an object that
// gives a key twice (see DuplicateKey).
func DecodeEvents(body []byte) ([]Event, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, &InvalidError{Problems: []FieldError{{Field: "body", Problem: "empty"}}}
	}
	if p := JSONTextProblem(body); p != nil {
		return nil, &InvalidError{Problems: []FieldError{*p}}
	}
	if e, ok := decodeOne(body); ok {
		return []Event{e}, nil
	}
	return decodeSlow(body)
}

// decodeSlow is DecodeEvents after the text check without the fast path:
// it refuses a repeated key, then decodes field by field.
func decodeSlow(body []byte) ([]Event, error) {
	if p := DuplicateKey(body); p != nil {
		return nil, &InvalidError{Problems: []FieldError{*p}}
	}
	return decodeEach(body)
}

// decodeEach decodes body field by field, so that every problem is named.
func decodeEach(body []byte) ([]Event, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, &InvalidError{Problems: []FieldError{{Field: "body", Problem: syntaxProblem(err)}}}
	}
	rawEvents, isBatch := top["events"]
	if !isBatch {
		e, err := decodeEvent(top, "")
		if err != nil {
			return nil, err
		}
		return []Event{e}, nil
	}
	if len(top) != 1 {
		for k := range top {
			if k != "events" {
				return nil, &InvalidError{Problems: []FieldError{{Field: k, Problem: "unknown field beside events"}}}
			}
		}
	}
	var objects []map[string]json.RawMessage
	if err := json.Unmarshal(rawEvents, &objects); err != nil {
		return nil, &InvalidError{Problems: []FieldError{{Field: "events", Problem: "must be an array of event objects"}}}
	}
	switch {
	case len(objects) == 0:
		return nil, &InvalidError{Problems: []FieldError{{Field: "events", Problem: "empty"}}}
	case len(objects) > MaxBatchSize:
		return nil, &InvalidError{Problems: []FieldError{{Field: "events", Problem: fmt.Sprintf("more than %d events", MaxBatchSize)}}}
	}
	events := make([]Event, 0, len(objects))
	all := &InvalidError{}
	for i, obj := range objects {
		e, err := decodeEvent(obj, fmt.Sprintf("events[%d].", i))
		var invalid *InvalidError
		if errors.As(err, &invalid) {
			all.Problems = append(all.Problems, invalid.Problems...)
			continue
		}
		events = append(events, e)
	}
	if err := all.err(); err != nil {
		return nil, err
	}
	return events, nil
}

// decodeEvent decodes one event object field by field, so that every error
// names the field it is about, then validates it.
func decodeEvent(obj map[string]json.RawMessage, prefix string) (Event, error) {
	if obj == nil {
		return Event{}, &InvalidError{Problems: []FieldError{{Field: strings.TrimSuffix(prefix, "."), Problem: "must be an event object"}}}
	}
	var e Event
	problems := &InvalidError{}
	v := reflect.ValueOf(&e).Elem()
	for name, raw := range obj {
		i, known := eventFields[name]
		if !known {
			problems.add(prefix+name, "unknown field")
			continue
		}
		if string(raw) == "null" {
			continue
		}
		field := v.Field(i)
		if err := json.Unmarshal(raw, field.Addr().Interface()); err != nil {
			problems.add(prefix+name, "%s", typeProblem(field.Type()))
		}
	}
	// A time given as 0001-01-01T00:00:00Z decodes to the zero time, which
	// the validator would call missing.
	if raw, given := obj["occurredAt"]; given && string(raw) != "null" && e.OccurredAt.IsZero() &&
		!slices.ContainsFunc(problems.Problems, func(q FieldError) bool { return q.Field == prefix+"occurredAt" }) {
		problems.add(prefix+"occurredAt", "out of range (%s is no time an event happened)", time.Time{}.Format(time.RFC3339))
	}
	// Validate what did decode too, so that one answer names every bad
	// field; a field whose value could not be decoded is named once.
	if err := e.Validate(prefix); err != nil {
		var invalid *InvalidError
		if !errors.As(err, &invalid) {
			return Event{}, err
		}
		for _, p := range invalid.Problems {
			if !slices.ContainsFunc(problems.Problems, func(q FieldError) bool { return q.Field == p.Field }) {
				problems.Problems = append(problems.Problems, p)
			}
		}
	}
	if err := problems.err(); err != nil {
		sortProblems(problems)
		return Event{}, err
	}
	return e, nil
}

func typeProblem(t reflect.Type) string {
	switch t {
	case reflect.TypeOf(time.Time{}), reflect.TypeOf(&time.Time{}):
		return "must be an RFC 3339 timestamp"
	}
	switch t.Kind() {
	case reflect.String:
		return "must be a string"
	case reflect.Int64:
		return "must be a whole number"
	case reflect.Bool:
		return "must be true or false"
	default:
		return "has the wrong type"
	}
}

func syntaxProblem(err error) string {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return fmt.Sprintf("malformed JSON at byte %d", syntax.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return "must be a JSON object"
	}
	return "malformed JSON"
}

// sortProblems puts problems in field order: map iteration order is random
// and error messages must be stable.
func sortProblems(e *InvalidError) {
	slices.SortStableFunc(e.Problems, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
}
