package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/outputs"
	sipout "github.com/presence-bridge/presence-bridge/outputs/sip"

	natsout "github.com/presence-bridge/presence-bridge/outputs/nats"
	"github.com/presence-bridge/presence-bridge/outputs/webhook"
)

const twoTenants = `
graph:
  tenants:
    - {id: contoso.example, client_id: app, client_secret: s3cret}
    - id: fabrikam.example
      client_id: app
      client_secret: s3cret
      watch: {interval: 10s, users: "group:0b5a3f3e-1111-4222-8333-444455556666"}
sources:
  - {name: pbx, type: generic, token: t0ken, tenant: contoso.example}
  - {name: crm, type: generic, token: t1ken, tenant: contoso.example}
`

// TestTwoWayDefaults: watch off with the defaults, a tenant's
// override merged over the top level, skip_sources left out (nil) and []
// (empty, not nil) kept apart, a nats output's block defaulted.
func TestTwoWayDefaults(t *testing.T) {
	cfg, err := Parse([]byte(twoTenants+`
watch: {enabled: true, read_budget: 600}
outputs:
  - {name: bus, type: nats, skip_sources: []}
  - {name: quiet, type: nats, nats: {stream: QUIET, bucket: QUIET_LATEST, subject_prefix: quiet.teams}}
  - {name: nopbx, type: nats, skip_sources: [pbx], tenants: [contoso.example], nats: {stream: NOPBX, bucket: NOPBX_LATEST, subject_prefix: nopbx}}
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	if d := Default().Watch; d != (Watch{Interval: 2 * time.Second, Users: "directory", ReadBudget: 1000, ReadBudgetWindow: 30 * time.Second}) {
		t.Errorf("default watch %+v", d)
	}
	if w := cfg.WatchOf("contoso.example"); w != (Watch{Enabled: true, Interval: 2 * time.Second, Users: "directory", ReadBudget: 600, ReadBudgetWindow: 30 * time.Second}) {
		t.Errorf("contoso watch %+v", w)
	}
	w := cfg.WatchOf("fabrikam.example")
	if group, ok := w.Group(); !ok || group != "0b5a3f3e-1111-4222-8333-444455556666" || w.Interval != 10*time.Second || !w.Enabled || w.ReadBudget != 600 {
		t.Errorf("fabrikam watch %+v", w)
	}
	bus, quiet, nopbx := cfg.Outputs[0], cfg.Outputs[1], cfg.Outputs[2]
	if f := bus.Filter(); f.SkipSources == nil || len(f.SkipSources) != 0 {
		t.Errorf("skip_sources: [] read as %#v", f.SkipSources)
	}
	if f := quiet.Filter(); f.SkipSources != nil {
		t.Errorf("skip_sources left out read as %#v", f.SkipSources)
	}
	if f := nopbx.Filter(); len(f.SkipSources) != 1 || f.Tenants[0] != "contoso.example" {
		t.Errorf("nopbx filter %+v", f)
	}
	s, ok := bus.Settings().(natsout.Config)
	if !ok || s.Name != "bus" || s.Stream != "PRESENCE_TEAMS" || s.SubjectPrefix != "presence.teams" || s.Bucket != "PRESENCE_TEAMS_LATEST" || s.MaxAge != 24*time.Hour || s.Replicas != 1 {
		t.Errorf("bus settings %+v", s)
	}
	if cfg.Lookup.Token != "" {
		t.Errorf("lookup token %q", cfg.Lookup.Token)
	}
}

// TestTwoWayErrors: each bad key is reported with its path.
func TestTwoWayErrors(t *testing.T) {
	for _, c := range []struct {
		name, yaml, want string
	}{
		{"interval too short", "watch: {interval: 10ms}", "watch.interval: must be at least 100ms"},
		{"users unknown", "watch: {users: everyone}", `watch.users: must be directory, all or group:<object id> (got "everyone")`},
		{"group not an id", "watch: {users: 'group:sales'}", `watch.users: must be directory, all or group:<object id>`},
		{"budget zero", "watch: {read_budget: 0}", "watch.read_budget: must be positive"},
		{"budget past Graph", "watch: {read_budget: 2000}", "watch.read_budget: 2000 per 30s is faster than Graph's read limit of 1500 per 30s"},
		{"window short", "watch: {read_budget_window: 0s}", "watch.read_budget_window: must be at least 1s"},
		{"unknown watch key", "watch: {intervall: 2s}", "watch.intervall: unknown key"},
		{"bad duration", "watch: {interval: often}", "watch.interval: must be a duration"},
		{"tenant override", "graph:\n  tenants:\n    - {id: contoso.example, client_id: app, client_secret: s, watch: {users: nobody}}", "graph.tenants[0].watch.users: must be directory, all or group:<object id>"},
		{"tenant override budget", "graph:\n  tenants:\n    - {id: contoso.example, client_id: app, client_secret: s, watch: {read_budget_window: 10s}}", "graph.tenants[0].watch.read_budget: 1000 per 10s is faster"},
		{"tenant override unknown key", "graph:\n  tenants:\n    - {id: contoso.example, client_id: app, client_secret: s, watch: {budget: 1}}", "graph.tenants[0].watch.budget: unknown key"},
		{"lookup token space", "lookup: {token: 'a b'}", "lookup.token: must not contain spaces"},
		{"lookup token is admin's", "lookup: {token: same}\nadmin: {token: same}", "lookup.token: must differ from admin.token"},
		{"lookup token two forms", "lookup: {token: a, token_env: B}", "lookup.token: set only one"},
		{"lookup env unset", "lookup: {token_env: PRESENCE_BRIDGE_TEST_UNSET_LOOKUP}", "lookup.token: environment variable PRESENCE_BRIDGE_TEST_UNSET_LOOKUP is not set"},
		{"output name", "outputs: [{name: Bus, type: nats}]", `outputs[0].name: must be lower-case letters`},
		{"output duplicate", "outputs: [{name: bus, type: nats}, {name: bus, type: nats, nats: {stream: B, bucket: B_L, subject_prefix: b}}]", `outputs[1].name: duplicate output "bus"`},
		{"output type", "outputs: [{name: bus, type: kafka}]", `outputs[0].type: must be one of nats, sip, webhook (got "kafka")`},
		{"skip unknown source", "outputs: [{name: bus, type: nats, skip_sources: [pbx, asterisk]}]", `outputs[0].skip_sources[1]: unknown source "asterisk"`},
		{"skip twice", "outputs: [{name: bus, type: nats, skip_sources: [pbx, pbx]}]", `outputs[0].skip_sources[1]: duplicate source "pbx"`},
		{"unknown tenant", "outputs: [{name: bus, type: nats, tenants: [nowhere.example]}]", `outputs[0].tenants[0]: unknown tenant "nowhere.example"`},
		{"nats block bad", "outputs: [{name: bus, type: nats, nats: {stream: a.b, max_age: 1s}}]", "outputs[0].nats.stream: must be a stream name"},
		{"nats block max age", "outputs: [{name: bus, type: nats, nats: {max_age: 1s}}]", "outputs[0].nats.max_age: must be at least 1m"},
		{"nats unknown key", "outputs: [{name: bus, type: nats, nats: {streams: X}}]", "outputs[0].nats.streams: unknown key"},
		{"events stream reused", "outputs: [{name: bus, type: nats, nats: {stream: PRESENCE_EVENTS}}]", `outputs[0].nats.stream: "PRESENCE_EVENTS" is already nats.stream`},
		{"events subjects overlap", "outputs: [{name: bus, type: nats, nats: {subject_prefix: presence.events.teams}}]", `outputs[0].nats.subject_prefix: "presence.events.teams" overlaps nats.subject_prefix`},
		{"two outputs one bucket", "outputs: [{name: a, type: nats}, {name: b, type: nats, nats: {stream: B, subject_prefix: b}}]", `outputs[1].nats.bucket: "PRESENCE_TEAMS_LATEST" is already outputs[0].nats.bucket`},
		{"pair without activity", "outputs: [{name: bus, type: nats, pairs: [DoNotDisturb]}]", `outputs[0].pairs[0]: must be Availability/Activity`},
		{"pair with spaces", "outputs: [{name: bus, type: nats, pairs: ['Busy/In a call']}]", `outputs[0].pairs[0]: must be Availability/Activity`},
		{"pair twice", "outputs: [{name: bus, type: nats, pairs: [Busy/InACall, Busy/InACall]}]", `outputs[0].pairs[1]: duplicate pattern "Busy/InACall"`},
		{"person pair bad", "outputs: [{name: bus, type: nats, people: {ann@contoso.example: ['DoNotDisturb/']}}]", `outputs[0].people["ann@contoso.example"][0]: must be Availability/Activity`},
		{"person is a directory key", "outputs: [{name: bus, type: nats, people: {'ext:1001': []}}]", `outputs[0].people["ext:1001"]: must be a person's UPN or object id, as the directory's values name them, not a directory key`},
		{"person twice", "outputs: [{name: bus, type: nats, people: {Ann@contoso.example: [], ann@contoso.example: []}}]", `outputs[0].people["ann@contoso.example"]: the same person as "Ann@contoso.example"`},
		{"webhook without block", "outputs: [{name: hook, type: webhook}]", "outputs[0].webhook: a webhook output needs a webhook block with url and secret"},
		{"webhook block on nats", "outputs: [{name: bus, type: nats, webhook: {url: 'https://x.example/'}}]", "outputs[0].webhook: only a webhook output has a webhook block"},
		{"webhook no url", "outputs: [{name: hook, type: webhook, webhook: {secret: " + testSecret + "}}]", "outputs[0].webhook.url: required"},
		{"webhook ftp url", "outputs: [{name: hook, type: webhook, webhook: {url: 'ftp://x.example/', secret: " + testSecret + "}}]", "outputs[0].webhook.url: must be an absolute http or https URL"},
		{"webhook url credentials", "outputs: [{name: hook, type: webhook, webhook: {url: 'https://u:p@x.example/', secret: " + testSecret + "}}]", "outputs[0].webhook.url: must not carry credentials"},
		{"webhook no secret", "outputs: [{name: hook, type: webhook, webhook: {url: 'https://x.example/'}}]", "outputs[0].webhook.secret: required"},
		{"webhook secret not whsec", "outputs: [{name: hook, type: webhook, webhook: {url: 'https://x.example/', secret: hunter2hunter2}}]", "outputs[0].webhook.secret: secret 1 of 1 must start with whsec_"},
		{"webhook second secret short", "outputs: [{name: hook, type: webhook, webhook: {url: 'https://x.example/', secret: '" + testSecret + " whsec_c2hvcnQ='}}]", "outputs[0].webhook.secret: secret 2 of 2 must be whsec_ and the base64 of 24 to 64 bytes"},
		{"webhook secret two forms", "outputs: [{name: hook, type: webhook, webhook: {url: 'https://x.example/', secret: " + testSecret + ", secret_env: X}}]", "outputs[0].webhook.secret: set only one"},
		{"webhook secret env unset", "outputs: [{name: hook, type: webhook, webhook: {url: 'https://x.example/', secret_env: PRESENCE_BRIDGE_TEST_UNSET_HOOK}}]", "outputs[0].webhook.secret: environment variable PRESENCE_BRIDGE_TEST_UNSET_HOOK is not set"},
		{"webhook timeout", "outputs: [{name: hook, type: webhook, webhook: {url: 'https://x.example/', secret: " + testSecret + ", timeout: 10m}}]", "outputs[0].webhook.timeout: must be between 100ms and 5m"},
		{"webhook concurrency", "outputs: [{name: hook, type: webhook, webhook: {url: 'https://x.example/', secret: " + testSecret + ", concurrency: -1}}]", "outputs[0].webhook.concurrency: must be between 1 and 1024"},
		{"webhook attempts", "outputs: [{name: hook, type: webhook, webhook: {url: 'https://x.example/', secret: " + testSecret + ", max_attempts: 1000}}]", "outputs[0].webhook.max_attempts: must be between 1 and 100"},
		{"webhook queued", "outputs: [{name: hook, type: webhook, webhook: {url: 'https://x.example/', secret: " + testSecret + ", max_queued: -5}}]", "outputs[0].webhook.max_queued: must be between 1 and 10000000"},
		{"webhook unknown key", "outputs: [{name: hook, type: webhook, webhook: {url: 'https://x.example/', secret: " + testSecret + ", retries: 3}}]", "outputs[0].webhook.retries: unknown key"},
		{"two outputs one prefix", "outputs: [{name: a, type: nats}, {name: b, type: nats, nats: {stream: B, bucket: B_L}}]", `outputs[1].nats.subject_prefix: "presence.teams" overlaps outputs[0].nats.subject_prefix`},
		{"sip block missing", "outputs: [{name: phones, type: sip}]", "outputs[0].sip: required for a sip output"},
		{"sip block on nats", "outputs: [{name: bus, type: nats, sip: {server: '127.0.0.1:5060'}}]", "outputs[0].sip: only a sip output has a sip block"},
		{"sip server", "outputs: [{name: phones, type: sip, sip: {server: pbx}}]", `outputs[0].sip.server: must be host:port of the presence server (got "pbx")`},
		{"sip transport", "outputs: [{name: phones, type: sip, sip: {server: 'pbx.example:5060', transport: tls}}]", `outputs[0].sip.transport: must be udp or tcp (got "tls")`},
		{"sip user", "outputs: [{name: phones, type: sip, sip: {server: 'pbx.example:5060', user: 'a b'}}]", "outputs[0].sip.user: must be a SIP user name"},
		{"sip expires", "outputs: [{name: phones, type: sip, sip: {server: 'pbx.example:5060', expires: 1s}}]", "outputs[0].sip.expires: must be between 10s and 24h (got 1s)"},
		{"sip backoff", "outputs: [{name: phones, type: sip, sip: {server: 'pbx.example:5060', backoff: {min: 2s, max: 1s}}}]", "outputs[0].sip.backoff: needs 0 < min <= max"},
		{"sip person", "outputs: [{name: phones, type: sip, sip: {server: 'pbx.example:5060', extensions: {alice@contoso.example: 'sip:@'}}}]", `outputs[0].sip.extensions.alice@contoso.example: "sip:@" is not a sip:user@host URI`},
		{"sip extension twice", "outputs: [{name: phones, type: sip, sip: {server: 'pbx.example:5060', extensions: {a@contoso.example: '1001', b@contoso.example: 'sip:1001@pbx.example'}}}]", "outputs[0].sip.extensions.b@contoso.example: sip:1001@pbx.example is already extensions.a@contoso.example"},
		{"sip mapping availability", "outputs: [{name: phones, type: sip, sip: {server: 'pbx.example:5060', mapping: {Bussy: {basic: open}}}}]", `outputs[0].sip.mapping.Bussy: "Bussy" is not a Teams availability`},
		{"sip mapping basic", "outputs: [{name: phones, type: sip, sip: {server: 'pbx.example:5060', mapping: {Busy/InACall: {basic: half}}}}]", `outputs[0].sip.mapping.Busy/InACall.basic: must be open or closed (got "half")`},
		{"sip mapping activity", "outputs: [{name: phones, type: sip, sip: {server: 'pbx.example:5060', mapping: {DoNotDisturb: {basic: open, activity: dnd}}}}]", `outputs[0].sip.mapping.DoNotDisturb.activity: "dnd" is not an RPID activity`},
		{"sip unknown key", "outputs: [{name: phones, type: sip, sip: {server: 'pbx.example:5060', expiry: 1m}}]", "outputs[0].sip.expiry: unknown key"},
		{"sip password two forms", "outputs: [{name: phones, type: sip, sip: {server: 'pbx.example:5060', password: hunter2-secret, password_env: X}}]", "outputs[0].sip.password: set only one"},
		{"sip password env unset", "outputs: [{name: phones, type: sip, sip: {server: 'pbx.example:5060', password_env: PRESENCE_BRIDGE_TEST_UNSET_SIP}}]", "outputs[0].sip.password: environment variable PRESENCE_BRIDGE_TEST_UNSET_SIP is not set"},
	} {
		doc := c.yaml + "\n"
		if !strings.Contains(c.yaml, "graph:") {
			doc += twoTenants
		}
		_, err := Parse([]byte(doc), ".")
		if err != nil && strings.Contains(err.Error(), "hunter2-secret") {
			t.Errorf("%s: the error shows the password: %v", c.name, err)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v\nwant %q", c.name, err, c.want)
		}
	}
}

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestWebhookOutput: a webhook block with its defaults, the secret read
// from a file with two secrets (rotation), and no secret in any problem
// the configuration reports.
func TestWebhookOutput(t *testing.T) {
	dir := t.TempDir()
	second := "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24h"
	if err := os.WriteFile(filepath.Join(dir, "hook.secret"), []byte(testSecret+"\n"+second+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte(twoTenants+`
outputs:
  - {name: hook, type: webhook, webhook: {url: 'https://crm.example/hooks/presence', secret_file: hook.secret}}
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := cfg.Outputs[0].Settings().(webhook.Config)
	if !ok || s.Name != "hook" || s.Timeout != 15*time.Second || s.Concurrency != 32 || s.MaxAttempts != 8 || s.MaxQueued != 100_000 || s.Replicas != 1 {
		t.Fatalf("settings %+v", s)
	}
	if signers, err := webhook.Secrets(s.Secret); err != nil || len(signers) != 2 {
		t.Errorf("secrets read as %d signers (%v)", len(signers), err)
	}
	for _, bad := range []string{
		"webhook: {url: 'ftp://x/', secret: 'whsec_c2hvcnQ= " + testSecret + "'}",
		"webhook: {url: 'https://x/', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa!!'}",
		"webhook: {url: 'https://x/', secret: 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'}",
	} {
		_, err := Parse([]byte(twoTenants+"outputs:\n  - {name: hook, type: webhook, "+bad+"}\n"), dir)
		if err == nil {
			t.Fatalf("%s: parsed", bad)
		}
		for _, secret := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa", "c2hvcnQ="} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows the secret", err)
			}
		}
	}
}

