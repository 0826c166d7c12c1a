package lookup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/presence-bridge/presence-bridge/bridge/internal/guessguard"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
)

const testToken = "s3cret-lookup-token"

// server serves the lookup API over vs on loopback.
func server(t testing.TB, vs *Views, token string, log *slog.Logger) *httptest.Server {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	Register(r, HTTPOptions{Token: token, Views: vs, Log: log})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

// answer is an HTTP answer, read.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// errorCode is the code of an error answer's JSON body, or "" when the
// body is not one.
func (a answer) errorCode() string {
	var e errorBody
	if json.Unmarshal(a.body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// get asks srv for path with the token and headers (name, value pairs).
func get(t testing.TB, srv *httptest.Server, token, path string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, body}
}

// TestGetPresence: 200 with the view's JSON fields and ETag, 304 for a
// matching If-None-Match (strong or weak), 200 for another, 404 JSON for
// someone not watched, and a tenant filter.
func TestGetPresence(t *testing.T) {
	vs := NewViews(Options{})
	alice := view(contoso, aliceID, "alice@contoso.example", "42", "Busy")
	alice.Activity, alice.Origin, alice.Sources = "InACall", outputs.OriginBridge, []string{"pbx"}
	vs.Set(alice)
	srv := server(t, vs, testToken, nil)

	a := get(t, srv, testToken, "/v1/presence/Alice@Contoso.example")
	if a.status != http.StatusOK || a.header.Get("ETag") != ETag(alice) {
		t.Fatalf("GET = %d, ETag %s; want 200, %s: %s", a.status, a.header.Get("ETag"), ETag(alice), a.body)
	}
	var fields map[string]any
	if err := json.Unmarshal(a.body, &fields); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"user": "alice@contoso.example", "id": aliceID, "tenant": contoso,
		"availability": "Busy", "activity": "InACall", "origin": "bridge", "sources": []any{"pbx"},
		"since": "2026-12-07T09:00:00Z", "seenAt": "2026-12-07T09:00:00Z", "sequenceNumber": "42",
	}
	if len(fields) != len(want) {
		t.Fatalf("fields %v, want %v", fields, want)
	}
	for k, w := range want {
		if got, _ := json.Marshal(fields[k]); string(got) != string(must(json.Marshal(w))) {
			t.Errorf("%s = %s, want %v", k, got, w)
		}
	}

	etag := ETag(alice)
	for _, c := range []struct {
		name, path, inm string
		status          int
		code            string
	}{
		{"matching ETag", "/v1/presence/" + aliceID, etag, http.StatusNotModified, ""},
		{"weak match", "/v1/presence/" + aliceID, "W/" + etag, http.StatusNotModified, ""},
		{"one of a list", "/v1/presence/" + aliceID, `"old", ` + etag, http.StatusNotModified, ""},
		{"any", "/v1/presence/" + aliceID, "*", http.StatusNotModified, ""},
		{"another ETag", "/v1/presence/" + aliceID, `"old"`, http.StatusOK, ""},
		{"in its tenant", "/v1/presence/" + aliceID + "?tenant=" + contoso, "", http.StatusOK, ""},
		{"in another tenant", "/v1/presence/" + aliceID + "?tenant=" + fabrikam, "", http.StatusNotFound, "not_watched"},
		{"not watched", "/v1/presence/carol@contoso.example", "", http.StatusNotFound, "not_watched"},
		{"not watched, waiting", "/v1/presence/carol@contoso.example?wait=30s", `"x"`, http.StatusNotFound, "not_watched"},
		{"wait ends unchanged", "/v1/presence/" + aliceID + "?wait=1ms", etag, http.StatusNotModified, ""},
		{"wait for an old ETag", "/v1/presence/" + aliceID + "?wait=60s", `"old"`, http.StatusOK, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.inm != "" {
				headers = []string{"If-None-Match", c.inm}
			}
			a := get(t, srv, testToken, c.path, headers...)
			if a.status != c.status || a.errorCode() != c.code {
				t.Fatalf("GET %s = %d %s, want %d %s", c.path, a.status, a.body, c.status, c.code)
			}
			if c.status != http.StatusNotFound && a.header.Get("ETag") != etag {
				t.Fatalf("ETag %q, want %s", a.header.Get("ETag"), etag)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestBadRequests: malformed users, waits, If-None-Match headers, limits,
// cursors and tenants are 400 with a JSON body naming the problem.
func TestBadRequests(t *testing.T) {
	vs := NewViews(Options{})
	vs.Set(view(contoso, aliceID, "alice@contoso.example", "1", "Available"))
	srv := server(t, vs, testToken, nil)
	long := strings.Repeat("a", MaxUser+1)
	for _, c := range []struct {
		name, path, inm, code, mentions string
	}{
		{"control character", "/v1/presence/alice%01@contoso.example", "", "bad_user", "control character"},
		{"newline", "/v1/presence/alice%0A", "", "bad_user", "control character"},
		{"too long", "/v1/presence/" + long, "", "bad_user", "longer than 256"},
		{"empty", "/v1/presence/%20", "", "bad_user", "empty"},
		{"not UTF-8", "/v1/presence/%FF", "", "bad_user", "UTF-8"},
		{"wait unparsable", "/v1/presence/" + aliceID + "?wait=soon", "", "bad_wait", "duration"},
		{"wait negative", "/v1/presence/" + aliceID + "?wait=-1s", "", "bad_wait", "negative"},
		{"wait over 60s", "/v1/presence/" + aliceID + "?wait=61s", "", "bad_wait", "over 1m0s"},
		{"If-None-Match too long", "/v1/presence/" + aliceID, `"` + strings.Repeat("x", MaxIfNoneMatch) + `"`, "bad_if_none_match", "longer than 256"},
		{"If-None-Match unquoted", "/v1/presence/" + aliceID, "abc", "bad_if_none_match", "quoted"},
		{"tenant too long", "/v1/presence/" + aliceID + "?tenant=" + long, "", "bad_tenant", "longer than 256"},
		{"limit zero", "/v1/presence?limit=0", "", "bad_limit", "1 to 1000"},
		{"limit over", "/v1/presence?limit=1001", "", "bad_limit", "1 to 1000"},
		{"limit not a number", "/v1/presence?limit=ten", "", "bad_limit", "1 to 1000"},
		{"cursor", "/v1/presence?cursor=" + url.QueryEscape("not a cursor"), "", "bad_cursor", "cursor"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.inm != "" {
				headers = []string{"If-None-Match", c.inm}
			}
			a := get(t, srv, testToken, c.path, headers...)
			if a.status != http.StatusBadRequest || a.errorCode() != c.code || !bytes.Contains(a.body, []byte(c.mentions)) {
				t.Fatalf("GET %.60s = %d %s, want 400 %s mentioning %q", c.path, a.status, a.body, c.code, c.mentions)
			}
		})
	}
}

// TestToken: without a token the API is off (404 saying so); a missing or
// wrong token is 401; repeated wrong tokens from one address are held
// back with 429 and Retry-After, the right token too; the token is never
// logged.
func TestToken(t *testing.T) {
	vs := NewViews(Options{Resolve: func(context.Context, string, string) (string, string, error) {
		return "", "", errors.New("directory unavailable")
	}})
	vs.Set(view(contoso, aliceID, "alice@contoso.example", "1", "Available"))

	off := server(t, vs, "", nil)
	for _, path := range []string{"/v1/presence/" + aliceID, "/v1/presence"} {
		a := get(t, off, testToken, path)
		if a.status != http.StatusNotFound || a.errorCode() != "not_enabled" || !bytes.Contains(a.body, []byte("not enabled")) {
			t.Fatalf("without a token GET %s = %d %s, want 404 not_enabled", path, a.status, a.body)
		}
	}

	var logs bytes.Buffer
	srv := server(t, vs, testToken, slog.New(slog.NewTextHandler(&logs, nil)))
	if a := get(t, srv, testToken, "/v1/presence/ext:1001"); a.status != http.StatusServiceUnavailable || a.errorCode() != "unavailable" {
		t.Fatalf("with a failing directory = %d %s, want 503 unavailable", a.status, a.body)
	}
	if a := get(t, srv, "", "/v1/presence/"+aliceID); a.status != http.StatusUnauthorized || a.errorCode() != "unauthorized" {
		t.Fatalf("without a token = %d %s, want 401", a.status, a.body)
	}
	for i := 1; i < guessguard.Attempts; i++ {
		if a := get(t, srv, "wrong", "/v1/presence"); a.status != http.StatusUnauthorized || a.errorCode() != "unauthorized" {
			t.Fatalf("wrong token %d = %d %s, want 401", i, a.status, a.body)
		}
	}
	if a := get(t, srv, testToken, "/v1/presence"); a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" || a.errorCode() != "too_many_attempts" {
		t.Fatalf("after %d wrong tokens the right one = %d %s (Retry-After %q), want 429", guessguard.Attempts, a.status, a.body, a.header.Get("Retry-After"))
	}
	if logs.Len() == 0 || strings.Contains(logs.String(), testToken) {
		t.Fatalf("logs (want some, without the token): %s", logs.String())
	}
}

// TestLongPoll: a waiting request is answered 200 with the new view when
// another goroutine sets it, and 503 when the store closes; beyond the cap
// on waiters a request is 503 with Retry-After at once.
func TestLongPoll(t *testing.T) {
	vs := NewViews(Options{MaxWaiters: 2})
	v1 := view(contoso, aliceID, "alice@contoso.example", "1", "Available")
	vs.Set(v1)
	srv := server(t, vs, testToken, nil)

	poll := func() <-chan answer {
		waiting := vs.Waiting()
		done := make(chan answer, 1)
		go func() {
			done <- get(t, srv, testToken, "/v1/presence/alice@contoso.example?wait=60s", "If-None-Match", ETag(v1))
		}()
		testpoll.Until(t, "the long-poll to wait", func() bool { return vs.Waiting() > waiting })
		return done
	}

	changed := poll()
	v2 := view(contoso, aliceID, "alice@contoso.example", "2", "Busy")
	go vs.Set(v2)
	a := <-changed
	if a.status != http.StatusOK || a.header.Get("ETag") != ETag(v2) || !bytes.Contains(a.body, []byte(`"availability":"Busy"`)) {
		t.Fatalf("the long-poll = %d %s (ETag %s), want 200 with the new view", a.status, a.body, a.header.Get("ETag"))
	}

	vs.Set(v1)
	first, second := poll(), poll()
	a = get(t, srv, testToken, "/v1/presence/alice@contoso.example?wait=60s", "If-None-Match", ETag(v1))
	if a.status != http.StatusServiceUnavailable || a.errorCode() != "too_many_waiting" || a.header.Get("Retry-After") == "" {
		t.Fatalf("a long-poll beyond the cap = %d %s, want 503 with Retry-After", a.status, a.body)
	}
	vs.Close()
	for _, done := range []<-chan answer{first, second} {
		if a := <-done; a.status != http.StatusServiceUnavailable || a.errorCode() != "stopping" {
			t.Fatalf("a long-poll at Close = %d %s, want 503 stopping", a.status, a.body)
		}
	}
}

// TestListPresence: GET /v1/presence pages with limit and cursor, and
// filters by tenant.
func TestListPresence(t *testing.T) {
	vs := NewViews(Options{})
	vs.Set(view(contoso, aliceID, "alice@contoso.example", "1", "Available"))
	vs.Set(view(contoso, bobID, "bob@contoso.example", "1", "Busy"))
	vs.Set(view(fabrikam, aliceID, aliceID, "1", "Away"))
	srv := server(t, vs, testToken, nil)

	type page struct {
		Presence []outputs.View `json:"presence"`
		Next     string         `json:"next"`
	}
	read := func(path string) page {
		a := get(t, srv, testToken, path)
		if a.status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, a.status, a.body)
		}
		var p page
		if err := json.Unmarshal(a.body, &p); err != nil || p.Presence == nil {
			t.Fatalf("GET %s: %s (%v)", path, a.body, err)
		}
		return p
	}
	var got []string
	for p, path := (page{}), "/v1/presence?limit=2"; ; path = "/v1/presence?limit=2&cursor=" + url.QueryEscape(p.Next) {
		p = read(path)
		for _, v := range p.Presence {
			got = append(got, v.Tenant+"/"+v.Availability)
		}
		if p.Next == "" {
			break
		}
	}
	if want := "contoso.example/Available contoso.example/Busy fabrikam.example/Away"; strings.Join(got, " ") != want {
		t.Fatalf("listed %v, want %s", got, want)
	}
	if p := read("/v1/presence?tenant=" + fabrikam); len(p.Presence) != 1 || p.Presence[0].Availability != "Away" || p.Next != "" {
		t.Fatalf("fabrikam lists %+v", p)
	}
	if p := read("/v1/presence?tenant=northwind.example"); len(p.Presence) != 0 {
		t.Fatalf("an unknown tenant lists %+v", p)
	}
}

// TestLookupAnswerAllocations: answering a lookup allocates only the
// ETag header (its text and its value slice) in the API's own code and
// gin: the token check, the query and the other headers, and the answer's
// JSON allocate nothing, so that a steady stream of lookups makes little
// garbage for the collector.
func TestLookupAnswerAllocations(t *testing.T) {
	if raceOn {
		t.Skip("the race detector changes allocation counts")
	}
	vs := NewViews(Options{})
	people(vs, 10)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	Register(r, HTTPOptions{Token: testToken, Views: vs})
	req := httptest.NewRequest(http.MethodGet, "/v1/presence/user3@contoso.example", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	w := &discard{header: http.Header{}}
	allocs := testing.AllocsPerRun(100, func() {
		clear(w.header)
		r.ServeHTTP(w, req)
	})
	if w.status != http.StatusOK || w.header.Get("ETag") == "" || w.header.Get("Content-Type") != "application/json; charset=utf-8" || w.header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("answer %d, header %v", w.status, w.header)
	}
	if allocs > 2 {
		t.Errorf("a lookup allocates %.0f times, want at most 2 (the ETag header)", allocs)
	}
}
