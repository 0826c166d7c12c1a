package emulator

import (
	"bufio"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// seedCase is testdata/seeds/<case>/case.json: where the example comes
// from and the state it needs (the presence of the users it reads, the
// kind of token).
type seedCase struct {
	Seed     string `json:"seed"`
	Page     string `json:"page"`
	Example  string `json:"example"`
	Note     string `json:"note"`
	Sessions []struct {
		User, Availability, Activity string
	} `json:"sessions"`
	Token json.RawMessage `json:"token"` // "app" or {"user":..., "scopes":[...]}
	Then  *struct {
		User, Presence, Session string
	} `json:"then"`
}

// httpMessage is a request or response transcribed from a seed page.
type httpMessage struct {
	start  string // request or status line
	header http.Header
	body   string
}

func readHTTP(t *testing.T, path string) httpMessage {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	m := httpMessage{header: http.Header{}}
	sc.Scan()
	m.start = strings.TrimSpace(sc.Text())
	for sc.Scan() && strings.TrimSpace(sc.Text()) != "" {
		name, value, _ := strings.Cut(sc.Text(), ":")
		m.header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	var body strings.Builder
	for sc.Scan() {
		body.WriteString(sc.Text() + "\n")
	}
	m.body = strings.TrimSpace(body.String())
	return m
}

// TestSeedExamples replays every request/response example of the seed
// pages (testdata/seeds/*/, each naming its page in case.json) and checks
// the status, the content type and every body field the page shows (the
// pages truncate bodies, so the emulator may send more).
func TestSeedExamples(t *testing.T) {
	entries, err := os.ReadDir("testdata/seeds")
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join("testdata", "seeds", e.Name()))
		}
	}
	if err != nil || len(dirs) != 11 {
		t.Fatalf("seed cases: %v %v", dirs, err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var c seedCase
			raw, err := os.ReadFile(filepath.Join(dir, "case.json"))
			if err != nil || json.Unmarshal(raw, &c) != nil || c.Seed == "" {
				t.Fatalf("case.json: %v", err)
			}
			h := newHarness(t)
			for _, s := range c.Sessions {
				if err := h.em.SetTeamsSession(s.User, s.Availability, s.Activity); err != nil {
					t.Fatal(err)
				}
			}
			token := h.token
			if string(c.Token) != `"app"` {
				var d struct {
					User   string
					Scopes []string
				}
				if err := json.Unmarshal(c.Token, &d); err != nil {
					t.Fatalf("token: %v", err)
				}
				if token, err = h.em.DelegatedToken(d.User, d.Scopes...); err != nil {
					t.Fatal(err)
				}
			}

			req := readHTTP(t, filepath.Join(dir, "request.http"))
			method, target, _ := strings.Cut(req.start, " ")
			u, err := url.Parse(target)
			if err != nil || u.Host != "graph.microsoft.com" {
				t.Fatalf("request line %q", req.start)
			}
			// Where the seed pages are at hand (shared/ beside the repository),
			// check the transcription: the page has this request.
			if page, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "seeds", c.Seed)); err == nil && !strings.Contains(string(page), req.start) {
				t.Fatalf("%s does not contain the request %q", c.Seed, req.start)
			}
			httpReq, _ := http.NewRequest(method, h.url+u.RequestURI(), strings.NewReader(req.body))
			for name, values := range req.header {
				httpReq.Header[name] = values
			}
			httpReq.Header.Set("Authorization", "Bearer "+token)
			status, header, got := h.send(httpReq)

			resp := readHTTP(t, filepath.Join(dir, "response.http"))
			fields := strings.Fields(resp.start)
			want, _ := strconv.Atoi(fields[1])
			if status != want {
				t.Fatalf("status %d, want %d (%v)", status, want, got)
			}
			if ct := resp.header.Get("Content-Type"); ct != "" {
				wantType, _, _ := mime.ParseMediaType(ct)
				gotType, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
				if gotType != wantType {
					t.Fatalf("Content-Type %q, want %q", header.Get("Content-Type"), ct)
				}
			}
			if resp.body == "" {
				if got != nil {
					t.Fatalf("body %v, want none", got)
				}
			} else {
				var wantBody any
				if err := json.Unmarshal([]byte(resp.body), &wantBody); err != nil {
					t.Fatalf("response.http body: %v", err)
				}
				assertSubset(t, "body", wantBody, any(got))
			}
			if header.Get("request-id") == "" {
				t.Fatal("no request-id header")
			}
			if c.Then != nil {
				v, _ := h.em.Presence(c.Then.User)
				if v.Availability+"/"+v.Activity != c.Then.Presence || len(v.Sessions) != 1 || v.Sessions[0].SessionID != c.Then.Session {
					t.Fatalf("afterwards %s, want %s with session %s", v, c.Then.Presence, c.Then.Session)
				}
			}
		})
	}
}

// assertSubset checks that every field of want is in got with the same
// value; got may have more fields (sequenceNumber, @odata.context).
func assertSubset(t *testing.T, path string, want, got any) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Fatalf("%s: got %v, want an object", path, got)
		}
		for k, v := range w {
			gv, present := g[k]
			if !present {
				t.Fatalf("%s.%s missing in %v", path, k, g)
			}
			assertSubset(t, path+"."+k, v, gv)
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			t.Fatalf("%s: got %v, want %d items", path, got, len(w))
		}
		for i := range w {
			assertSubset(t, fmt.Sprintf("%s[%d]", path, i), w[i], g[i])
		}
	default:
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("%s = %v, want %v", path, got, want)
		}
	}
}
