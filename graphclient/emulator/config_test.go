package emulator

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestValidate: every problem at once, each naming its key.
func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"valid", func(*Config) {}, nil},
		{"missing keys", func(c *Config) {
			c.Tenants = []Tenant{{Apps: []App{{}, {ClientID: "a", ClientSecret: "s"}}, Users: []User{{}}}}
		}, []string{
			"tenants[0].id: required",
			"tenants[0].apps[0].client_id: required",
			"tenants[0].apps[0].client_secret: required (or a certificate)",
			"tenants[0].users[0].id: required",
			"tenants[0].users[0].user_principal_name: required",
		}},
		{"bad values", func(c *Config) {
			c.Listen = "8081"
			c.Throttle = Throttle{Limit: -1, Window: -time.Second}
			c.ReadThrottle = Throttle{Limit: -1, Window: -time.Second}
			c.Tenants[0].Apps[1].Roles = []string{"Presence Read"}
			c.Tenants[0].Users[1].ID = "bob"
			c.Tenants[0].Users[2].UserPrincipalName = "carol"
		}, []string{
			"listen: must be host:port, such as 127.0.0.1:8081",
			"throttle.limit: must be positive",
			"throttle.window: must be positive",
			"read_throttle.limit: must be positive",
			"read_throttle.window: must be positive",
			`tenants[0].apps[1].roles[0]: "Presence Read" is not a permission name such as Presence.ReadWrite.All`,
			"tenants[0].users[1].id: must be an object id (a GUID)",
			"tenants[0].users[2].user_principal_name: must look like name@domain",
		}},
		{"duplicates", func(c *Config) {
			c.Tenants[1].ID = "CONTOSO.example"
			c.Tenants[0].Apps[1].ClientID = appID
			c.Tenants[1].Users[0].ID = strings.ToUpper(alice)
			c.Tenants[0].Users[1].UserPrincipalName = "Alice@contoso.example"
		}, []string{
			"tenants[0].apps[1].client_id: duplicate of tenants[0].apps[0]",
			"tenants[0].users[1].user_principal_name: duplicate of tenants[0].users[0]",
			"tenants[1].id: duplicate of tenants[0]",
			"tenants[1].users[0].id: duplicate of tenants[0].users[0]",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.mutate(&cfg)
			cfg.SetDefaults()
			err := cfg.Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if _, err := New(cfg); (err == nil) != (tt.want == nil) {
				t.Fatalf("New: %v", err)
			}
		})
	}
}

func TestSetDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.Listen != "127.0.0.1:8081" || c.Throttle.Limit != 1500 || c.Throttle.Window != 30*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	c = Config{Listen: "127.0.0.1:0", Throttle: Throttle{Limit: 10, Window: time.Second}}
	c.SetDefaults()
	if c.Listen != "127.0.0.1:0" || c.Throttle.Limit != 10 || c.Throttle.Window != time.Second {
		t.Fatalf("set values overwritten: %+v", c)
	}
}

// TestExampleConfig: the example decodes strictly (every key is a Config
// field), validates, and is the demo tenant the README uses.
func TestExampleConfig(t *testing.T) {
	raw, err := os.ReadFile("testdata/emulator.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := yaml.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"admin", "enabled", "listen", "read_throttle", "tenants", "throttle"}) {
		t.Fatalf("top-level keys %v", keys)
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tn := cfg.Tenants[0]
	if tn.ID != tenantID || tn.Apps[0].ClientID != appID || tn.Apps[0].ClientSecret != appKey ||
		!slices.Equal(tn.Apps[0].Roles, []string{"Presence.ReadWrite.All", "Presence.Read.All", "User.Read.All", "GroupMember.Read.All"}) ||
		len(tn.Groups) != 1 || !slices.Equal(tn.Groups[0].Members, []string{alice, bob}) || cfg.ReadThrottle != (Throttle{Limit: 1500, Window: 30 * time.Second}) ||
		tn.Users[0].ID != alice || tn.Users[0].UserPrincipalName != "alice@contoso.example" ||
		tn.Users[1].ID != bob || tn.Users[1].UserPrincipalName != "bob@contoso.example" ||
		cfg.Throttle != (Throttle{Limit: 1500, Window: 30 * time.Second}) {
		t.Fatalf("not the demo configuration: %+v", cfg)
	}
	var unknown Config
	dec = yaml.NewDecoder(strings.NewReader("listen: 127.0.0.1:0\nthrotle: {limit: 1}\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&unknown); err == nil {
		t.Fatal("an unknown key decoded")
	}
}

// TestServe runs the example configuration on a real listener the way
// `presence-bridge emulator` does, drives it with the README's requests,
// and stops it.
func TestServe(t *testing.T) {
	raw, _ := os.ReadFile("testdata/emulator.example.yaml")
	var cfg Config
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	em, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if em.Addr() != "" {
		t.Fatal("Addr before Start")
	}
	if err := em.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	if err := em.Start(context.Background()); err == nil {
		t.Fatal("a second Start succeeded")
	}
	if !strings.HasPrefix(em.GraphURL(), "http://127.0.0.1:") || !strings.HasSuffix(em.GraphURL(), "/v1.0") || em.LoginURL()+"/v1.0" != em.GraphURL() {
		t.Fatalf("GraphURL %s, LoginURL %s", em.GraphURL(), em.LoginURL())
	}
	resp, err := http.PostForm(em.LoginURL()+"/contoso.example/oauth2/v2.0/token", url.Values{
		"client_id": {appID}, "client_secret": {appKey}, "grant_type": {"client_credentials"}, "scope": {graphURL}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	decodeJSON(t, resp, &tok)
	req, _ := http.NewRequest("POST", em.GraphURL()+"/users/alice@contoso.example/presence/setPresence",
		strings.NewReader(`{"sessionId":"`+appID+`","availability":"Busy","activity":"InACall","expirationDuration":"PT15M"}`))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("setPresence: %v %v", err, resp)
	}
	resp.Body.Close()
	resp, err = http.Get(em.LoginURL() + "/_emulator/presences/alice@contoso.example")
	if err != nil {
		t.Fatal(err)
	}
	var v PresenceView
	decodeJSON(t, resp, &v)
	if v.Availability != "Busy" || v.Activity != "InACall" || len(v.Sessions) != 1 {
		t.Fatalf("presence %s", v)
	}

	// Close ends a request waiting on injected latency, and is idempotent.
	em.SetLatency(time.Minute)
	done, wrote := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, em.GraphURL()+"/users/x/presence", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select { // the request is in flight, or failed before it was
	case <-wrote:
	case <-done:
	}
	start := time.Now()
	if err := em.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-done
	if d := time.Since(start); d > 20*time.Second { // far below the minute of latency
		t.Fatalf("Close took %s with a delayed request in flight", d)
	}
	if err := em.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := em.Start(context.Background()); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}
