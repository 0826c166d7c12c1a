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
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
	// MediaType is the Content-Type the vendor sends; application/json
	// when empty. Any other is refused with 415, and signed junk in it
	// (or in JSON, a repeated key) with 400.
	MediaType string
	// Handshakes are the vendor's URL validations and their checks.
	Handshakes []Handshake
	// InvalidText are bodies the vendor could sign whose text is not valid
	// UTF-8 (a stray byte, an escaped lone surrogate, a "%FF"): each must
	// be refused with 400 naming its field, never turned into U+FFFD.
	InvalidText []TextCase
}

// TextCase is a signed body with bad text and the field the 400 names.
type TextCase struct {
	Name  string
	Body  []byte
	Field string
}

// Handshake is one of the vendor's URL validations and what the answer
// must be. No validation may be answered before the request is proven by
// whatever the vendor offers: the suite checks that an unproven, a forged
// and (for timestamped schemes) a stale validation get no answer, and
// that Decode then refuses them with 401.
type Handshake struct {
	Name string
	// Request returns the validation request, proven as the vendor proves
	// it (signature, token) at time at when proven is true, and without
	// any proof otherwise.
	Request func(t *testing.T, at time.Time, proven bool) *http.Request
	// Forged returns the validation request with a wrong proof: a
	// signature made with another secret, a token off by one byte.
	Forged func(t *testing.T) *http.Request
	// Unproven, when set, says why the vendor's validation carries no
	// proof at all; the unproven and forged checks are then skipped, and
	// Unsafe must show that the echo is bounded.
	Unproven string
	// Unsafe are validation requests, proven if the vendor proves them,
	// whose token must not be echoed (too long, control characters, a
	// token shaped like a signed message); Decode must refuse them with
	// 400.
	Unsafe []func(t *testing.T) *http.Request
	Check  func(t *testing.T, w *httptest.ResponseRecorder)
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
	mediaType := s.MediaType
	if mediaType == "" {
		mediaType = "application/json"
	}
	t.Run("wrong content type is 415", func(t *testing.T) {
		for _, ct := range []string{"text/plain", "", "application/xml", otherMediaType(mediaType)} {
			req := s.Request(t, first, Now, true)
			req.Header.Set("Content-Type", ct)
			expectStatus(t, adapter, req, http.StatusUnsupportedMediaType)
		}
		req := s.Request(t, first, Now, true)
		req.Header.Set("Content-Type", mediaType+"; charset=utf-8")
		if _, err := adapter.Decode(req); err != nil {
			t.Fatalf("%s with a charset: %v", mediaType, err)
		}
	})
	t.Run("signed junk is 400", func(t *testing.T) {
		junk := []string{`null`, `{}`, `[]`, `"junk"`, `junk`, `{"unrelated":true}`, `[{"value":[]}]`}
		if mediaType != "application/json" {
			junk = []string{`junk`, `=`, `unrelated=true`, `%zz`}
		}
		for _, body := range junk {
			_, err := adapter.Decode(s.Request(t, []byte(body), Now, true))
			var reqErr *adapters.RequestError
			// Where the proof is a token the body carries, junk lacks it.
			if !errors.As(err, &reqErr) || !(reqErr.Status == http.StatusBadRequest || s.TokenOnly && reqErr.Status == http.StatusUnauthorized) {
				t.Errorf("signed %q: %v, want a 400", body, err)
			}
		}
	})
	t.Run("repeated key is 400 naming it", func(t *testing.T) {
		for _, path := range cases {
			body, _ := os.ReadFile(path)
			repeated, key := repeatFirstKey(t, body, mediaType)
			_, err := adapter.Decode(s.Request(t, repeated, Now, true))
			var reqErr *adapters.RequestError
			if !errors.As(err, &reqErr) || reqErr.Status != http.StatusBadRequest || !namesField(err, key) {
				t.Errorf("%s with %q repeated: %v, want a 400 naming it", path, key, err)
			}
		}
	})
	t.Run("oversized is 413", func(t *testing.T) {
		big := append(bytes.Clone(first), bytes.Repeat([]byte(" "), BodyLimit)...)
		expectStatus(t, adapter, s.Request(t, big, Now, true), http.StatusRequestEntityTooLarge)
	})
	t.Run("invalid text is 400 naming the field", func(t *testing.T) {
		if len(s.InvalidText) == 0 {
			t.Fatal("no InvalidText cases listed")
		}
		for _, c := range s.InvalidText {
			t.Run(c.Name, func(t *testing.T) {
				expectStatus(t, adapter, s.Request(t, c.Body, Now, true), http.StatusBadRequest)
				_, err := adapter.Decode(s.Request(t, c.Body, Now, true))
				var reqErr *adapters.RequestError
				if !errors.As(err, &reqErr) || len(reqErr.Fields) == 0 || reqErr.Fields[0].Field != c.Field {
					t.Fatalf("error %v (%+v) does not name %s", err, reqErr, c.Field)
				}
			})
		}
	})
	t.Run("occurredAt ahead of the clock is 400", func(t *testing.T) {
		// The adapter's clock an hour behind: events dated by the vendor
		// are now far in the future and must be refused, naming
		// occurredAt; events the adapter dates itself stay accepted.
		early := cfg
		early.Now = func() time.Time { return Now.Add(-time.Hour) }
		behind, err := s.New(early)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range cases {
			body, _ := os.ReadFile(path)
			events, err := behind.Decode(s.Request(t, body, Now.Add(-time.Hour), true))
			if err != nil {
				if !namesField(err, "occurredAt") {
					t.Errorf("%s: error %v does not name occurredAt", path, err)
				}
				expectStatus(t, behind, s.Request(t, body, Now.Add(-time.Hour), true), http.StatusBadRequest)
				continue
			}
			for _, e := range events {
				if e.OccurredAt.After(Now.Add(-time.Hour + adapters.DefaultMaxFutureSkew)) {
					t.Errorf("%s: accepted an event dated %s, an hour ahead of the clock", path, e.OccurredAt)
				}
			}
		}
	})
	hs, isHandshaker := adapter.(adapters.Handshaker)
	if isHandshaker && len(s.Handshakes) == 0 {
		t.Fatal("the adapter answers handshakes but the suite lists none")
	}
	if isHandshaker {
		t.Run("no handshake answer for unsigned or altered requests", func(t *testing.T) {
			expectNoAnswer(t, hs, s.Request(t, first, Now, false))
			req := s.Request(t, first, Now, true)
			altered := bytes.Clone(first)
			altered[len(altered)/2] ^= 0x01
			req.Body = readCloser(altered)
			expectNoAnswer(t, hs, req)
		})
	}
	for _, h := range s.Handshakes {
		t.Run("handshake/"+h.Name, func(t *testing.T) {
			if !isHandshaker {
				t.Fatal("adapter does not answer handshakes")
			}
			w := httptest.NewRecorder()
			if !hs.Handshake(w, h.Request(t, Now, true)) {
				t.Fatal("handshake not recognised")
			}
			h.Check(t, w)
		})
		t.Run("handshake/"+h.Name+"/unproven", func(t *testing.T) {
			if h.Unproven != "" {
				t.Skip("the vendor's validation carries no proof: " + h.Unproven)
			}
			refused := map[string]*http.Request{
				"unsigned": h.Request(t, Now, false),
				"forged":   h.Forged(t),
			}
			if s.Timestamped {
				refused["stale"] = h.Request(t, Now.Add(-10*time.Minute), true)
				refused["future"] = h.Request(t, Now.Add(10*time.Minute), true)
			}
			for name, req := range refused {
				t.Run(name, func(t *testing.T) {
					expectNoAnswer(t, hs, req)
					expectStatus(t, adapter, req, http.StatusUnauthorized)
				})
			}
		})
		t.Run("handshake/"+h.Name+"/unsafe", func(t *testing.T) {
			if len(h.Unsafe) == 0 {
				t.Fatal("no unsafe validations listed: show that the echo is bounded")
			}
			for i, unsafe := range h.Unsafe {
				req := unsafe(t)
				if !expectNoAnswer(t, hs, req) {
					t.Errorf("unsafe validation %d was answered", i)
				}
				expectStatus(t, adapter, req, http.StatusBadRequest)
			}
		})
	}
}

