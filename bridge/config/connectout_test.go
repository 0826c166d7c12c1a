package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters/caldav"
	"github.com/presence-bridge/presence-bridge/adapters/catalog"
	"github.com/presence-bridge/presence-bridge/adapters/sipdialog"
)

const connectOut = minimal + `  - name: pbx
    type: sipdialog
    sipdialog:
      pbx: 127.0.0.1:5060
      listen: 127.0.0.1:5070
      password_env: PRESENCE_BRIDGE_TEST_SIP
      entities: [{entity: "1001"}]
  - name: cal
    type: caldav
    caldav:
      poll_interval: 30s
      calendars:
        - user: alice@contoso.example
          url: https://dav.example/alice/calendar/
          username: alice
          password_file: cal.txt
        - user: bob@contoso.example
          principal: https://dav.example/
          token: b34rer
`

// TestConnectOutSources: sipdialog and caldav sources decode into their
// packages' configurations, with their secrets resolved and no webhook
// path.
func TestConnectOutSources(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cal.txt"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PRESENCE_BRIDGE_TEST_SIP", "sip-from-env")
	cfg, err := Parse([]byte(connectOut), dir)
	if err != nil {
		t.Fatal(err)
	}
	pbx, cal := cfg.Sources[1], cfg.Sources[2]
	if pbx.Path != "" || cal.Path != "" {
		t.Errorf("connect-out sources got webhook paths %q, %q", pbx.Path, cal.Path)
	}
	if pbx.Tenant != "contoso.example" || cal.Tenant != "contoso.example" {
		t.Errorf("tenants not defaulted: %q, %q", pbx.Tenant, cal.Tenant)
	}
	sip, ok := pbx.Settings().(sipdialog.Config)
	if !ok || sip.PBX != "127.0.0.1:5060" || sip.Password != "sip-from-env" || len(sip.Entities) != 1 {
		t.Errorf("sipdialog settings: %+v", pbx.Settings())
	}
	dav, ok := cal.Settings().(caldav.Config)
	if !ok || dav.Name != "cal" || dav.PollInterval != 30*time.Second || len(dav.Calendars) != 2 ||
		dav.Calendars[0].Password != "from-file" || dav.Calendars[1].Token != "b34rer" {
		t.Errorf("caldav settings: %+v", cal.Settings())
	}
	if cfg.Sources[0].Settings() != nil {
		t.Errorf("a webhook source has settings %v", cfg.Sources[0].Settings())
	}
}

// TestConnectOutErrors checks the exact messages for connect-out sources,
// each naming its key's path, and that none repeats a secret.
func TestConnectOutErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"blocks missing", minimal + "  - {name: pbx, type: sipdialog}\n  - {name: cal, type: caldav}\n", []string{
			"sources[1].sipdialog: required for a sipdialog source",
			"sources[2].caldav: required for a caldav source",
		}},
		{"block of another type", minimal + "  - {name: pbx, type: sipdialog, caldav: {}, sipdialog: {pbx: \"127.0.0.1:5060\", listen: \"127.0.0.1:0\", entities: [{entity: \"1001\"}]}}\n", []string{
			"sources[1].caldav: only for a source of type caldav",
		}},
		{"webhook settings", minimal + "  - {name: pbx, type: sipdialog, path: /hook, secret: s3cret, sipdialog: {pbx: \"127.0.0.1:5060\", listen: \"127.0.0.1:0\", entities: [{entity: \"1001\"}]}}\n", []string{
			"sources[1].path: a sipdialog source connects out and has no webhook path",
			"sources[1]: a sipdialog source has no webhook: token, secret and public_url do not apply (its credentials go in its sipdialog block)",
		}},
		{"sipdialog problems", minimal + `  - name: pbx
    type: sipdialog
    sipdialog:
      pbx: nowhere
      transport: tls
      listen: 127.0.0.1:5070
      password: s3cret
      entities: [{entity: "1001"}, {entity: "sip:1001@nowhere"}, {entity: "<bad>"}]
`, []string{
			`sources[1].sipdialog.pbx: "nowhere" is not host:port`,
			`sources[1].sipdialog.transport: must be udp or tcp, not "tls"`,
			"sources[1].sipdialog.domain: must be a host name or address",
			`sources[1].sipdialog.entities[2].entity: "<bad>" is neither a SIP URI nor an extension`,
		}},
		{"sipdialog unknown key", minimal + "  - {name: pbx, type: sipdialog, sipdialog: {pbx: \"127.0.0.1:5060\", listen: \"127.0.0.1:0\", entities: [{entity: \"1001\"}], passwd: x}}\n", []string{
			"sources[1].sipdialog.passwd: unknown key (line 7)",
		}},
		{"caldav problems", minimal + `  - name: cal
    type: caldav
    caldav:
      name: other
      poll_interval: 10ms
      calendars:
        - user: alice@contoso.example
          url: ftp://dav.example/
          username: alice
        - user: bob@contoso.example
          url: https://dav.example/bob/
          principal: https://dav.example/
          token: b34rer
          password: s3cret
`, []string{
			"sources[1].caldav.name: leave it out: the source's name is used",
			"sources[1].caldav.calendars[0].url: must be an absolute http or https URL",
			"sources[1].caldav.calendars[0]: username and password go together",
			"sources[1].caldav.calendars[1]: set exactly one of url and principal",
			"sources[1].caldav.calendars[1]: set either token or username and password",
			"sources[1].caldav.poll_interval: must be at least 1s",
		}},
		{"caldav secret forms", minimal + `  - name: cal
    type: caldav
    caldav:
      calendars:
        - {user: a@contoso.example, url: "https://dav.example/a/", username: a, password: s3cret, password_env: X}
        - {user: b@contoso.example, url: "https://dav.example/b/", token_env: PRESENCE_BRIDGE_TEST_UNSET}
`, []string{
			"sources[1].caldav.calendars[0].password: set only one of the value, its _file or its _env",
			"sources[1].caldav.calendars[1].token: environment variable PRESENCE_BRIDGE_TEST_UNSET is not set",
		}},
		{"sipdialog secret file missing", minimal + "  - {name: pbx, type: sipdialog, sipdialog: {pbx: \"127.0.0.1:5060\", listen: \"127.0.0.1:0\", password_file: /nonexistent/sip.txt, entities: [{entity: \"1001\"}]}}\n", []string{
			"sources[1].sipdialog.password: read secret file: open /nonexistent/sip.txt: no such file or directory",
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
			for _, secret := range []string{"s3cret", "b34rer", "t0ken"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows secret %q: %v", secret, err)
				}
			}
		})
	}
}

