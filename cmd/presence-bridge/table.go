package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"
)

// object is a JSON object with its keys in the order the bridge sent them,
// so tables and trees show fields in the API's order, whatever fields other
// versions of the bridge add.
type object struct {
	keys   []string
	values map[string]any
}

// decodeOrdered decodes JSON into objects, []any, json.Number, string,
// bool and nil.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// maxDepth bounds nesting, so a hostile answer can not exhaust the stack.
const maxDepth = 64

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := &object{values: map[string]any{}}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, _ := k.(string)
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			if _, dup := o.values[key]; !dup {
				o.keys = append(o.keys, key)
			}
			o.values[key] = v
		}
		_, err := dec.Token()
		return o, err
	case json.Delim('['):
		list := []any{}
		for dec.More() {
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		_, err := dec.Token()
		return list, err
	}
	return tok, nil
}

// writeTable writes rows (JSON objects) as an aligned table whose columns
// are every key the rows have, in the order they first appear.
func writeTable(w io.Writer, rows []json.RawMessage) error {
	objects := make([]*object, 0, len(rows))
	var columns []string
	seen := map[string]bool{}
	for _, raw := range rows {
		v, err := decodeOrdered(raw)
		if err != nil {
			return err
		}
		o, ok := v.(*object)
		if !ok {
			return fmt.Errorf("a row is not a JSON object: %s", raw)
		}
		for _, k := range o.keys {
			if !seen[k] {
				seen[k] = true
				columns = append(columns, k)
			}
		}
		objects = append(objects, o)
	}
	if len(objects) == 0 {
		_, err := fmt.Fprintln(w, "(none)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	headers := make([]string, len(columns))
	for i, c := range columns {
		headers[i] = header(c)
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, o := range objects {
		cells := make([]string, len(columns))
		for i, c := range columns {
			v, ok := o.values[c]
			if !ok {
				cells[i] = "-"
				continue
			}
			cells[i] = cell(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// header turns a JSON key ("sessionCapacity") into a column header
// ("SESSION CAPACITY").
func header(key string) string {
	var b strings.Builder
	for i, r := range key {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte(' ')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// cell formats one value on one line: nested values as compact JSON.
func cell(v any) string {
	var s string
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		s = x
	case json.Number:
		s = x.String()
	case bool:
		s = map[bool]string{true: "yes", false: "no"}[x]
	case []any:
		parts := make([]string, len(x))
		for i, item := range x {
			parts[i] = cell(item)
		}
		s = strings.Join(parts, ",")
	case *object:
		parts := make([]string, len(x.keys))
		for i, k := range x.keys {
			parts[i] = k + "=" + cell(x.values[k])
		}
		s = strings.Join(parts, " ")
	}
	if s == "" {
		return "-"
	}
	// A tab or newline would break the table's alignment.
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// writeTree writes a decoded JSON value as indented "key: value" lines,
// lists as "- " items, for people to read.
func writeTree(w io.Writer, v any, indent string) {
	switch x := v.(type) {
	case *object:
		if len(x.keys) == 0 {
			fmt.Fprintln(w, indent+"(empty)")
		}
		for _, k := range x.keys {
			child := x.values[k]
			if zeroTime(child) {
				continue // a time never set ("0001-01-01T00:00:00Z") says nothing
			}
			if isScalar(child) {
				fmt.Fprintf(w, "%s%s: %s\n", indent, k, cell(child))
				continue
			}
			fmt.Fprintf(w, "%s%s:\n", indent, k)
			writeTree(w, child, indent+"  ")
		}
	case []any:
		if len(x) == 0 {
			fmt.Fprintln(w, indent+"(none)")
		}
		for _, item := range x {
			if isScalar(item) {
				fmt.Fprintf(w, "%s- %s\n", indent, cell(item))
				continue
			}
			// "- " takes the place of the item's indent on its first line.
			var b strings.Builder
			writeTree(&b, item, indent+"  ")
			fmt.Fprint(w, indent+"- "+strings.TrimPrefix(b.String(), indent+"  "))
		}
	default:
		fmt.Fprintln(w, indent+cell(x))
	}
}

// zeroTime reports whether v is Go's zero time as JSON encodes it.
func zeroTime(v any) bool {
	s, ok := v.(string)
	return ok && strings.HasPrefix(s, "0001-01-01T00:00:00")
}

func isScalar(v any) bool {
	switch v.(type) {
	case *object, []any:
		return false
	}
	return true
}
