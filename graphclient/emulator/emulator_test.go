package emulator

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	tenantID = "contoso.example"
	appID    = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	appKey   = "demo-secret"
	alice    = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
	bob      = "66825e03-7ef5-42da-9069-724602c31f6b"
	carol    = "dc74d9bb-6afe-433d-8eaa-e39d80d3a647"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

type harness struct {
	t     *testing.T
	em    *Emulator
	clock *FakeClock
	url   string
	token string
}

// newHarness serves an emulator over real HTTP on 127.0.0.1 with a fake
// clock and a token for the demo app.
func newHarness(t *testing.T, mutate ...func(*Config)) *harness {
	t.Helper()
	cfg := Config{
		Tenants: []Tenant{{
			ID: tenantID,
			Apps: []App{
				{ClientID: appID, ClientSecret: appKey, Roles: []string{"Presence.ReadWrite.All", "Presence.Read.All", "User.Read.All"}},
				{ClientID: "reader", ClientSecret: "r", Roles: []string{"Presence.Read.All"}},
				{ClientID: "nobody", ClientSecret: "n"},
			},
			Users: []User{
				{ID: alice, UserPrincipalName: "alice@contoso.example", DisplayName: "Alice", Mail: "alice@contoso.example"},
				{ID: bob, UserPrincipalName: "bob@contoso.example"},
				{ID: carol, UserPrincipalName: "carol@contoso.example"},
			},
		}, {ID: "fabrikam.example", Apps: []App{{ClientID: "other", ClientSecret: "o", Roles: []string{"Presence.ReadWrite.All"}}}}},
		Admin: Admin{Writes: true, TestClock: true},
	}
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
	h.token = h.getToken(tenantID, appID, appKey)
	return h
}

