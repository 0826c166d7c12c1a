package graphclient_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient"
)

const (
	tenant   = "contoso.example"
	clientID = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	secret   = "s3cr3t~Value+With/Odd=Chars"
	aliceID  = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
	// tokenPrefix starts every access token the fake issues, so tests can
	// look for leaks.
	tokenPrefix = "eyJfake-access-token-"
)

// call is one request the fake Graph saw.
type call struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   string
}

// fake is a token endpoint and a Graph on one httptest server on
// 127.0.0.1. Tests replace graph (and, for token failures, token) with
// small handler functions.
type fake struct {
	srv *httptest.Server

	mu        sync.Mutex
	expiresIn int              // lifetime of issued tokens, seconds
	token     http.HandlerFunc // token endpoint; nil: the default one
	graph     http.HandlerFunc // Graph; nil: 200 {}
	issued    []string
	tokenHits int
	calls     []call
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{expiresIn: 3599}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/"+tenant+"/oauth2/v2.0/token" {
		f.mu.Lock()
		f.tokenHits++
		h := f.token
		f.mu.Unlock()
		if h == nil {
			h = f.defaultToken
		}
		h(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, call{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(body)})
	h := f.graph
	f.mu.Unlock()
	if !strings.HasPrefix(r.URL.Path, "/v1.0/") {
		http.NotFound(w, r)
		return
	}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }
	}
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	h(w, r)
}

// defaultToken checks the client credentials form like Entra and issues a
// numbered token.
func (f *fake) defaultToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch {
	case r.PostForm.Get("grant_type") != "client_credentials", r.PostForm.Get("client_id") != clientID:
		identityError(w, http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application not found.")
		return
	case r.PostForm.Get("client_secret") != secret:
		identityError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		return
	case !strings.HasPrefix(r.PostForm.Get("scope"), "http://127.0.0.1:") || !strings.HasSuffix(r.PostForm.Get("scope"), "/.default"):
		identityError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope "+r.PostForm.Get("scope")+" is not valid.")
		return
	}
	f.mu.Lock()
	tok := fmt.Sprintf("%s%d", tokenPrefix, len(f.issued)+1)
	f.issued = append(f.issued, tok)
	exp := f.expiresIn
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": exp, "ext_expires_in": exp, "access_token": tok})
}

func identityError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"error": code, "error_description": desc + "\r\nTrace ID: 0a1b-trace\r\nCorrelation ID: 9c8d\r\nTimestamp: 2026-11-23 10:00:00Z",
		"error_codes": []int{7000215}, "timestamp": "2026-11-23 10:00:00Z", "trace_id": "0a1b-trace", "correlation_id": "9c8d",
	})
}

// graphError writes Graph's error body.
func graphError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", "hdr-request-id")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"innerError": map[string]any{"date": "2026-11-23T10:00:00", "request-id": "req-" + code, "client-request-id": "crid-" + code},
	}})
}

func (f *fake) setGraph(h http.HandlerFunc) {
	f.mu.Lock()
	f.graph = h
	f.mu.Unlock()
}

func (f *fake) setToken(h http.HandlerFunc) {
	f.mu.Lock()
	f.token = h
	f.mu.Unlock()
}

func (f *fake) tokenRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenHits
}

func (f *fake) graphCalls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// latestToken is the last token issued, the only one the strict Graph
// handler accepts.
func (f *fake) latestToken() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.issued) == 0 {
		return ""
	}
	return f.issued[len(f.issued)-1]
}

func (f *fake) config() graphclient.Config {
	return graphclient.Config{
		TenantID: tenant, ClientID: clientID, ClientSecret: secret,
		GraphBaseURL: f.srv.URL + "/v1.0", LoginBaseURL: f.srv.URL, Timeout: 2 * time.Second,
	}
}

func (f *fake) client(t *testing.T) *graphclient.Client {
	t.Helper()
	c, err := graphclient.New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// respond answers every Graph request with status and body.
func respond(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}
