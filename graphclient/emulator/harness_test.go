package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The demo tenant of the README and the seed pages.
const (
	tenantID = "contoso.example"
	appID    = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	appKey   = "demo-secret"
	alice    = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
	bob      = "66825e03-7ef5-42da-9069-724602c31f6b"
	carol    = "dc74d9bb-6afe-433d-8eaa-e39d80d3a647" // the seed pages' third user
	dave     = "9a0f3c55-1b7e-4f63-9d2a-6c1e2f3b4a5d" // in the other tenant
	graphURL = "https://graph.microsoft.com/.default"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// testConfig is the demo configuration plus a read-only app, an app
// without roles, and a second tenant.
func testConfig() Config {
	return Config{
		Tenants: []Tenant{{
			ID: tenantID,
			Apps: []App{
				{ClientID: appID, ClientSecret: appKey, Roles: []string{"Presence.ReadWrite.All", "Presence.Read.All", "User.Read.All"}},
				{ClientID: "reader", ClientSecret: "reader-secret", Roles: []string{"Presence.Read.All"}},
				{ClientID: "nobody", ClientSecret: "nobody-secret"},
				{ClientID: "calendar", ClientSecret: "calendar-secret", Roles: []string{"Calendars.Read"}},
			},
			Users: []User{
				{ID: alice, UserPrincipalName: "alice@contoso.example", DisplayName: "Alice", Mail: "alice@contoso.example"},
				{ID: bob, UserPrincipalName: "bob@contoso.example", DisplayName: "Bob"},
				{ID: carol, UserPrincipalName: "carol@contoso.example"},
			},
		}, {
			ID:    "fabrikam.example",
			Apps:  []App{{ClientID: "fabrikam-app", ClientSecret: "fabrikam-secret", Roles: []string{"Presence.ReadWrite.All", "User.Read.All"}}},
			Users: []User{{ID: dave, UserPrincipalName: "dave@fabrikam.example"}},
		}},
		Admin: Admin{Writes: true, TestClock: true},
	}
}

// harness is an emulator on a fake clock served over real HTTP on
// 127.0.0.1, with a token of the demo app.
type harness struct {
	t     testing.TB
	em    *Emulator
	clock *FakeClock
	url   string
	token string
}

func newHarness(t testing.TB, mutate ...func(*Config)) *harness {
	t.Helper()
	cfg := testConfig()
	for _, m := range mutate {
		m(&cfg)
	}
	clock := NewFakeClock(t0)
	em, err := New(cfg, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(em)
	t.Cleanup(srv.Close)
	h := &harness{t: t, em: em, clock: clock, url: srv.URL}
	h.token = h.appToken(tenantID, appID, appKey)
	return h
}

// appToken gets a client-credentials token through the token endpoint.
func (h *harness) appToken(tenant, id, secret string) string {
	h.t.Helper()
	status, body := h.tokenRequest(tenant, url.Values{"client_id": {id}, "client_secret": {secret}, "grant_type": {"client_credentials"}, "scope": {graphURL}}, "")
	if status != http.StatusOK {
		h.t.Fatalf("token for %s: %d %v", id, status, body)
	}
	return body["access_token"].(string)
}

// tokenRequest posts form to the token endpoint, with Basic credentials
// "id:secret" when basic is set.
func (h *harness) tokenRequest(tenant string, form url.Values, basic string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.url+"/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != "" {
		id, secret, _ := strings.Cut(basic, ":")
		req.SetBasicAuth(id, secret)
	}
	status, _, body := h.send(req)
	return status, body
}

// send sends req and decodes a JSON answer (nil for an empty one).
func (h *harness) send(req *http.Request) (int, http.Header, map[string]any) {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			h.t.Fatalf("%s %s: answer is not a JSON object: %q", req.Method, req.URL.Path, raw)
		}
	}
	return resp.StatusCode, resp.Header, body
}

// do sends a Graph request with the harness token, or with token[0] if
// given ("" for none). A non-nil body is sent as JSON.
func (h *harness) do(method, path string, body any, token ...string) (int, map[string]any) {
	h.t.Helper()
	status, _, out := h.doHeader(method, path, body, token...)
	return status, out
}

func (h *harness) doHeader(method, path string, body any, token ...string) (int, http.Header, map[string]any) {
	h.t.Helper()
	var r io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			r = strings.NewReader(s)
		} else {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
	}
	req, _ := http.NewRequest(method, h.url+path, r)
	tok := h.token
	if len(token) > 0 {
		tok = token[0]
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return h.send(req)
}

// admin sends an admin API request without a token.
func (h *harness) admin(method, path string, body string) (int, map[string]any) {
	h.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, h.url+path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	status, _, out := h.send(req)
	return status, out
}

// set calls setPresence for user as the demo app and returns the status.
func (h *harness) set(user, availability, activity, expiration string) int {
	h.t.Helper()
	body := map[string]string{"sessionId": appID, "availability": availability, "activity": activity}
	if expiration != "" {
		body["expirationDuration"] = expiration
	}
	status, _ := h.do("POST", "/v1.0/users/"+user+"/presence/setPresence", body)
	return status
}

// presence returns a user's aggregate as "Availability/Activity".
func (h *harness) presence(user string) string {
	h.t.Helper()
	v, ok := h.em.Presence(user)
	if !ok {
		h.t.Fatalf("no user %s", user)
	}
	return v.Availability + "/" + v.Activity
}

// errorCode returns a Graph error body's code, failing if the body is not
// in Graph's error shape.
func errorCode(t testing.TB, body map[string]any) string {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	if !ok {
		t.Fatalf("not a Graph error: %v", body)
	}
	inner, ok := e["innerError"].(map[string]any)
	if !ok || inner["request-id"] == "" || inner["date"] == "" {
		t.Fatalf("error without innerError date and request-id: %v", body)
	}
	code, _ := e["code"].(string)
	return code
}

// mustRequest builds a request, failing the test on error.
func mustRequest(t testing.TB, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// decodeJSON decodes a response body into v and closes it.
func decodeJSON(t testing.TB, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", resp.Request.URL, err)
	}
}