func (h *harness) getToken(tenant, id, secret string) string {
	h.t.Helper()
	status, body := h.form(tenant, url.Values{"client_id": {id}, "client_secret": {secret}, "grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}}, "")
	if status != 200 {
		h.t.Fatalf("token: %d %v", status, body)
	}
	return body["access_token"].(string)
}

func (h *harness) form(tenant string, v url.Values, basic string) (int, map[string]any) {
	req, _ := http.NewRequest("POST", h.url+"/"+tenant+"/oauth2/v2.0/token", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != "" {
		id, secret, _ := strings.Cut(basic, ":")
		req.SetBasicAuth(id, secret)
	}
	return h.send(req)
}

func (h *harness) send(req *http.Request) (int, map[string]any) {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			h.t.Fatalf("%s %s: answer is not JSON: %q", req.Method, req.URL.Path, raw)
		}
	}
	return resp.StatusCode, body
}

// do sends a Graph request with the harness token (or token, if given).
func (h *harness) do(method, path string, body any, token ...string) (int, map[string]any) {
	h.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
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

func (h *harness) set(user, availability, activity, expiration string) int {
	status, _ := h.do("POST", "/v1.0/users/"+user+"/presence/setPresence", map[string]string{
		"sessionId": appID, "availability": availability, "activity": activity, "expirationDuration": expiration})
	return status
}

func (h *harness) presence(user string) string {
	h.t.Helper()
	v, ok := h.em.Presence(user)
	if !ok {
		h.t.Fatalf("no user %s", user)
	}
	return v.Availability + "/" + v.Activity
}

// TestSeedExamples replays every request/response example of the seed
// pages (testdata/seed_examples.json names the page of each).
func TestSeedExamples(t *testing.T) {
	raw, err := os.ReadFile("testdata/seed_examples.json")
	if err != nil {
		t.Fatal(err)
	}
	var examples []struct {
		Name, Seed, Method, Path string
		Setup                    []struct{ User, Kind, Availability, Activity string }
		Body                     any
		Status                   int
		Response                 map[string]any
	}
	if err := json.Unmarshal(raw, &examples); err != nil {
		t.Fatal(err)
	}
	for _, ex := range examples {
		t.Run(ex.Name, func(t *testing.T) {
			h := newHarness(t)
			for _, s := range ex.Setup {
				if err := h.em.SetTeamsSession(s.User, s.Availability, s.Activity, 0); err != nil {
					t.Fatal(err)
				}
			}
			status, body := h.do(ex.Method, ex.Path, ex.Body)
			if status != ex.Status {
				t.Fatalf("status %d, want %d (%v)", status, ex.Status, body)
			}
			if ex.Response != nil {
				assertSubset(t, "", ex.Response, body)
			}
		})
	}
}

// assertSubset checks that every field of want is in got with the same
// value; got may have more (sequenceNumber, @odata.context).
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

// TestAggregation checks Graph's precedence across every combination of an
// app session, a Teams client session and a preferred presence.
func TestAggregation(t *testing.T) {
	app := []string{"", "Available/Available", "Busy/InACall", "Busy/InAConferenceCall", "Away/Away", "DoNotDisturb/Presenting"}
	teams := []string{"", "Available/Available", "Busy/InACall", "Away/Away", "DoNotDisturb/Presenting"}
	preferred := []string{"", "Busy/Busy", "BeRightBack/BeRightBack", "Offline/OffWork"}
	rankOf := func(p string) int { a, _, _ := strings.Cut(p, "/"); return rank[a] }
	for _, a := range app {
		for _, tm := range teams {
			for _, p := range preferred {
				t.Run(a+"|"+tm+"|"+p, func(t *testing.T) {
					h := newHarness(t)
					if tm != "" {
						av, act, _ := strings.Cut(tm, "/")
						h.em.SetTeamsSession(alice, av, act, 0)
						h.clock.Advance(time.Second) // the app session is newer on ties
					}
					if a != "" {
						av, act, _ := strings.Cut(a, "/")
						if s := h.set(alice, av, act, "PT1H"); s != 200 {
							t.Fatalf("set: %d", s)
						}
					}
					if p != "" {
						av, act, _ := strings.Cut(p, "/")
						h.em.SetPreferred(alice, av, act, 0)
					}
					var want string
					switch {
					case a == "" && tm == "":
						want = "Offline/Offline" // preferred shows only with a session
					case p != "":
						want = p
					case a == "":
						want = tm
					case tm == "" || rankOf(a) >= rankOf(tm):
						want = a
					default:
						want = tm
					}
					if got := h.presence(alice); got != want {
						t.Fatalf("presence %s, want %s", got, want)
					}
				})
			}
		}
	}
}

// TestAvailableFades walks the inactivity timeline minute by minute.
func TestAvailableFades(t *testing.T) {
	h := newHarness(t)
	h.set(alice, "Available", "Available", "PT1H")
	for minute := 0; minute <= 12; minute++ {
		want := "Available/Available"
		switch {
		case minute >= 10:
			want = "Away/Away"
		case minute >= 5:
			want = "Available/AvailableInactive"
		}
		if got := h.presence(alice); got != want {
			t.Fatalf("minute %d: %s, want %s", minute, got, want)
		}
		h.clock.Advance(time.Minute)
	}
	// A refresh brings it back; Busy never fades.
	h.set(alice, "Available", "Available", "PT1H")
	if got := h.presence(alice); got != "Available/Available" {
		t.Fatalf("after refresh: %s", got)
	}
	h.set(bob, "Busy", "InACall", "PT1H")
	h.clock.Advance(30 * time.Minute)
	if got := h.presence(bob); got != "Busy/InACall" {
		t.Fatalf("Busy faded: %s", got)
	}
}

func TestExpiration(t *testing.T) {
	h := newHarness(t)
	h.set(alice, "Busy", "InACall", "PT15M")
	before, _ := h.em.Presence(alice)
	h.clock.Advance(15*time.Minute - time.Second)
	if got := h.presence(alice); got != "Busy/InACall" {
		t.Fatalf("before expiry: %s", got)
	}
	h.clock.Advance(time.Second)
	after, _ := h.em.Presence(alice)
	if after.Availability+"/"+after.Activity != "Offline/Offline" || len(after.Sessions) != 0 {
		t.Fatalf("after expiry: %+v", after)
	}
	if after.SequenceNumber <= before.SequenceNumber {
		t.Fatalf("sequenceNumber did not grow: %s then %s", before.SequenceNumber, after.SequenceNumber)
	}
	// Clearing an expired session is a 404, as Graph does.
	if status, _ := h.do("POST", "/v1.0/users/"+alice+"/presence/clearPresence", map[string]string{"sessionId": appID}); status != 404 {
		t.Fatalf("clear expired: %d", status)
	}
}

func TestSetPresenceValidation(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name   string
		body   map[string]string
		status int
		code   string
	}{
		{"unsettable pair", map[string]string{"sessionId": appID, "availability": "Busy", "activity": "InAMeeting"}, 400, "InvalidArgument"},
		{"no session", map[string]string{"availability": "Busy", "activity": "InACall"}, 400, "InvalidArgument"},
		{"too short", map[string]string{"sessionId": appID, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT4M"}, 400, "InvalidArgument"},
		{"too long", map[string]string{"sessionId": appID, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT4H1M"}, 400, "InvalidArgument"},
		{"not a duration", map[string]string{"sessionId": appID, "availability": "Busy", "activity": "InACall", "expirationDuration": "soon"}, 400, "InvalidArgument"},
		{"edge PT4H", map[string]string{"sessionId": appID, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT4H"}, 200, ""},
		{"edge PT5M", map[string]string{"sessionId": appID, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT5M"}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.do("POST", "/v1.0/users/"+alice+"/presence/setPresence", tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%v)", status, tt.status, body)
			}
			if tt.code != "" {
				e := body["error"].(map[string]any)
				inner := e["innerError"].(map[string]any)
				if e["code"] != tt.code || inner["request-id"] == "" {
					t.Fatalf("error %v", e)
				}
				if strings.HasPrefix(tt.name, "too") && e["message"] != "The provided [ExpirationDuration] is out of range." {
					t.Fatalf("message %q", e["message"])
				}
			}
		})
	}
}

func TestAuthAndPermissions(t *testing.T) {
	h := newHarness(t)
	reader := h.getToken(tenantID, "reader", "r")
	nobody := h.getToken(tenantID, "nobody", "n")
	other := h.getToken("fabrikam.example", "other", "o")
	set := map[string]string{"sessionId": appID, "availability": "Busy", "activity": "InACall"}
	tests := []struct {
		name, method, path string
		body               any
		token              string
		status             int
		code               string
	}{
		{"missing token", "GET", "/v1.0/users/" + alice + "/presence", nil, "", 401, "InvalidAuthenticationToken"},
		{"malformed token", "GET", "/v1.0/users/" + alice + "/presence", nil, "garbage", 401, "InvalidAuthenticationToken"},
		{"reader cannot write", "POST", "/v1.0/users/" + alice + "/presence/setPresence", set, reader, 403, "Forbidden"},
		{"reader can read", "GET", "/v1.0/users/" + alice + "/presence", nil, reader, 200, ""},
		{"no roles", "GET", "/v1.0/users/" + alice + "/presence", nil, nobody, 403, "Forbidden"},
		{"no user read", "GET", "/v1.0/users/alice@contoso.example", nil, reader, 403, "Forbidden"},
		{"other tenant's user", "GET", "/v1.0/users/" + alice + "/presence", nil, other, 404, "itemNotFound"},
		{"unknown user", "GET", "/v1.0/users/00000000-0000-0000-0000-000000000000/presence", nil, h.token, 404, "itemNotFound"},
		{"app-only /me", "GET", "/v1.0/me/presence", nil, h.token, 403, "Forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.do(tt.method, tt.path, tt.body, tt.token)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%v)", status, tt.status, body)
			}
			if tt.code != "" && body["error"].(map[string]any)["code"] != tt.code {
				t.Fatalf("code %v, want %s", body["error"], tt.code)
			}
		})
	}
	t.Run("expired token", func(t *testing.T) {
		h.clock.Advance(3600 * time.Second)
		if status, _ := h.do("GET", "/v1.0/users/"+alice+"/presence", nil); status != 401 {
			t.Fatalf("expired token: %d", status)
		}
	})
}

func TestTokenEndpoint(t *testing.T) {
	h := newHarness(t)
	good := url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}}
	with := func(extra map[string]string) url.Values {
		v := url.Values{}
		for k, vals := range good {
			v[k] = vals
		}
		for k, val := range extra {
			v.Set(k, val)
		}
		return v
	}
	tests := []struct {
		name   string
		tenant string
		form   url.Values
		basic  string
		status int
		error  string
	}{
		{"form credentials", tenantID, with(map[string]string{"client_id": appID, "client_secret": appKey}), "", 200, ""},
		{"basic credentials", tenantID, good, appID + ":" + appKey, 200, ""},
		{"wrong secret", tenantID, with(map[string]string{"client_id": appID, "client_secret": "nope"}), "", 401, "invalid_client"},
		{"unknown app", tenantID, with(map[string]string{"client_id": "x", "client_secret": "y"}), "", 400, "unauthorized_client"},
		{"unknown tenant", "nowhere.example", with(map[string]string{"client_id": appID, "client_secret": appKey}), "", 400, "invalid_tenant"},
		{"bad scope", tenantID, with(map[string]string{"client_id": appID, "client_secret": appKey, "scope": "User.Read"}), "", 400, "invalid_scope"},
		{"bad grant", tenantID, with(map[string]string{"client_id": appID, "client_secret": appKey, "grant_type": "password"}), "", 400, "unsupported_grant_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.form(tt.tenant, tt.form, tt.basic)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%v)", status, tt.status, body)
			}
			if tt.error != "" && (body["error"] != tt.error || !strings.HasPrefix(fmt.Sprint(body["error_description"]), "AADSTS")) {
				t.Fatalf("body %v", body)
			}
			if tt.status == 200 && body["token_type"] != "Bearer" {
				t.Fatalf("body %v", body)
			}
		})
	}
}