// otherMediaType is a body format the vendor does not send.
func otherMediaType(mediaType string) string {
	if mediaType == "application/json" {
		return "application/x-www-form-urlencoded"
	}
	return "application/json"
}

// repeatFirstKey returns body with its first key given twice, with the
// same value (so that only the repetition is wrong), and that key.
func repeatFirstKey(t *testing.T, body []byte, mediaType string) ([]byte, string) {
	t.Helper()
	if mediaType != "application/json" {
		first, _, _ := bytes.Cut(body, []byte("&"))
		key, _, _ := strings.Cut(string(first), "=")
		return append(append(bytes.Clone(first), '&'), body...), key
	}
	repeated, key := repeatKey(body)
	if repeated == nil {
		t.Fatalf("golden body is not a JSON object with a key: %q", body)
	}
	return repeated, key
}

// repeatKey returns a JSON object body with its first member given twice,
// and that member's key; nil when body is not such an object.
func repeatKey(body []byte) ([]byte, string) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, ""
	}
	tok, err := dec.Token()
	key, ok := tok.(string)
	if err != nil || !ok {
		return nil, ""
	}
	var value json.RawMessage
	if err := dec.Decode(&value); err != nil {
		return nil, ""
	}
	open := bytes.IndexByte(body, '{')
	member, _ := json.Marshal(key)
	member = append(append(append(member, ':'), value...), ',')
	return slices.Concat(body[:open+1], member, body[open+1:]), key
}

