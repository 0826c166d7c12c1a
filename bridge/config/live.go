package config

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// Limits on a directory file, so that a wrong path (a disk image, a log)
// fails fast instead of filling memory.
const (
	MaxDirectoryFileSize = 64 << 20
	MaxDirectoryRows     = 1_000_000
)

// loadDirectoryFile merges the entries of directory_file, when set, into
// c.Directory. A key both inline and in the file is a problem, as is any
// bad row (named by its row number).
func (c *Config) loadDirectoryFile(baseDir string) []string {
	if c.DirectoryFile == "" {
		return nil
	}
	path := c.DirectoryFile
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	entries, problems := ReadDirectoryFile(path)
	if c.Directory == nil {
		c.Directory = make(map[string]string, len(entries))
	}
	inline := make(map[string]bool, len(c.Directory))
	for k := range c.Directory {
		inline[adapters.NormalizeIdentity(k)] = true
	}
	for _, e := range entries {
		if inline[adapters.NormalizeIdentity(e.Key)] {
			problems = append(problems, fmt.Sprintf("row %d: key %q is also in the inline directory", e.Row, e.Key))
			continue
		}
		c.Directory[e.Key] = e.User
	}
	for i, p := range problems {
		problems[i] = "directory_file: " + p
	}
	return problems
}

// DirectoryEntry is one row of a directory file.
type DirectoryEntry struct {
	Row  int
	Key  string
	User string
}

// ReadDirectoryFile reads a directory file: CSV (".csv") with the columns
// key,user, or YAML (".yaml", ".yml") mapping keys to users like the inline
// directory. It returns the good rows and one problem per bad row.
func ReadDirectoryFile(path string) ([]DirectoryEntry, []string) {
	f, err := os.Open(path)
	if err != nil {
		return nil, []string{fmt.Sprintf("read: %v", err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxDirectoryFileSize+1))
	if err != nil {
		return nil, []string{fmt.Sprintf("read: %v", err)}
	}
	if len(data) > MaxDirectoryFileSize {
		return nil, []string{fmt.Sprintf("larger than %d bytes", MaxDirectoryFileSize)}
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return ParseDirectoryCSV(data)
	case ".yaml", ".yml":
		return ParseDirectoryYAML(data)
	}
	return nil, []string{"must end in .csv, .yaml or .yml"}
}

// ParseDirectoryCSV parses a directory as CSV: one key,user pair a row,
// an optional "key,user" header, lines starting with # ignored. Rows are
// numbered from 1 as an editor shows them.
func ParseDirectoryCSV(data []byte) ([]DirectoryEntry, []string) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	var rows []rawRow
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, []string{fmt.Sprintf("csv: %v", err)}
		}
		line, _ := r.FieldPos(0)
		if len(rows) == 0 && len(rec) == 2 && strings.EqualFold(strings.TrimSpace(rec[0]), "key") && strings.EqualFold(strings.TrimSpace(rec[1]), "user") {
			continue
		}
		if len(rows) >= MaxDirectoryRows {
			return nil, []string{fmt.Sprintf("more than %d rows", MaxDirectoryRows)}
		}
		rows = append(rows, rawRow{line: line, fields: rec})
	}
	return checkRows(rows)
}

// ParseDirectoryYAML parses a directory as a YAML mapping of keys to users.
func ParseDirectoryYAML(data []byte) ([]DirectoryEntry, []string) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, []string{yamlProblem(err)}
	}
	if len(root.Content) == 0 {
		return nil, nil
	}
	m := root.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, []string{fmt.Sprintf("row %d: must be a mapping of keys to users", m.Line)}
	}
	if len(m.Content)/2 > MaxDirectoryRows {
		return nil, []string{fmt.Sprintf("more than %d rows", MaxDirectoryRows)}
	}
	rows := make([]rawRow, 0, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		row := rawRow{line: k.Line, fields: []string{k.Value, v.Value}}
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			row.fields = nil // reported as malformed
		}
		rows = append(rows, row)
	}
	return checkRows(rows)
}

type rawRow struct {
	line   int
	fields []string
}