// TestSIPOutputConfig: a sip output's block with its defaults, its
// password from a file, its people from the directory's ext: keys unless
// given, and mapping entries kept for the output.
func TestSIPOutputConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sip-password"), []byte("s1p-Secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte(twoTenants+`
directory:
  "ext:1001": alice@contoso.example
  "ext:1002": bob@contoso.example
  "tel:+15550100": alice@contoso.example
outputs:
  - name: phones
    type: sip
    skip_sources: [pbx]
    sip:
      server: 127.0.0.1:5060
      password_file: sip-password
      mapping:
        Busy/InAMeeting: {basic: open, activity: busy, dialog: true}
  - name: desk
    type: sip
    sip: {server: 'pbx.example:5070', transport: tcp, dialog: false, extensions: {carol@contoso.example: 'sip:2001@pbx.example'}}
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	phones, ok := cfg.Outputs[0].Settings().(sipout.Config)
	if !ok {
		t.Fatalf("settings %T", cfg.Outputs[0].Settings())
	}
	if phones.Name != "phones" || phones.Password != "s1p-Secret" || phones.Transport != "udp" || phones.Domain != "127.0.0.1" ||
		phones.User != "presence-bridge" || phones.Expires != 10*time.Minute || !*phones.Dialog || phones.RequestTimeout != 5*time.Second {
		t.Errorf("phones settings %v", phones)
	}
	if want := map[string]string{"alice@contoso.example": "1001", "bob@contoso.example": "1002"}; !reflect.DeepEqual(phones.Extensions, want) {
		t.Errorf("phones people %v, want %v", phones.Extensions, want)
	}
	if r := sipout.NewMapping(phones.Mapping).Rule(outputs.Pair{Availability: "Busy", Activity: "InAMeeting"}); r != (sipout.Rule{Basic: "open", Activity: "busy", Dialog: true}) {
		t.Errorf("mapped meeting %+v", r)
	}
	if strings.Contains(phones.String(), "s1p-Secret") {
		t.Errorf("String shows the password: %s", phones)
	}
	desk := cfg.Outputs[1].Settings().(sipout.Config)
	if *desk.Dialog || desk.Transport != "tcp" || len(desk.Extensions) != 1 || desk.Extensions["carol@contoso.example"] != "sip:2001@pbx.example" {
		t.Errorf("desk settings %v", desk)
	}
}

// TestTwoWayWarnings: an output whose tenants are all unwatched is
// warned about; a tenant's override that turns the watch on counts.
func TestTwoWayWarnings(t *testing.T) {
	for _, c := range []struct {
		yaml string
		warn bool
	}{
		{"outputs: [{name: bus, type: nats}]", true},
		{"watch: {enabled: true}\noutputs: [{name: bus, type: nats}]", false},
		{"outputs: [{name: bus, type: nats, tenants: [fabrikam.example]}]", true},
		{"outputs: [{name: bus, type: nats}]\ngraph:\n  tenants:\n    - {id: contoso.example, client_id: app, client_secret: s, watch: {enabled: true}}", false},
	} {
		doc := c.yaml + "\n"
		if !strings.Contains(c.yaml, "graph:") {
			doc += twoTenants
		}
		cfg, err := Parse([]byte(doc), ".")
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(cfg.Warnings(), "\n")
		if strings.Contains(got, "outputs[0] (bus) publishes nothing") != c.warn {
			t.Errorf("%s: warnings %q", c.yaml, got)
		}
	}
}

// TestOutputPairs: an output's pairs and people reach its filter, people
// keyed in lower case, and a person left without a list sends nothing; a
// person the directory does not name is warned about.
func TestOutputPairs(t *testing.T) {
	doc := "outputs:\n  - name: pbx\n    type: nats\n    pairs: [DoNotDisturb/*, Busy/InACall]\n    people:\n      Ann@Contoso.example: [DoNotDisturb/*]\n      bob@contoso.example:\n      carol@contoso.example: []\n" +
		"directory: {'ext:1001': ann@contoso.example, 'ext:1002': BOB@contoso.example}\n" + twoTenants
	cfg, err := Parse([]byte(doc), ".")
	if err != nil {
		t.Fatal(err)
	}
	// Ann and Bob are in the directory (in any case); Carol is not.
	var people []string
	for _, w := range cfg.Warnings() {
		if strings.Contains(w, "people[") {
			people = append(people, w)
		}
	}
	if len(people) != 1 || !strings.HasPrefix(people[0], `outputs[0].people["carol@contoso.example"] is no person of the directory`) {
		t.Errorf("warnings about people %q, want one about carol", people)
	}
	f := cfg.Outputs[0].Filter()
	if !slices.Equal(f.Pairs, []string{"DoNotDisturb/*", "Busy/InACall"}) {
		t.Errorf("pairs %q", f.Pairs)
	}
	if got := f.People["ann@contoso.example"]; !slices.Equal(got, []string{"DoNotDisturb/*"}) {
		t.Errorf("ann %q", got)
	}
	for _, p := range []string{"bob@contoso.example", "carol@contoso.example"} {
		if got, ok := f.People[p]; !ok || got == nil || len(got) != 0 {
			t.Errorf("%s: %q, %v, want an empty list", p, got, ok)
		}
	}
}
