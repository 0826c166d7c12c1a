package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
graph:
  tenants:
    - {id: contoso.example, client_id: app, client_secret: s3cret}
sources:
  - {name: demo, type: generic, token: t0ken}
`

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	if cfg.HTTP.Listen != "127.0.0.1:8080" || cfg.Graph.Emulator.Listen != "127.0.0.1:8081" {
		t.Errorf("demo addresses changed: %s, %s", cfg.HTTP.Listen, cfg.Graph.Emulator.Listen)
	}
	if cfg.Graph.Tenants[0].GraphURL != "http://127.0.0.1:8081/v1.0" || cfg.Sources[0].Token != "demo-token" {
		t.Errorf("demo contract changed: %+v %+v", cfg.Graph.Tenants[0], cfg.Sources[0])
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal), ".")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"embedded nats", cfg.NATS.Embedded},
		{"duplicate window 1h", cfg.NATS.DuplicateWindow == time.Hour},
		{"events stream 256 MiB", cfg.NATS.StreamMaxBytes == 256<<20},
		{"body limit 1 MiB", cfg.HTTP.BodyLimit == 1<<20},
		{"max future skew 5m", cfg.HTTP.MaxFutureSkew == 5*time.Minute},
		{"budget 10000/30s", cfg.Graph.Tenants[0].Budget == 10000 && cfg.Graph.Tenants[0].BudgetWindow == 30*time.Second},
		{"lookup budget 1000/30s", cfg.Graph.Tenants[0].LookupBudget == 1000 && cfg.Graph.Tenants[0].LookupBudgetWindow == 30*time.Second},
		{"refusal probe 30s to 10m", cfg.Graph.RefusalProbe == Probe{First: 30 * time.Second, Max: 10 * time.Minute}},
		{"cloud global", cfg.Graph.Tenants[0].Cloud == "global"},
		{"source path", cfg.Sources[0].Path == "/v1/hooks/demo"},
		{"source tenant", cfg.Sources[0].Tenant == "contoso.example"},
		{"expiration 15m", cfg.Presence.Expiration == 15*time.Minute},
		{"unknown users remembered 1m", cfg.Graph.UnknownUserTTL == time.Minute},
		{"8 lanes of 2048, applying", cfg.Worker.Enabled && cfg.Worker.Lanes == 8 && cfg.Worker.LaneDepth == 2048},
		{"operations on the webhook listener", cfg.Admin.Listen == ""},
		{"history of 50 entries for 24h, 500 a second", cfg.Admin.History == History{MaxEntries: 50, MaxAge: 24 * time.Hour, MaxRate: 500}},
		{"no status messages, expiry 1h", len(cfg.Presence.StatusMessages.ByKind()) == 0 && cfg.Presence.StatusMessages.Expiry == time.Hour},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("default %s not applied", c.name)
		}
	}
}

// TestErrors checks the exact messages for each kind of mistake; every
// problem in a file is reported at once.
func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown keys with paths", minimal + "http: {listen: ':1', lissen: x}\ngraph2: 1\n", []string{
			"http.lissen: unknown key (line 7)",
			"graph2: unknown key (line 8)",
		}},
		{"admin listener and history bounds", minimal + "http: {listen: '127.0.0.1:8080'}\nadmin: {listen: '127.0.0.1:8080', history: {max_entries: 0, max_age: 1s}}\n", []string{
			"admin.listen: must differ from http.listen (leave it empty to share it)",
			"admin.history.max_entries: must be between 1 and 1000 (got 0)",
			"admin.history.max_age: must be at least 1m",
		}},
		{"unknown nested key", strings.Replace(minimal, "client_secret: s3cret", "client_secret: s3cret, secret: x", 1), []string{
			"graph.tenants[0].secret: unknown key (line 4)",
		}},
		{"every problem at once", `
log: {level: loud}
http: {listen: nowhere, body_limit: 10}
graph:
  tenants:
    - {id: t, cloud: mars, client_id: ""}
presence:
  expiration: 1m
  mapping: {call: Busy/InAMeeting}
  priority: [call, call]
sources:
  - {name: "Bad Name", type: fax}