// checkRows turns rows into entries: two non-empty fields, the user a UPN
// or an object id, each key (as adapters normalise it) once.
func checkRows(rows []rawRow) ([]DirectoryEntry, []string) {
	var problems []string
	entries := make([]DirectoryEntry, 0, len(rows))
	seen := make(map[string]int, len(rows))
	for _, r := range rows {
		if len(r.fields) != 2 {
			problems = append(problems, fmt.Sprintf("row %d: want a key and a user, got %d fields", r.line, len(r.fields)))
			continue
		}
		key, user := strings.TrimSpace(r.fields[0]), strings.TrimSpace(r.fields[1])
		switch norm := adapters.NormalizeIdentity(key); {
		case key == "" || user == "":
			problems = append(problems, fmt.Sprintf("row %d: the key and the user must not be empty", r.line))
		case !strings.Contains(user, "@") && !isObjectID(user):
			problems = append(problems, fmt.Sprintf("row %d: user %q is neither a UPN nor an object id", r.line, user))
		case seen[norm] != 0:
			problems = append(problems, fmt.Sprintf("row %d: key %q is already on row %d", r.line, key, seen[norm]))
		default:
			seen[norm] = r.line
			entries = append(entries, DirectoryEntry{Row: r.line, Key: key, User: user})
		}
	}
	return entries, problems
}

// isObjectID reports whether s has the shape of a GUID.
func isObjectID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// scalarProblems walks a YAML node against the Go type it decodes into and
// returns one problem per scalar value that does not decode (a duration
// written "10 parsecs", a number written "lots"), each naming its key's
// path, so that all of them are reported at once.
func scalarProblems(node *yaml.Node, t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch node.Kind {
	case yaml.DocumentNode:
		if len(node.Content) == 0 {
			return nil
		}
		return scalarProblems(node.Content[0], t, path)
	case yaml.AliasNode:
		if node.Alias != nil {
			return scalarProblems(node.Alias, t, path)
		}
		return nil
	case yaml.ScalarNode:
		if t.Kind() == reflect.Struct && t != reflect.TypeOf(time.Time{}) || t.Kind() == reflect.Map || t.Kind() == reflect.Slice || node.Tag == "!!null" {
			return nil // yaml reports the shape itself
		}
		if err := node.Decode(reflect.New(t).Interface()); err != nil {
			if t == reflect.TypeOf(time.Duration(0)) {
				return []string{fmt.Sprintf("%s: must be a duration such as 30s, 5m or 4h (got %q, line %d)", path, node.Value, node.Line)}
			}
			want := "a value of type " + t.String()
			switch t.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				want = "a whole number"
			case reflect.Float32, reflect.Float64:
				want = "a number"
			case reflect.Bool:
				want = "true or false"
			}
			return []string{fmt.Sprintf("%s: must be %s (got %q, line %d)", path, want, node.Value, node.Line)}
		}
		return nil
	}
	var problems []string
	switch {
	case t.Kind() == reflect.Struct && node.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			if ft, ok := fields[node.Content[i].Value]; ok {
				problems = append(problems, scalarProblems(node.Content[i+1], ft, join(path, node.Content[i].Value))...)
			}
		}
	case t.Kind() == reflect.Map && node.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			problems = append(problems, scalarProblems(node.Content[i+1], t.Elem(), join(path, node.Content[i].Value))...)
		}
	case t.Kind() == reflect.Slice && node.Kind == yaml.SequenceNode:
		for i, item := range node.Content {
			problems = append(problems, scalarProblems(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return problems
}

// Warnings returns what is allowed but probably wrong in a valid
// configuration: two sources sharing a bearer token (the bridge could not
// tell their events apart) or a webhook secret. Warnings name sources,
// never the secret.
func (c *Config) Warnings() []string {
	var warnings []string
	for _, kind := range []struct {
		name string
		get  func(Source) string
	}{{"token", func(s Source) string { return s.Token }}, {"secret", func(s Source) string { return s.Secret }}} {
		first := map[string]int{}
		for i, s := range c.Sources {
			v := kind.get(s)
			if v == "" {
				continue
			}
			if j, ok := first[v]; ok {
				warnings = append(warnings, fmt.Sprintf("sources[%d] (%s) has the same %s as sources[%d] (%s)", i, s.Name, kind.name, j, c.Sources[j].Name))
				continue
			}
			first[v] = i
		}
	}
	return append(warnings, c.twoWayWarnings()...)
}

// DirectoryFileOf returns the directory_file a configuration document
// names, as written, even when the document is otherwise invalid.
func DirectoryFileOf(data []byte) string {
	var doc struct {
		DirectoryFile string `yaml:"directory_file"`
	}
	_ = yaml.Unmarshal(data, &doc)
	return doc.DirectoryFile
}
