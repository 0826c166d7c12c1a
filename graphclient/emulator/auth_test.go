package emulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTokenEndpoint: the client-credentials grant with the secret in the
// form or a Basic header, and the identity platform's errors.
func TestTokenEndpoint(t *testing.T) {
	h := newHarness(t)
	form := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}, "scope": {graphURL}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return v
	}
	creds := []string{"client_id", appID, "client_secret", appKey}
	tests := []struct {
		name   string
		tenant string
		form   url.Values
		basic  string
		status int
		error  string
		aadsts int
	}{
		{"form credentials", tenantID, form(creds...), "", 200, "", 0},
		{"Basic credentials", tenantID, form(), appID + ":" + appKey, 200, "", 0},
		{"tenant in another case", "Contoso.Example", form(creds...), "", 200, "", 0},
		{"Graph's app id as scope", tenantID, form(append(creds, "scope", graphResourceID+"/.default")...), "", 200, "", 0},
		{"wrong secret", tenantID, form("client_id", appID, "client_secret", "nope"), "", 401, "invalid_client", 7000215},
		{"wrong secret in Basic", tenantID, form(), appID + ":nope", 401, "invalid_client", 7000215},
		{"no secret", tenantID, form("client_id", appID), "", 401, "invalid_client", 7000216},
		{"certificate assertion", tenantID, form("client_id", appID, "client_assertion", "eyJ.x.y", "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"), "", 401, "invalid_client", 700027},
		{"unknown client", tenantID, form("client_id", "11111111-2222-3333-4444-555555555555", "client_secret", "x"), "", 400, "unauthorized_client", 700016},
		{"app of another tenant", "fabrikam.example", form(creds...), "", 400, "unauthorized_client", 700016},
		{"unknown tenant", "nowhere.example", form(creds...), "", 400, "invalid_request", 90002},
		{"scope without /.default", tenantID, form(append(creds, "scope", "https://graph.microsoft.com/Presence.ReadWrite.All")...), "", 400, "invalid_scope", 1002012},
		{"no scope", tenantID, form(append(creds, "scope", "")...), "", 400, "invalid_request", 900144},
		{"no client id", tenantID, form("client_secret", appKey), "", 400, "invalid_request", 900144},
		{"password grant", tenantID, form(append(creds, "grant_type", "password")...), "", 400, "unsupported_grant_type", 70003},
		{"no grant", tenantID, form(append(creds, "grant_type", "")...), "", 400, "invalid_request", 900144},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.tokenRequest(tt.tenant, tt.form, tt.basic)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%v)", status, tt.status, body)
			}
			if tt.status == 200 {
				if body["token_type"] != "Bearer" || body["expires_in"] != 3599.0 || body["ext_expires_in"] != 3599.0 || body["access_token"] == "" {
					t.Fatalf("token answer %v", body)
				}
				return
			}
			desc, _ := body["error_description"].(string)
			codes, _ := body["error_codes"].([]any)
			if body["error"] != tt.error || !strings.HasPrefix(desc, fmt.Sprintf("AADSTS%d: ", tt.aadsts)) ||
				len(codes) != 1 || codes[0] != float64(tt.aadsts) || body["timestamp"] == "" || body["trace_id"] == "" || body["correlation_id"] == "" {
				t.Fatalf("error answer %v", body)
			}
			if strings.Contains(desc, appKey) || strings.Contains(desc, "nope") {
				t.Fatal("the secret is in the error")
			}
			if tt.aadsts == 7000215 && !strings.HasPrefix(desc, "AADSTS7000215: Invalid client secret provided.") {
				t.Fatalf("description %q", desc)
			}
		})
	}
}

