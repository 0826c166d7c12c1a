package graphclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

const (
	tenant   = "contoso.example"
	clientID = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	secret   = "demo-secret-value"
	aliceID  = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
)

// startEmulator runs a real emulator on 127.0.0.1:0 with one app whose
// roles are given.
func startEmulator(t *testing.T, roles ...string) *emulator.Emulator {
	t.Helper()
	em, err := emulator.New(emulator.Config{
		Listen: "127.0.0.1:0",
		Tenants: []emulator.Tenant{{
			ID:    tenant,
			Apps:  []emulator.App{{ClientID: clientID, ClientSecret: secret, Roles: roles}},
			Users: []emulator.User{{ID: aliceID, UserPrincipalName: "alice@contoso.example"}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	return em
}

var allRoles = []string{"Presence.ReadWrite.All", "Presence.Read.All", "User.Read.All"}

func newClient(t *testing.T, em *emulator.Emulator, secret string) *graphclient.Client {
	t.Helper()
	c, err := graphclient.New(graphclient.Config{
		TenantID: tenant, ClientID: clientID, ClientSecret: secret,
		GraphBaseURL: em.GraphURL(), LoginBaseURL: "http://" + em.Addr(), Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPresenceRoundTrip(t *testing.T) {
	em := startEmulator(t, allRoles...)
	c := newClient(t, em, secret)
	ctx := context.Background()

	user, err := c.GetUser(ctx, "alice@contoso.example")
	if err != nil || user.ID != aliceID {
		t.Fatalf("GetUser: %+v, %v", user, err)
	}
	if err := c.SetPresence(ctx, aliceID, graphclient.Pair{Availability: "Busy", Activity: "InACall"}, 15*time.Minute); err != nil {
		t.Fatalf("SetPresence: %v", err)
	}
	p, err := c.GetPresence(ctx, aliceID)
	if err != nil || p.Availability != "Busy" || p.Activity != "InACall" {
		t.Fatalf("GetPresence: %+v, %v", p, err)
	}
	v, _ := em.Presence(aliceID)
	if len(v.Sessions) != 1 || v.Sessions[0].SessionID != clientID {
		t.Fatalf("the session id must be the client id: %+v", v.Sessions)
	}
	if err := c.ClearPresence(ctx, aliceID); err != nil {
		t.Fatalf("ClearPresence: %v", err)
	}
	if err := c.ClearPresence(ctx, aliceID); err != nil {
		t.Fatalf("ClearPresence of a cleared session must succeed (404 counts as cleared): %v", err)
	}
	// One token served every call.
	tokens := 0
	for _, r := range em.Requests() {
		if strings.HasSuffix(r.Path, "/oauth2/v2.0/token") {
			tokens++
		}
	}
	if tokens != 1 {
		t.Fatalf("%d token requests, want 1 (cached)", tokens)
	}
}

func TestGetPresencesByUserIDChunks(t *testing.T) {
	em := startEmulator(t, allRoles...)
	c := newClient(t, em, secret)
	for _, tt := range []struct{ ids, requests int }{{1, 1}, {650, 1}, {651, 2}, {1300, 2}, {1301, 3}} {
		em.Reset()
		ids := make([]string, tt.ids)
		ids[0] = aliceID
		for i := 1; i < tt.ids; i++ {
			ids[i] = fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
		}
		got, err := c.GetPresencesByUserID(context.Background(), ids)
		if err != nil {
			t.Fatalf("%d ids: %v", tt.ids, err)
		}
		if len(got) != 1 || got[0].ID != aliceID {
			t.Fatalf("%d ids: got %+v, want alice only (unknown ids are left out)", tt.ids, got)
		}
		n := 0
		for _, r := range em.Requests() {
			if strings.HasSuffix(r.Path, "getPresencesByUserId") && r.Status == http.StatusOK {
				n++
			}
		}
		if n != tt.requests {
			t.Fatalf("%d ids took %d requests, want %d", tt.ids, n, tt.requests)
		}
	}
}

func TestExpirationRange(t *testing.T) {
	em := startEmulator(t, allRoles...)
	c := newClient(t, em, secret)
	for _, d := range []time.Duration{4 * time.Minute, 4*time.Hour + time.Second} {
		err := c.SetPresence(context.Background(), aliceID, graphclient.Pair{Availability: "Busy", Activity: "InACall"}, d)
		if !errors.Is(err, graphclient.ErrInvalidExpiration) || graphclient.Classify(err) != graphclient.Permanent {
			t.Fatalf("expiration %s: %v", d, err)
		}
	}
	if len(em.Requests()) != 0 {
		t.Fatal("an invalid expiration reached Graph")
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{5 * time.Minute, "PT5M"}, {15 * time.Minute, "PT15M"}, {90 * time.Minute, "PT1H30M"}, {4 * time.Hour, "PT4H"}, {61 * time.Second, "PT1M1S"}} {
		if got := graphclient.FormatDuration(tt.d); got != tt.want {
			t.Errorf("FormatDuration(%s) = %s, want %s", tt.d, got, tt.want)
		}
	}
}

func TestErrorsAreTypedAndClassified(t *testing.T) {
	em := startEmulator(t, allRoles...)
	c := newClient(t, em, secret)
	ctx := context.Background()
	set := func() error {
		return c.SetPresence(ctx, aliceID, graphclient.Pair{Availability: "Busy", Activity: "InACall"}, 5*time.Minute)
	}
	tests := []struct {
		name   string
		inject func()
		status int
		class  graphclient.Class
	}{
		{"bad request", func() { em.FailNext(1, 400) }, 400, graphclient.Permanent},
		{"forbidden", func() { em.FailNext(1, 403) }, 403, graphclient.Permanent},
		{"not found", func() { em.FailNext(1, 404) }, 404, graphclient.Permanent},
		{"server error", func() { em.FailNext(1, 500) }, 500, graphclient.Retryable},
		{"unavailable", func() { em.FailNext(1, 503) }, 503, graphclient.Retryable},
		{"gateway timeout", func() { em.FailNext(1, 504) }, 504, graphclient.Retryable},
		{"throttled", func() { em.ForceThrottle(1, 3*time.Second) }, 429, graphclient.Throttled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.inject()
			err := set()
			var gerr *graphclient.Error
			if !errors.As(err, &gerr) || gerr.StatusCode != tt.status || gerr.RequestID == "" || gerr.Code == "" {
				t.Fatalf("want a typed %d with code and request-id, got %#v", tt.status, err)
			}
			if got := graphclient.Classify(err); got != tt.class {
				t.Fatalf("Classify = %d, want %d", got, tt.class)
			}
			if tt.status == 429 && graphclient.RetryAfter(err) != 3*time.Second {
				t.Fatalf("RetryAfter = %s, want 3s", graphclient.RetryAfter(err))
			}
		})
	}
	if err := set(); err != nil {
		t.Fatalf("after the faults: %v", err)
	}
}

func TestClassifyNetworkAndNil(t *testing.T) {
	if graphclient.Classify(nil) != graphclient.OK {
		t.Fatal("nil is OK")
	}
	c, err := graphclient.New(graphclient.Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret,
		GraphBaseURL: "http://127.0.0.1:1/v1.0", LoginBaseURL: "http://127.0.0.1:1", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = c.ClearPresence(context.Background(), aliceID)
	if err == nil || graphclient.Classify(err) != graphclient.Retryable {
		t.Fatalf("unreachable Graph: %v (class %d)", err, graphclient.Classify(err))
	}
}

// TestTokenRenewedOn401: when Graph stops honouring the cached token, the
// client fetches a new one and retries once.
func TestTokenRenewedOn401(t *testing.T) {
	em := startEmulator(t, allRoles...)
	c := newClient(t, em, secret)
	ctx := context.Background()
	if _, err := c.GetPresence(ctx, aliceID); err != nil {
		t.Fatal(err)
	}
	em.Reset() // forgets every token issued
	if _, err := c.GetPresence(ctx, aliceID); err != nil {
		t.Fatalf("after the token was revoked: %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"2.128", 2128 * time.Millisecond}, {"-1", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := graphclient.ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestCloudByName(t *testing.T) {
	for _, tt := range []struct{ name, graph, login string }{
		{"", "https://graph.microsoft.com", "https://login.microsoftonline.com"},
		{"global", "https://graph.microsoft.com", "https://login.microsoftonline.com"},
		{"usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us"},
		{"usgovdod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us"},
		{"china", "https://microsoftgraph.chinacloudapi.cn", "https://login.chinacloudapi.cn"},
	} {
		c, err := graphclient.CloudByName(tt.name)
		if err != nil || c.GraphURL != tt.graph || c.LoginURL != tt.login {
			t.Errorf("CloudByName(%q) = %+v, %v", tt.name, c, err)
		}
	}
	if _, err := graphclient.CloudByName("mars"); err == nil || !strings.Contains(err.Error(), "unknown cloud") {
		t.Errorf("unknown cloud: %v", err)
	}
}

// TestSecretsNeverLeak drives every error path and checks that neither the
// client secret nor an access token appears in errors or logs.
func TestSecretsNeverLeak(t *testing.T) {
	em := startEmulator(t) // an app with no roles: every call is 403
	ctx := context.Background()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	pair := graphclient.Pair{Availability: "Busy", Activity: "InACall"}

	var errs []error
	wrong := newClient(t, em, "wrong-secret-value")
	errs = append(errs, wrong.SetPresence(ctx, aliceID, pair, 0))
	good := newClient(t, em, secret)
	errs = append(errs, good.SetPresence(ctx, aliceID, pair, 0)) // 403
	em.FailNext(1, 500)
	errs = append(errs, good.ClearPresence(ctx, aliceID))
	down, _ := graphclient.New(graphclient.Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret,
		GraphBaseURL: "http://127.0.0.1:1/v1.0", LoginBaseURL: "http://127.0.0.1:1", Timeout: time.Second})
	errs = append(errs, down.SetPresence(ctx, aliceID, pair, 0))
	cfg := graphclient.Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret}
	log.Info("config", "graph", cfg)
	fmt.Fprintf(&logs, "%v %+v %s\n", cfg, cfg, cfg)

	for i, err := range errs {
		if err == nil {
			t.Fatalf("path %d: want an error", i)
		}
		log.Error("graph call failed", "err", err)
	}
	if !strings.Contains(errs[0].Error(), "AADSTS7000215") || !strings.Contains(errs[0].Error(), "invalid_client") {
		t.Errorf("a wrong secret should say invalid_client and its AADSTS code: %v", errs[0])
	}
	for _, s := range []string{secret, "wrong-secret-value", "emu."} {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("%q leaked into errors or logs:\n%s", s, logs.String())
		}
	}
}

// FuzzParseRetryAfter checks that no header value panics or gives a
// negative wait.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "3", "2.128", "Wed, 21 Oct 2015 07:28:00 GMT", "1e308", "NaN", "-0"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, v string) {
		if d := graphclient.ParseRetryAfter(v, now); d < 0 {
			t.Fatalf("ParseRetryAfter(%q) = %s", v, d)
		}
	})
}
