package sipdialog

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestParseDialogInfoGolden parses every document in testdata/dialoginfo
// and compares the result, or the error, with its .golden file.
func TestParseDialogInfoGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/dialoginfo/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no documents: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			if info, err := ParseDialogInfo(body); err != nil {
				got = []byte("error: " + err.Error() + "\n")
			} else {
				got, _ = json.MarshalIndent(info, "", "  ")
				got = append(got, '\n')
			}
			golden := strings.TrimSuffix(file, ".xml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if string(got) != string(want) {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestParseDialogInfoLimits shows that oversized documents are refused.
func TestParseDialogInfoLimits(t *testing.T) {
	many := func(n int) []byte {
		var b strings.Builder
		b.WriteString(`<dialog-info version="1" state="full" entity="sip:1@x">`)
		for i := range n {
			fmt.Fprintf(&b, `<dialog id="d%d"><state>early</state></dialog>`, i)
		}
		b.WriteString(`</dialog-info>`)
		return []byte(b.String())
	}
	if _, err := ParseDialogInfo(many(MaxDialogs)); err != nil {
		t.Errorf("%d dialogs refused: %v", MaxDialogs, err)
	}
	long := `<dialog-info version="1" state="full"><dialog id="` + strings.Repeat("a", maxAttr+1) + `"><state>early</state></dialog></dialog-info>`
	huge := append([]byte(`<dialog-info version="1" state="full">`), make([]byte, MaxDocumentSize)...)
	for name, body := range map[string][]byte{
		"too many dialogs": many(MaxDialogs + 1),
		"too long an id":   []byte(long),
		"too large":        huge,
	} {
		if _, err := ParseDialogInfo(body); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: got %v, want ErrTooLarge", name, err)
		}
	}
}

// FuzzParseDialogInfo feeds the parser anything: it must not panic, and
// whatever it accepts must respect the limits.
func FuzzParseDialogInfo(f *testing.F) {
	files, _ := filepath.Glob("testdata/dialoginfo/*.xml")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<dialog-info version="1" state="partial"><dialog id="&amp;"><state>confirmed</state></dialog></dialog-info>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "aaaa">]><dialog-info version="1" state="full">&a;</dialog-info>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		info, err := ParseDialogInfo(body)
		if err != nil {
			return
		}
		if len(info.Dialogs) > MaxDialogs {
			t.Fatalf("%d dialogs accepted", len(info.Dialogs))
		}
		for _, d := range info.Dialogs {
			if d.ID == "" || len(d.ID) > maxAttr {
				t.Fatalf("dialog id %q accepted", d.ID)
			}
			if canonical(d.State) == "" {
				t.Fatalf("state %q accepted", d.State)
			}
		}
		var tr tracker
		tr.apply(doc(t, "full", 1, "old=confirmed"))
		tr.restart()
		r := tr.apply(info)
		if r.snapshot != info.Full {
			t.Fatalf("snapshot = %v for a document with full = %v", r.snapshot, info.Full)
		}
		if info.Full {
			// A subscription's first full document leaves open only what
			// it lists as going on.
			listed := map[string]bool{}
			for _, d := range info.Dialogs {
				if d.State != StateTerminated {
					listed[d.ID] = true
				}
			}
			for _, id := range tr.openDialogs() {
				if !listed[id] {
					t.Fatalf("dialog %q open after a snapshot that does not list it", id)
				}
			}
		}
		if len(tr.open) > MaxDialogs {
			t.Fatalf("%d dialogs tracked", len(tr.open))
		}
	})
}