// expectNoAnswer checks that hs neither answers req nor writes anything.
func expectNoAnswer(t *testing.T, hs adapters.Handshaker, req *http.Request) bool {
	t.Helper()
	w := httptest.NewRecorder()
	if hs.Handshake(w, req) || w.Body.Len() > 0 || len(w.Header()) > 0 {
		t.Errorf("answered without proof: %d %v %q", w.Code, w.Header(), w.Body)
		return false
	}
	return true
}

// namesField reports whether err is a RequestError naming field (or
// events[i].field).
func namesField(err error, field string) bool {
	var reqErr *adapters.RequestError
	if !errors.As(err, &reqErr) {
		return false
	}
	for _, f := range reqErr.Fields {
		if f.Field == field || strings.HasSuffix(f.Field, "."+field) {
			return true
		}
	}
	return false
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
		if repeated, _ := repeatKey(s); repeated != nil {
			f.Add(repeated)
		}
	}
	for _, junk := range []string{`null`, `{}`, `{"unrelated":true}`, `junk`} {
		f.Add([]byte(junk))
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
		if json.Valid(body) && adapters.DuplicateKey(body) != nil {
			t.Fatalf("accepted a body that repeats a key: %q", body)
		}
		for _, e := range events {
			if err := e.Validate(""); err != nil {
				t.Fatalf("accepted an invalid event %+v: %v", e, err)
			}
			if strings.ContainsRune(e.User+e.CallID+e.ID, utf8.RuneError) && !holdsReplacement(body) {
				t.Fatalf("accepted an event whose text holds a U+FFFD the body did not: %+v", e)
			}
		}
	})
}

// holdsReplacement reports whether body spells U+FFFD itself: raw, as a
// JSON escape or percent-encoded.
func holdsReplacement(body []byte) bool {
	lower := bytes.ToLower(body)
	return bytes.ContainsRune(body, utf8.RuneError) || bytes.Contains(lower, []byte(`\ufffd`)) || bytes.Contains(lower, []byte("%ef%bf%bd"))
}