`, []string{
			`log.level: must be one of debug, info, warn, error (got "loud")`,
			`http.listen: must be host:port (got "nowhere")`,
			"http.body_limit: must be at least 1024 bytes",
			`graph.tenants[0].cloud: must be one of global, usgov, usgovdod, china (got "mars")`,
			"graph.tenants[0].client_id: required",
			"graph.tenants[0].client_secret: required (inline, client_secret_file or client_secret_env), unless client_certificate is set",
			"presence.expiration: must be between 5m and 4h (Graph's PT5M to PT4H)",
			`presence.mapping.call: "Busy/InAMeeting" is not a pair setPresence accepts (one of Available/Available, Busy/InACall, Busy/InAConferenceCall, Away/Away, DoNotDisturb/Presenting)`,
			`presence.priority[1]: must be one of conference, call, meeting, presence, each once (got "call")`,
			`sources[0].name: must be lower-case letters, digits, '-' or '_' (got "Bad Name")`,
			`sources[0].type: must be one of generic, twilio, zoomphone, webex, ringcentral, graphcalendar, sipdialog, caldav (got "fax")`,
		}},
		{"no tenants", "sources: []\n", []string{"graph.tenants: at least one tenant is required"}},
		{"future skew", minimal + "http: {max_future_skew: 0s}\n", []string{"http.max_future_skew: must be at least 1s"}},
		{"worker lanes and unknown users", strings.Replace(minimal, "graph:\n", "graph:\n  unknown_user_ttl: -1s\n", 1) + "worker: {lanes: 0, lane_depth: -1}\n", []string{
			"graph.unknown_user_ttl: must not be negative",
			"worker.lanes: must be between 1 and 1024 (got 0)",
			"worker.lane_depth: must be positive (got -1)",
		}},
		{"lookup budget", strings.Replace(minimal, "client_secret: s3cret", "client_secret: s3cret, lookup_budget: -1, lookup_budget_window: 10ms", 1), []string{
			"graph.tenants[0].lookup_budget: must be 1 to 100000",
			"graph.tenants[0].lookup_budget_window: must be at least 1s",
		}},
		{"lookup budget too large", strings.Replace(minimal, "client_secret: s3cret", "client_secret: s3cret, lookup_budget: 100001", 1), []string{
			"graph.tenants[0].lookup_budget: must be 1 to 100000",
		}},
		{"two secret forms", strings.Replace(minimal, "client_secret: s3cret", "client_secret: s3cret, client_secret_env: X", 1), []string{
			"graph.tenants[0].client_secret: set only one of the value, its _file or its _env",
		}},
		{"missing env secret", strings.Replace(minimal, "client_secret: s3cret", "client_secret_env: PRESENCE_BRIDGE_TEST_UNSET", 1), []string{
			"graph.tenants[0].client_secret: environment variable PRESENCE_BRIDGE_TEST_UNSET is not set",
		}},
		{"secret and certificate", strings.Replace(minimal, "client_secret: s3cret", "client_secret: s3cret, client_certificate: not-pem", 1), []string{
			"graph.tenants[0].client_certificate: set a client secret or a client certificate, not both",
			"graph.tenants[0].client_certificate: client certificate: no CERTIFICATE block in the PEM data",
		}},
		{"certificate without key", strings.Replace(minimal, "client_secret: s3cret", `client_certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"`, 1), []string{
			"graph.tenants[0].client_certificate: client certificate: x509: malformed certificate",
		}},
		{"external nats without urls", minimal + "nats: {embedded: false}\n", []string{"nats.urls: required when nats.embedded is false"}},
		{"nats limits", minimal + "nats: {duplicate_window: 30s, stream_max_bytes: 10, dead_letter_max_msgs: -1, max_store: 1000000}\n", []string{
			"nats.duplicate_window: must be at least 1m, so that a sender's retry after a 503 is recognised",
			"nats.stream_max_bytes: must be at least 4096 bytes",
			"nats.dead_letter_max_msgs: must not be negative (0: no limit)",
			"nats.max_store: must be at least twice nats.stream_max_bytes + nats.dead_letter_max_bytes (134217748 bytes), leaving room for the state and lease buckets",
		}},
		{"max_store on external servers", minimal + "nats: {embedded: false, urls: [\"nats://127.0.0.1:4222\"], max_store: 1000000}\n", []string{
			"nats.max_store: applies to the embedded server only; set max_file_store on external servers",
		}},
		{"duplicate source", minimal + "  - {name: demo, type: generic, token: x}\n", []string{
			`sources[1].name: duplicate source "demo"`, `sources[1].path: duplicate path "/v1/hooks/demo"`,
		}},
		{"twilio needs its secret and URL", minimal + "  - {name: pbx, type: twilio}\n", []string{
			"sources[1].secret: required (the account's Auth Token)", "sources[1].public_url: required (the URL Twilio calls)",
		}},
		{"status messages", minimal + "presence:\n  status_messages: {call: \"On a call\\n\", conference_call: \"  \", ringing: Ringing, meeting: " + strings.Repeat("é", 281) + ", expiry: 1m}\n", []string{
			"presence.status_messages.call: must be one line of text, not only spaces",
			"presence.status_messages.conference_call: must be one line of text, not only spaces",
			"presence.status_messages.ringing: has no effect: presence.mapping.ringing is empty, so this activity never sets a session",
			"presence.status_messages.meeting: must be at most 280 characters (got 281)",
			"presence.status_messages.expiry: must be between 5m and 24h",
		}},
		{"status message expiry too long", minimal + "presence: {status_messages: {expiry: 25h}}\n", []string{
			"presence.status_messages.expiry: must be between 5m and 24h",
		}},
		{"unknown status message kind", minimal + "presence: {status_messages: {presenting: x}}\n", []string{
			"presence.status_messages.presenting: unknown key (line 7)",
		}},
		{"wrong types, each with its path", minimal + "http: {body_limit: lots, read_timeout: 10 parsecs}\ngraph2: 1\nnats: {embedded: maybe, ack_wait: 5}\n", []string{
			"graph2: unknown key (line 8)",
			`http.body_limit: must be a whole number (got "lots", line 7)`,
			`http.read_timeout: must be a duration such as 30s, 5m or 4h (got "10 parsecs", line 7)`,
			`nats.embedded: must be true or false (got "maybe", line 9)`,
			`nats.ack_wait: must be a duration such as 30s, 5m or 4h (got "5", line 9)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), ".")
			var cfgErr *Error
			if !errors.As(err, &cfgErr) {
				t.Fatalf("want *Error, got %v", err)
			}
			if strings.Join(cfgErr.Problems, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems\n got: %q\nwant: %q", cfgErr.Problems, tt.want)
			}
		})
	}
}

func TestSecretsFromFileAndEnv(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PRESENCE_BRIDGE_TEST_TOKEN", "from-env")
	yaml := strings.Replace(minimal, "client_secret: s3cret", "client_secret_file: secret.txt", 1)
	yaml = strings.Replace(yaml, "token: t0ken", "token_env: PRESENCE_BRIDGE_TEST_TOKEN", 1)
	cfg, err := Parse([]byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Graph.Tenants[0].ClientSecret != "from-file" || cfg.Sources[0].Token != "from-env" {
		t.Fatalf("secrets not resolved: %q %q", cfg.Graph.Tenants[0].ClientSecret, cfg.Sources[0].Token)
	}
}

// TestErrorsNeverShowSecrets checks that a broken file's problems name the
// keys but never repeat a secret's value.
func TestErrorsNeverShowSecrets(t *testing.T) {
	yaml := strings.Replace(minimal, "client_id: app", `client_id: ""`, 1) + "nats: {embedded: false}\n"
	_, err := Parse([]byte(yaml), ".")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, secret := range []string{"s3cret", "t0ken"} {
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error shows secret %q: %v", secret, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("http: {listen: ':1'}\n"))
	f.Add([]byte("graph: {tenants: [{id: a, client_id: b, client_secret: c}]}\nsources: [{name: x, type: twilio}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, t.TempDir())
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
	})
}

// TestStateBounds: the per-person bounds have defaults and limits.
func TestStateBounds(t *testing.T) {
	cfg, err := Parse([]byte(minimal), ".")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Presence.MaxClaims != 64 || cfg.Presence.MaxStateSize != 65536 {
		t.Fatalf("defaults: max_claims %d, max_state_size %d", cfg.Presence.MaxClaims, cfg.Presence.MaxStateSize)
	}
	_, err = Parse([]byte(minimal+"presence: {max_claims: 2, max_state_size: 1048576}\n"), ".")
	for _, want := range []string{
		"presence.max_claims: must be between 8 and 4096",
		"presence.max_state_size: must be between 4096 and 524288 bytes (4 KiB to 512 KiB)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}

// TestStatusMessagesByKind: the messages set are keyed by the kinds the
// writer knows, empty ones left out.
func TestStatusMessagesByKind(t *testing.T) {
	cfg, err := Parse([]byte(minimal+"presence:\n  mapping: {ringing: Busy/InACall}\n  status_messages: {call: On a call, ringing: Ringing, expiry: 30m}\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Presence.StatusMessages.ByKind()
	if len(got) != 2 || got["call"] != "On a call" || got["ringing"] != "Ringing" || cfg.Presence.StatusMessages.Expiry != 30*time.Minute {
		t.Fatalf("status messages %v, expiry %s", got, cfg.Presence.StatusMessages.Expiry)
	}
}
