// Package adaptertest is the conformance suite every source adapter runs:
// signatures, replay windows, malformed and oversized bodies, handshakes,
// and golden fixtures in testdata/<case>/ (request.body plus, when the
// vendor needs them, request.query; events.golden.json is the expected
// canonical events).
package adaptertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Now is the fixed time the suite runs at; fixtures are dated near it.
var Now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// BodyLimit is the body limit adapters get in the suite.
const BodyLimit = 16 << 10

// Suite describes one adapter to the conformance suite.
type Suite struct {
	// New builds the adapter with cfg (the suite sets Now and BodyLimit).
	New func(cfg adapters.SourceConfig) (adapters.Adapter, error)
	// Config is the source configuration, with its secrets.
	Config adapters.SourceConfig
	// Request returns a request for body, signed as the vendor signs at
	// time at; unsigned leaves the proof out.
	Request func(t *testing.T, body []byte, at time.Time, signed bool) *http.Request
	// Timestamped says the scheme signs a timestamp, so stale requests
	// must be refused.
	Timestamped bool
	// TokenOnly says the vendor proves the sender with a shared token but
	// does not sign the body (RingCentral), so an altered body can not be
	// told from the original.
	TokenOnly bool
	// Malformed is a body the vendor could sign that is not valid.
	Malformed []byte
	// Handshakes are the vendor's URL validations and their checks.
	Handshakes []Handshake
}

// Handshake is one validation request and what the answer must be.
type Handshake struct {
	Name    string
	Request func(t *testing.T) *http.Request
	Check   func(t *testing.T, w *httptest.ResponseRecorder)
}

// Run runs the suite.
func Run(t *testing.T, s Suite) {
	t.Helper()
	cfg := s.Config
	cfg.Now = func() time.Time { return Now }
	cfg.BodyLimit = BodyLimit
	adapter, err := s.New(cfg)
	if err != nil {
		t.Fatalf("new adapter: %v", err)
	}
	cases, err := filepath.Glob("testdata/*/request.body")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden fixtures in testdata/<case>/request.body")
	}
	for _, path := range cases {
		dir := filepath.Dir(path)
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("golden/"+filepath.Base(dir), func(t *testing.T) {
			events, err := adapter.Decode(s.Request(t, body, Now, true))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			for i, e := range events {
				if e.Source != cfg.Name {
					t.Errorf("event %d has source %q, want %q", i, e.Source, cfg.Name)
				}
				if err := e.Validate(""); err != nil {
					t.Errorf("event %d is not a valid canonical event: %v", i, err)
				}
			}
			compareGolden(t, filepath.Join(dir, "events.golden.json"), events)
		})
	}
	first, _ := os.ReadFile(cases[0])
	t.Run("unsigned is 401", func(t *testing.T) {
		expectStatus(t, adapter, s.Request(t, first, Now, false), http.StatusUnauthorized)
	})
	t.Run("altered by one byte is 401", func(t *testing.T) {
		if s.TokenOnly {
			t.Skip("the vendor does not sign the body")
		}
		// Signed for the original body, sent with one bit flipped.
		req := s.Request(t, first, Now, true)
		altered := bytes.Clone(first)
		altered[len(altered)/2] ^= 0x01
		req.Body = readCloser(altered)
		expectStatus(t, adapter, req, http.StatusUnauthorized)
	})
	if s.Timestamped {
		t.Run("stale timestamp is 401", func(t *testing.T) {
			expectStatus(t, adapter, s.Request(t, first, Now.Add(-10*time.Minute), true), http.StatusUnauthorized)
		})
		t.Run("future timestamp is 401", func(t *testing.T) {
			expectStatus(t, adapter, s.Request(t, first, Now.Add(10*time.Minute), true), http.StatusUnauthorized)
		})
	}
	t.Run("malformed is 400", func(t *testing.T) {
		expectStatus(t, adapter, s.Request(t, s.Malformed, Now, true), http.StatusBadRequest)
	})
	t.Run("oversized is 413", func(t *testing.T) {
		big := append(bytes.Clone(first), bytes.Repeat([]byte(" "), BodyLimit)...)
		expectStatus(t, adapter, s.Request(t, big, Now, true), http.StatusRequestEntityTooLarge)
	})
	for _, h := range s.Handshakes {
		t.Run("handshake/"+h.Name, func(t *testing.T) {
			hs, ok := adapter.(adapters.Handshaker)
			if !ok {
				t.Fatal("adapter does not answer handshakes")
			}
			w := httptest.NewRecorder()
			if !hs.Handshake(w, h.Request(t)) {
				t.Fatal("handshake not recognised")
			}
			h.Check(t, w)
		})
	}
}

func expectStatus(t *testing.T, a adapters.Adapter, req *http.Request, status int) {
	t.Helper()
	_, err := a.Decode(req)
	var reqErr *adapters.RequestError
	if !errors.As(err, &reqErr) {
		t.Fatalf("want a %d RequestError, got %v", status, err)
	}
	if reqErr.Status != status {
		t.Fatalf("status %d (%s), want %d", reqErr.Status, reqErr.Message, status)
	}
}

func compareGolden(t *testing.T, path string, events []adapters.Event) {
	t.Helper()
	if events == nil {
		events = []adapters.Event{}
	}
	got, err := json.MarshalIndent(events, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Fatalf("events differ from %s\n got: %s\nwant: %s", path, got, want)
	}
}

type bodyReader struct{ *bytes.Reader }

func (bodyReader) Close() error { return nil }

func readCloser(b []byte) bodyReader { return bodyReader{bytes.NewReader(b)} }

// JSONRequest builds a POST with a JSON body to /hook.
func JSONRequest(body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// Seeds returns the golden request bodies, for fuzz seeds.
func Seeds(f *testing.F) [][]byte {
	paths, _ := filepath.Glob("testdata/*/request.body")
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		f.Fatal("no seeds")
	}
	return out
}

// Fuzz feeds the golden bodies, then mutations of them, to an adapter as
// signed requests: it must never panic, every error must carry an HTTP
// status, and every event it accepts must be a valid canonical event.
func Fuzz(f *testing.F, a adapters.Adapter, request func(t *testing.T, body []byte) *http.Request) {
	for _, s := range Seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := request(t, body)
		if hs, ok := a.(adapters.Handshaker); ok && hs.Handshake(httptest.NewRecorder(), req) {
			return
		}
		events, err := a.Decode(req)
		if err != nil {
			var reqErr *adapters.RequestError
			if !errors.As(err, &reqErr) {
				t.Fatalf("error without an HTTP status: %v", err)
			}
			return
		}
		for _, e := range events {
			if err := e.Validate(""); err != nil {
				t.Fatalf("accepted an invalid event %+v: %v", e, err)
			}
		}
	})
}