// TestTokenClaims: the token is JWT-shaped and carries tenant, app id,
// roles and a 3,599-second lifetime.
func TestTokenClaims(t *testing.T) {
	h := newHarness(t)
	parts := strings.Split(h.token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not JWT-shaped", h.token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.TenantID != tenantID || c.AppID != appID || c.IDType != "app" || !slices.Equal(c.Roles, []string{"Presence.ReadWrite.All", "Presence.Read.All", "User.Read.All"}) ||
		c.Expires-c.IssuedAt != 3599 || c.IssuedAt != t0.Unix() || c.Audience != "https://graph.microsoft.com" {
		t.Fatalf("claims %+v", c)
	}
}

// forge re-signs nothing: it swaps a token's payload, so its signature no
// longer matches.
func forge(token string, mutate func(*claims)) string {
	parts := strings.Split(token, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c claims
	_ = json.Unmarshal(raw, &c)
	mutate(&c)
	payload, _ := json.Marshal(c)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
}

// TestAuthFailures: each way a request can fail authentication or
// authorization, with Graph's status and code.
func TestAuthFailures(t *testing.T) {
	h := newHarness(t)
	reader := h.appToken(tenantID, "reader", "reader-secret")
	nobody := h.appToken(tenantID, "nobody", "nobody-secret")
	calendar := h.appToken(tenantID, "calendar", "calendar-secret")
	fabrikam := h.appToken("fabrikam.example", "fabrikam-app", "fabrikam-secret")
	_, mgmt := h.tokenRequest(tenantID, url.Values{"client_id": {appID}, "client_secret": {appKey}, "grant_type": {"client_credentials"}, "scope": {"https://management.azure.com/.default"}}, "")
	forged := forge(reader, func(c *claims) { c.Roles = append(c.Roles, "Presence.ReadWrite.All") })
	aliceRead, _ := h.em.DelegatedToken(alice, "Presence.Read")
	aliceReadWrite, _ := h.em.DelegatedToken("alice@contoso.example", "Presence.ReadWrite", "User.Read")
	aliceAll, _ := h.em.DelegatedToken(alice, "Presence.Read.All")

	get := "/v1.0/users/" + alice + "/presence"
	set := "/v1.0/users/" + alice + "/presence/setPresence"
	body := map[string]string{"sessionId": appID, "availability": "Busy", "activity": "InACall"}
	tests := []struct {
		name, method, path string
		body               any
		token              string
		status             int
		code, message      string
	}{
		{"missing token", "GET", get, nil, "", 401, "InvalidAuthenticationToken", "Access token is empty."},
		{"malformed token", "GET", get, nil, "garbage", 401, "InvalidAuthenticationToken", ""},
		{"undecodable token", "GET", get, nil, "a.!!!.c", 401, "InvalidAuthenticationToken", ""},
		{"forged roles", "POST", set, body, forged, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid signature."},
		{"token for another resource", "GET", get, nil, mgmt["access_token"].(string), 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."},
		{"read-only app writes", "POST", set, body, reader, 403, "Forbidden", ""},
		{"read-only app reads", "GET", get, nil, reader, 200, "", ""},
		{"read-only app batch-reads", "POST", "/v1.0/communications/getPresencesByUserId", map[string][]string{"ids": {alice}}, reader, 200, "", ""},
		{"app without roles reads", "GET", get, nil, nobody, 403, "Forbidden", ""},
		{"app without roles lists", "GET", "/v1.0/communications/presences", nil, nobody, 403, "Forbidden", ""},
		{"calendar app reads presence", "GET", get, nil, calendar, 403, "Forbidden", ""},
		{"presence app reads a calendar", "GET", "/v1.0/users/" + alice + "/events/x", nil, h.token, 403, "Forbidden", ""},
		{"reader resolves a user", "GET", "/v1.0/users/alice@contoso.example", nil, reader, 403, "Forbidden", ""},
		{"wrong tenant: fabrikam reads contoso's user", "GET", get, nil, fabrikam, 404, "itemNotFound", ""},
		{"wrong tenant: contoso reads fabrikam's user", "GET", "/v1.0/users/" + dave + "/presence", nil, h.token, 404, "itemNotFound", ""},
		{"wrong tenant: fabrikam sets contoso's user", "POST", set, body, fabrikam, 404, "itemNotFound", ""},
		{"unknown user", "GET", "/v1.0/users/00000000-0000-0000-0000-000000000000/presence", nil, h.token, 404, "itemNotFound", ""},
		{"app-only /me", "GET", "/v1.0/me/presence", nil, h.token, 403, "Forbidden", "/me request is only valid with delegated authentication flow."},
		{"delegated /me", "GET", "/beta/me/presence", nil, aliceRead, 200, "", ""},
		{"delegated Presence.Read reads another user", "GET", "/v1.0/users/" + bob + "/presence", nil, aliceRead, 403, "Forbidden", ""},
		{"delegated Presence.Read reads self by id", "GET", get, nil, aliceRead, 200, "", ""},
		{"delegated Presence.Read writes self", "POST", set, body, aliceRead, 403, "Forbidden", ""},
		{"delegated Presence.ReadWrite writes self", "POST", set, body, aliceReadWrite, 200, "", ""},
		{"delegated Presence.ReadWrite writes another user", "POST", "/v1.0/users/" + bob + "/presence/setPresence", body, aliceReadWrite, 403, "Forbidden", ""},
		{"delegated User.Read reads self", "GET", "/v1.0/users/" + alice, nil, aliceReadWrite, 200, "", ""},
		{"delegated User.Read reads another user", "GET", "/v1.0/users/" + bob, nil, aliceReadWrite, 403, "Forbidden", ""},
		{"delegated Presence.Read.All reads another user", "GET", "/v1.0/users/" + bob + "/presence", nil, aliceAll, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := h.do(tt.method, tt.path, tt.body, tt.token)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%v)", status, tt.status, out)
			}
			if tt.code == "" {
				return
			}
			if code := errorCode(t, out); code != tt.code {
				t.Fatalf("code %s, want %s", code, tt.code)
			}
			message := out["error"].(map[string]any)["message"].(string)
			if tt.message != "" && message != tt.message {
				t.Fatalf("message %q, want %q", message, tt.message)
			}
			if tt.status == 403 && tt.message == "" && message != "" {
				t.Fatalf("403 message %q, want Graph's empty one", message)
			}
		})
	}

	t.Run("Bearer scheme is case-insensitive, Basic is not a token", func(t *testing.T) {
		for scheme, want := range map[string]int{"bearer": 200, "BEARER": 200, "Basic": 401} {
			req := mustRequest(t, "GET", h.url+get, "")
			req.Header.Set("Authorization", scheme+" "+h.token)
			if status, _, _ := h.send(req); status != want {
				t.Fatalf("%s: %d, want %d", scheme, status, want)
			}
		}
	})
	t.Run("expired token", func(t *testing.T) {
		h := newHarness(t)
		h.clock.Advance(3599*time.Second - time.Nanosecond)
		if status, _ := h.do("GET", get, nil); status != 200 {
			t.Fatalf("just before expiry: %d", status)
		}
		h.clock.Advance(time.Nanosecond)
		status, out := h.do("GET", get, nil)
		if status != 401 || errorCode(t, out) != "InvalidAuthenticationToken" || out["error"].(map[string]any)["message"] != "Lifetime validation failed, the token is expired." {
			t.Fatalf("expired: %d %v", status, out)
		}
	})
	t.Run("token after reset", func(t *testing.T) {
		h := newHarness(t)
		h.em.Reset()
		if status, _ := h.do("GET", get, nil); status != 401 {
			t.Fatalf("a token issued before Reset: %d", status)
		}
	})
}

// TestBasicCredentialsEncoding: Basic credentials are form-encoded before
// base64 (RFC 6749 section 2.3.1, as Go's oauth2 package sends them); raw
// ones from lax clients work too.
func TestBasicCredentialsEncoding(t *testing.T) {
	const secret = "s3cr+t/=%?"
	h := newHarness(t, func(c *Config) {
		c.Tenants[0].Apps = append(c.Tenants[0].Apps, App{ClientID: "special", ClientSecret: secret, Roles: []string{"Presence.Read.All"}})
	})
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {graphURL}}
	for _, basic := range []string{"special:" + url.QueryEscape(secret), "special:" + secret} {
		if status, body := h.tokenRequest(tenantID, form, basic); status != 200 {
			t.Fatalf("%s: %d %v", basic, status, body)
		}
	}
	if status, _ := h.tokenRequest(tenantID, form, "special:"+url.QueryEscape("other")); status != 401 {
		t.Fatalf("wrong secret: %d", status)
	}
}

// TestNoSecretsInLogs: the debug log of token and Graph requests holds no
// secret and no token.
func TestNoSecretsInLogs(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	em, err := New(testConfig(), WithClock(NewFakeClock(t0)), WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(em)
	defer srv.Close()
	h := &harness{t: t, em: em, url: srv.URL}
	h.token = h.appToken(tenantID, appID, appKey)
	h.set(alice, "Busy", "InACall", "")
	h.tokenRequest(tenantID, url.Values{"client_id": {appID}, "client_secret": {"typo-secret"}, "grant_type": {"client_credentials"}, "scope": {graphURL}}, "")
	h.admin("POST", "/_emulator/tokens", `{"user":"`+alice+`","scopes":["Presence.Read"]}`)
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "setPresence") {
		t.Fatalf("nothing logged: %q", out)
	}
	for _, secret := range []string{appKey, "typo-secret", h.token, strings.Split(h.token, ".")[2]} {
		if strings.Contains(out, secret) {
			t.Fatalf("the log holds %q:\n%s", secret, out)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
