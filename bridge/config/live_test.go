package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDirectoryFile(t *testing.T) {
	var big strings.Builder
	big.WriteString("key,user\n")
	for i := range 5000 {
		fmt.Fprintf(&big, "ext:%d,user%d@contoso.example\n", 10000+i, i)
	}
	tests := []struct {
		name, file, content string
		inline              string
		want                []string // problems; nil: valid
		entries             int
	}{
		{"csv, thousands of rows", "d.csv", big.String(), "", nil, 5002},
		{"yaml", "d.yaml", "\"ext:1\": a@contoso.example\n\"tel:+1 555 0100\": 0b1e1a7e-0000-4000-8000-000000000001\n", "", nil, 4},
		{"csv problems by row", "d.csv", "# people\next:1,a@contoso.example\next:2\n,b@contoso.example\next:3,bob\nEXT:1,c@contoso.example\next:1003,x@contoso.example\n", "", []string{
			"directory_file: row 3: want a key and a user, got 1 fields",
			"directory_file: row 4: the key and the user must not be empty",
			`directory_file: row 5: user "bob" is neither a UPN nor an object id`,
			`directory_file: row 6: key "EXT:1" is already on row 2`,
			`directory_file: row 7: key "ext:1003" is also in the inline directory`,
		}, 0},
		{"yaml problems by row", "d.yml", "ext:1: a@contoso.example\next:2: [x]\next:3: nobody\n", "", []string{
			"directory_file: row 2: want a key and a user, got 0 fields",
			`directory_file: row 3: user "nobody" is neither a UPN nor an object id`,
		}, 0},
		{"yaml not a mapping", "d.yaml", "- a\n", "", []string{"directory_file: row 1: must be a mapping of keys to users"}, 0},
		{"bad csv quoting", "d.csv", "ext:1,\"a@contoso\n", "", []string{`directory_file: csv: parse error on line 1, column 18: extraneous or missing " in quoted-field`}, 0},
		{"unknown extension", "d.txt", "x", "", []string{"directory_file: must end in .csv, .yaml or .yml"}, 0},
		{"missing file", "", "", "", []string{"directory_file: read: open "}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := "none.csv"
			if tt.file != "" {
				file = tt.file
				if err := os.WriteFile(filepath.Join(dir, file), []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			doc := minimal + "directory_file: " + file + "\ndirectory:\n  ext:1002: b@contoso.example\n  ext:1003: c@contoso.example\n"
			cfg, err := Parse([]byte(doc), dir)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(cfg.Directory) != tt.entries {
					t.Fatalf("%d entries, want %d", len(cfg.Directory), tt.entries)
				}
				return
			}
			var cfgErr *Error
			if !errors.As(err, &cfgErr) {
				t.Fatalf("want *Error, got %v", err)
			}
			got := strings.Join(cfgErr.Problems, "\n")
			if tt.name == "missing file" {
				if !strings.HasPrefix(got, tt.want[0]) {
					t.Fatalf("got %q", got)
				}
				return
			}
			if got != strings.Join(tt.want, "\n") {
				t.Errorf("problems\n got: %q\nwant: %q", cfgErr.Problems, tt.want)
			}
		})
	}
}

func TestWarningsSharedToken(t *testing.T) {
	doc := minimal + "  - {name: two, type: generic, token: t0ken}\n  - {name: three, type: generic, token: other, secret: whsec_x}\n  - {name: four, type: zoomphone, secret: whsec_x}\n"
	cfg, err := Parse([]byte(doc), ".")
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Warnings()
	want := []string{
		"sources[1] (two) has the same token as sources[0] (demo)",
		"sources[3] (four) has the same secret as sources[2] (three)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("warnings\n got: %q\nwant: %q", got, want)
	}
	if strings.Contains(strings.Join(got, ""), "t0ken") || strings.Contains(strings.Join(got, ""), "whsec_x") {
		t.Fatal("a warning shows a secret")
	}
	single, _ := Parse([]byte(minimal), ".")
	if w := single.Warnings(); len(w) != 0 {
		t.Fatalf("warnings for distinct tokens: %q", w)
	}
}

// FuzzDirectoryFile feeds both directory parsers arbitrary files: they
// must not panic, and every entry they return is well formed.
func FuzzDirectoryFile(f *testing.F) {
	for _, seed := range []string{"key,user\next:1,a@b\n", "\"x\": y@z\n", "a,\"b\nc\",d", "- [", ",,,\n#\n", "ext:1: {a: b}\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		for _, parse := range []func([]byte) ([]DirectoryEntry, []string){ParseDirectoryCSV, ParseDirectoryYAML} {
			entries, _ := parse(data)
			for _, e := range entries {
				if e.Key == "" || e.User == "" || e.Row < 1 {
					t.Fatalf("bad entry %+v", e)
				}
			}
		}
	})
}