// TestSourceTypesMatchCatalog: the configuration accepts exactly the types
// the catalog builds, and agrees on which connect out.
func TestSourceTypesMatchCatalog(t *testing.T) {
	if got, want := strings.Join(slices.Sorted(slices.Values(SourceTypes)), ","), strings.Join(catalog.Types(), ","); got != want {
		t.Errorf("SourceTypes %s, catalog %s", got, want)
	}
	for _, typ := range SourceTypes {
		if ConnectsOut(typ) != catalog.ConnectsOut(typ) {
			t.Errorf("%s: config and catalog disagree on connecting out", typ)
		}
	}
}

// TestExampleConnectOutSources: the commented-out sipdialog and caldav
// examples of config.example.yaml are valid once uncommented.
func TestExampleConnectOutSources(t *testing.T) {
	data, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	uncommented := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "  # - name: ") || (uncommented > 0 && strings.HasPrefix(line, "  #   ")) {
			line = "  " + line[4:]
			uncommented++
		}
		out = append(out, line)
	}
	if uncommented < 10 {
		t.Fatalf("found %d example lines", uncommented)
	}
	for _, env := range []string{"PBX_SIP_PASSWORD", "ALICE_CALDAV_PASSWORD", "BOB_CALDAV_TOKEN", "CALENDAR_CLIENT_STATE"} {
		t.Setenv(env, "example-"+env)
	}
	cfg, err := Parse([]byte(strings.Join(out, "\n")), "../..")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, s := range cfg.Sources {
		types[s.Type] = s.Settings() != nil
	}
	if !types["sipdialog"] || !types["caldav"] {
		t.Fatalf("examples not loaded: %v", types)
	}
	for _, o := range cfg.Outputs {
		types["output "+o.Type] = o.Settings() != nil
	}
	if !types["output sip"] {
		t.Fatalf("the sip output example not loaded: %v", types)
	}
}

// FuzzParseConnectOut: no configuration of connect-out sources makes Parse
// panic.
func FuzzParseConnectOut(f *testing.F) {
	f.Add([]byte(connectOut))
	f.Add([]byte(minimal + "  - {name: pbx, type: sipdialog, sipdialog: {pbx: \"[::1]:5060\", listen: \":0\", entities: [{entity: \"sips:x@[::1]\"}]}}\n"))
	f.Add([]byte(minimal + "  - {name: cal, type: caldav, caldav: {calendars: [{user: a, url: \"http://u:p@h/\"}], time_zone: Nowhere/Else}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		cfg, err := Parse(data, t.TempDir())
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
	})
}