func TestBatchLimitAndFilter(t *testing.T) {
	h := newHarness(t)
	ids := make([]string, 651)
	for i := range ids {
		ids[i] = alice
	}
	if status, _ := h.do("POST", "/v1.0/communications/getPresencesByUserId", map[string]any{"ids": ids}); status != 400 {
		t.Fatalf("651 ids: %d", status)
	}
	if status, _ := h.do("POST", "/v1.0/communications/getPresencesByUserId", map[string]any{"ids": ids[:650]}); status != 200 {
		t.Fatalf("650 ids: %d", status)
	}
	status, body := h.do("GET", "/v1.0/communications/presences?$filter="+url.QueryEscape("id in ('"+alice+"','"+bob+"')"), nil)
	if status != 200 || len(body["value"].([]any)) != 2 {
		t.Fatalf("filter: %d %v", status, body)
	}
	status, body = h.do("GET", "/v1.0/communications/presences", nil)
	if status != 200 || len(body["value"].([]any)) != 3 {
		t.Fatalf("all: %d %v", status, body)
	}
}

// TestThrottleWindowEdge: the limit is per app per tenant per fixed
// window; the request that exceeds it gets 429 with Retry-After up to the
// window's end, throttled requests count, and the next window starts
// fresh.
func TestThrottleWindowEdge(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Throttle = Throttle{Limit: 3, Window: 30 * time.Second} })
	get := func() (int, map[string]any) { return h.do("GET", "/v1.0/users/"+alice+"/presence", nil) }
	for i := range 3 {
		if status, _ := get(); status != 200 {
			t.Fatalf("request %d: %d", i+1, status)
		}
	}
	h.clock.Advance(29 * time.Second)
	req, _ := http.NewRequest("GET", h.url+"/v1.0/users/"+alice+"/presence", nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("4th request: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	h.clock.Advance(time.Second) // exactly at the window's end: a new window
	if status, _ := get(); status != 200 {
		t.Fatalf("first request of the next window: %d", status)
	}
	// Other applications have their own budget.
	reader := h.getToken(tenantID, "reader", "r")
	h.do("GET", "/v1.0/users/"+alice+"/presence", nil)
	h.do("GET", "/v1.0/users/"+alice+"/presence", nil)
	if status, body := get(); status != 429 || body["error"].(map[string]any)["code"] != "TooManyRequests" {
		t.Fatalf("over the limit: %d %v", status, body)
	}
	if status, _ := h.do("GET", "/v1.0/users/"+alice+"/presence", nil, reader); status != 200 {
		t.Fatalf("another app: %d", status)
	}
}

func TestWireDetails(t *testing.T) {
	h := newHarness(t)
	// A gzip-compressed body, as the Graph SDKs send.
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Write([]byte(`{"sessionId":"` + appID + `","availability":"Busy","activity":"InACall"}`))
	gz.Close()
	req, _ := http.NewRequest("POST", h.url+"/v1.0/users/alice%40contoso.example/presence/setPresence", &buf)
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	if status, body := h.send(req); status != 200 {
		t.Fatalf("gzip + percent-encoded UPN: %d %v", status, body)
	}
	if got := h.presence(alice); got != "Busy/InACall" {
		t.Fatalf("presence %s", got)
	}
	status, body := h.do("GET", "/v1.0/users/alice%40contoso.example?$select=id,mail", nil)
	if status != 200 || body["id"] != alice || body["mail"] != "alice@contoso.example" || body["displayName"] != nil {
		t.Fatalf("user $select: %d %v", status, body)
	}
}

func TestAdminFaultsAndRequestLog(t *testing.T) {
	h := newHarness(t)
	post := func(path, body string) int {
		resp, err := http.Post(h.url+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post("/_emulator/faults", `{"failNext":2,"failStatus":503}`); s != 200 {
		t.Fatalf("faults: %d", s)
	}
	for i, want := range []int{503, 503, 200} {
		if s := h.set(alice, "Busy", "InACall", ""); s != want {
			t.Fatalf("request %d: %d, want %d", i, s, want)
		}
	}
	if s := post("/_emulator/sessions", `{"user":"bob@contoso.example","kind":"teams","availability":"DoNotDisturb","activity":"Presenting"}`); s != 200 {
		t.Fatalf("session: %d", s)
	}
	if got := h.presence(bob); got != "DoNotDisturb/Presenting" {
		t.Fatalf("simulated Teams session: %s", got)
	}
	if s := post("/_emulator/clock/advance", `{"seconds":600}`); s != 200 || !h.clock.Now().Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("clock: %d %s", s, h.clock.Now())
	}
	log := h.em.Requests()
	if len(log) < 3 || log[0].Path != "/contoso.example/oauth2/v2.0/token" || log[0].Body != "[token request]" {
		t.Fatalf("request log %+v", log[:min(3, len(log))])
	}
	if s := post("/_emulator/reset", `{}`); s != 200 || h.presence(alice) != "Offline/Offline" {
		t.Fatalf("reset: %d", s)
	}

	readOnly := newHarness(t, func(c *Config) { c.Admin = Admin{} })
	resp, _ := http.Post(readOnly.url+"/_emulator/faults", "application/json", strings.NewReader(`{"failNext":1}`))
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("admin writes off: %d", resp.StatusCode)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"PT5M", 5 * time.Minute, true}, {"PT1H", time.Hour, true}, {"PT1H30M", 90 * time.Minute, true},
		{"P1D", 24 * time.Hour, true}, {"PT0.5S", 500 * time.Millisecond, true},
		{"P", 0, false}, {"PT", 0, false}, {"5M", 0, false}, {"", 0, false}, {"PT-5M", 0, false},
	} {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %s, %v", tt.in, got, err)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"PT5M", "PT4H", "P1DT2H3M4.5S", "PT", "P99999999999D"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseDuration(s); err == nil && d < 0 {
			t.Fatalf("ParseDuration(%q) = %s", s, d)
		}
	})
}

