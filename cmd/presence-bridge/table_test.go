package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"text/tabwriter"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestTablesGolden(t *testing.T) {
	rows := func(s string) []json.RawMessage {
		var r []json.RawMessage
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		golden string
		write  func(*bytes.Buffer) error
	}{
		{"status-tenants.golden", func(b *bytes.Buffer) error {
			return writeTable(b, rows(`[
				{"id":"contoso.example","writing":true,"sessionCapacity":3333},
				{"id":"fabrikam.example","writing":false,"refused":"403 Authorization_RequestDenied: missing\tPresence.ReadWrite.All","refusedUntil":"2026-11-23T10:05:00Z","sessionCapacity":0,"extra":{"a":1,"b":[true,null]}}]`))
		}},
		{"status-sources.golden", func(b *bytes.Buffer) error {
			return writeTable(b, rows(`[
				{"name":"demo","type":"generic","tenant":"contoso.example","path":"/v1/hooks/demo","auth":["token"]},
				{"name":"zoom","type":"zoomphone","tenant":"contoso.example","path":"/v1/hooks/zoom","auth":["secret"]},
				{"name":"both","type":"generic","tenant":"fabrikam.example","path":"/hooks/both","auth":["token","secret"]}]`))
		}},
		{"empty.golden", func(b *bytes.Buffer) error { return writeTable(b, nil) }},
		{"dlq-list.golden", func(b *bytes.Buffer) error {
			at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.FixedZone("CET", 3600))
			return writeDeadLetters(tabwriter.NewWriter(b, 0, 0, 2, ' ', 0), []deadLetter{
				{Seq: 1, Source: "demo", Reason: `unknown user: "ext:404" is not in the directory`, At: at},
				{Seq: 12, Source: "pbx", Reason: "graph refused the change", GraphError: "403 Forbidden (request-id 5f1c)", At: at.Add(time.Hour)},
				{Seq: 130, Reason: "undecodable\nevent", At: at.Add(2 * time.Hour)},
			})
		}},
		{"why.golden", func(b *bytes.Buffer) error {
			doc, err := decodeOrdered([]byte(`{"state":{"tenant":"t","userId":"u","calls":{"demo/c1":{"source":"demo","state":"active"}},
				"told":{"pair":{"availability":"Busy","activity":"InACall"},"at":"2026-11-23T10:00:00Z"},"manual":null},
				"desired":{"availability":"Busy","activity":"InACall"},"history":[{"event":"e1","changed":false,"why":"older"},"note",[]],"empty":{}}`))
			if err != nil {
				return err
			}
			writeTree(b, doc, "")
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.write(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, b.Bytes())
		})
	}
}

// FuzzDecodeOrdered: any answer the bridge (or something pretending to be
// it) sends decodes or fails, and renders, without panicking.
func FuzzDecodeOrdered(f *testing.F) {
	for _, seed := range []string{`{"a":1,"b":[{"c":null}],"a":2}`, `[`, `[[[[[[]]]]]]`, `"x"`, `{"a":{"b":{}}} 1`, `{}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		doc, err := decodeOrdered(data)
		if err != nil {
			return
		}
		var b bytes.Buffer
		writeTree(&b, doc, "")
		if list, ok := doc.([]any); ok {
			raws := make([]json.RawMessage, 0, len(list))
			for _, item := range list {
				raw, _ := json.Marshal(plain(item))
				raws = append(raws, raw)
			}
			_ = writeTable(&b, raws)
		}
	})
}

// plain turns decoded values back into what encoding/json marshals.
func plain(v any) any {
	switch x := v.(type) {
	case *object:
		m := map[string]any{}
		for k, child := range x.values {
			m[k] = plain(child)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, child := range x {
			out[i] = plain(child)
		}
		return out
	}
	return v
}

// TestTreeOmitsZeroTimes: a time never set (what Graph was told after a
// clear has no expiry) is left out of why's text, not shown as year 1.
func TestTreeOmitsZeroTimes(t *testing.T) {
	doc, err := decodeOrdered([]byte(`{"told":{"at":"2026-12-07T10:00:00Z","expires":"0001-01-01T00:00:00Z"},"pending":null}`))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeTree(&b, doc, "")
	want := "told:\n  at: 2026-12-07T10:00:00Z\npending: -\n"
	if b.String() != want {
		t.Fatalf("tree\n%s\nwant\n%s", b.String(), want)
	}
}