// FuzzSetPresenceBody checks that no setPresence body panics the emulator
// or gets an answer other than 200, 400 or 415.
func FuzzSetPresenceBody(f *testing.F) {
	f.Add([]byte(`{"sessionId":"a","availability":"Busy","activity":"InACall","expirationDuration":"PT5M"}`))
	f.Add([]byte(`{"sessionId":1}`))
	f.Add([]byte(`[]`))
	cfg := Config{Tenants: []Tenant{{ID: tenantID, Apps: []App{{ClientID: appID, ClientSecret: appKey, Roles: []string{"Presence.ReadWrite.All"}}}, Users: []User{{ID: alice, UserPrincipalName: "a@b.c"}}}}, Throttle: Throttle{Limit: 1 << 30, Window: time.Hour}}
	em, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	token := "fuzz-token"
	em.tokens[token] = tokenInfo{tenant: tenantID, appID: appID, roles: []string{"Presence.ReadWrite.All"}, expires: time.Now().Add(time.Hour)}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1.0/users/"+alice+"/presence/setPresence", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		em.ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != 400 {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}

func TestCalendarEvents(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Tenants[0].Apps[0].Roles = append(c.Tenants[0].Apps[0].Roles, "Calendars.Read") })
	h.token = h.getToken(tenantID, appID, appKey)
	body := `{"id":"AAMk1","user":"alice@contoso.example","subject":"Standup","start":"2026-11-23T11:00:00Z","end":"2026-11-23T11:30:00Z","showAs":"busy"}`
	resp, err := http.Post(h.url+"/_emulator/events", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("create event: %v %v", err, resp.StatusCode)
	}
	status, got := h.do("GET", "/v1.0/users/"+alice+"/events/AAMk1?$select=start,end,showAs,isCancelled", nil)
	if status != 200 || got["showAs"] != "busy" || got["isCancelled"] != false || got["subject"] != nil {
		t.Fatalf("event: %d %v", status, got)
	}
	if got["start"].(map[string]any)["dateTime"] != "2026-11-23T11:00:00.0000000" {
		t.Fatalf("start %v", got["start"])
	}
	if status, _ := h.do("GET", "/v1.0/users/"+alice+"/events/nope", nil); status != 404 {
		t.Fatalf("unknown event: %d", status)
	}
	reader := h.getToken(tenantID, "reader", "r")
	if status, _ := h.do("GET", "/v1.0/users/"+alice+"/events/AAMk1", nil, reader); status != 403 {
		t.Fatalf("without Calendars.Read: %d", status)
	}
	req, _ := http.NewRequest("DELETE", h.url+"/_emulator/events/alice@contoso.example/AAMk1", nil)
	if s, _ := h.send(req); s != 200 {
		t.Fatalf("delete: %d", s)
	}
	if status, _ := h.do("GET", "/v1.0/users/"+alice+"/events/AAMk1", nil); status != 404 {
		t.Fatalf("deleted event: %d", status)
	}
}

// BenchmarkSetPresence measures the setPresence requests per second the
// emulator serves over real HTTP on loopback, with parallel clients.
func BenchmarkSetPresence(b *testing.B) {
	em, err := New(Config{
		Tenants:  []Tenant{{ID: tenantID, Apps: []App{{ClientID: appID, ClientSecret: appKey, Roles: []string{"Presence.ReadWrite.All"}}}, Users: []User{{ID: alice, UserPrincipalName: "a@b.c"}}}},
		Throttle: Throttle{Limit: 1 << 30, Window: time.Hour},
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(em)
	defer srv.Close()
	em.tokens["bench"] = tokenInfo{tenant: tenantID, appID: appID, roles: []string{"Presence.ReadWrite.All"}, expires: time.Now().Add(time.Hour)}
	body := []byte(`{"sessionId":"` + appID + `","availability":"Busy","activity":"InACall","expirationDuration":"PT15M"}`)
	url := srv.URL + "/v1.0/users/" + alice + "/presence/setPresence"
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		for pb.Next() {
			req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer bench")
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
