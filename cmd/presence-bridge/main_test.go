package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/internal/freeport"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// result is what one command line did.
type result struct {
	code        int
	out, errOut string
}

// runLine runs a command line with buffers, the given environment and
// standard input.
func runLine(args []string, environ map[string]string, stdin string) result {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &env{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut,
		getenv: func(k string) string { return environ[k] },
	})
	return result{code, out.String(), errOut.String()}
}

// lineTest is one command line and what it must do: its exit code, and
// texts its standard output and error must (or must not) hold.
type lineTest struct {
	name    string
	args    []string
	stdin   string
	code    int
	out     []string
	errOut  []string
	missing []string // in neither output
}

func (tt lineTest) check(t *testing.T, environ map[string]string) result {
	t.Helper()
	r := runLine(tt.args, environ, tt.stdin)
	bad := r.code != tt.code
	for _, s := range tt.out {
		bad = bad || !strings.Contains(r.out, s)
	}
	for _, s := range tt.errOut {
		bad = bad || !strings.Contains(r.errOut, s)
	}
	for _, s := range tt.missing {
		bad = bad || strings.Contains(r.out+r.errOut, s)
	}
	if bad {
		t.Errorf("%v: exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", tt.args, r.code, tt.code, r.out, r.errOut)
	}
	return r
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	const minimal = "graph:\n  tenants: [{id: t.example, client_id: app, client_secret: s}]\n"
	bad := write("bad.yaml", "log: {level: loud}\nsurprise: 1\nhttp: {read_timeout: 10 parsecs}\n"+minimal+"presence: {expiration: soon}\n")
	shared := write("shared.yaml", minimal+"sources:\n  - {name: a, type: generic, token: same-t0ken}\n  - {name: b, type: generic, token: same-t0ken}\n")
	badDir := write("baddir.yaml", minimal+"directory_file: people.csv\n")
	badTwoWay := write("badtwoway.yaml", minimal+"watch: {users: everyone}\nlookup: {tokn: x}\noutputs: [{name: bus, type: kafka, skip_sources: [pbx]}]\n")
	unwatched := write("unwatched.yaml", minimal+"outputs: [{name: bus, type: nats}]\n")
	write("people.csv", "key,user\next:1,a@t.example\next:2,nobody\n")
	var help []string
	for _, c := range commands() {
		help = append(help, "  "+c.name+" ")
	}
	tests := []lineTest{
		{name: "help lists every command", args: []string{"--help"}, out: append(help, "PRESENCE_BRIDGE_URL", "Exit codes")},
		{name: "help word", args: []string{"help"}, out: help},
		{name: "version", args: []string{"--version"}, out: []string{"presence-bridge ", "(revision ", "go1."}},
		{name: "version command", args: []string{"version"}, out: []string{"presence-bridge "}},
		{name: "command help", args: []string{"dlq", "list", "--help"}, errOut: []string{"-source", "-reason", "-since", "-url", "-token"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, errOut: []string{`unknown command "frobnicate"`, "--help"}},
		{name: "dlq without subcommand", args: []string{"dlq"}, code: 2, errOut: []string{"list, replay or purge"}},
		{name: "unknown dlq subcommand", args: []string{"dlq", "eat"}, code: 2, errOut: []string{`unknown command "dlq eat"`}},
		{name: "bad flag", args: []string{"check-config", "--nope"}, code: 2, errOut: []string{"-nope"}},
		{name: "example is ok", args: []string{"check-config", "--config", "../../config.example.yaml"}, out: []string{"ok"}},
		{name: "every problem at once", args: []string{"check-config", "--config", bad}, code: 2, errOut: []string{
			"surprise: unknown key (line 2)",
			`http.read_timeout: must be a duration such as 30s, 5m or 4h (got "10 parsecs", line 3)`,
			`presence.expiration: must be a duration such as 30s, 5m or 4h (got "soon", line 6)`,
			`log.level: must be one of debug, info, warn, error (got "loud")`,
		}},
		{name: "shared token warned, not shown", args: []string{"check-config", "--config", shared}, out: []string{"ok"},
			errOut: []string{"warning: sources[1] (b) has the same token as sources[0] (a)"}, missing: []string{"same-t0ken"}},
		{name: "directory file rows", args: []string{"check-config", "--config", badDir}, code: 2, errOut: []string{`directory_file: row 3: user "nobody" is neither a UPN nor an object id`}},
		{name: "two-way sections", args: []string{"check-config", "--config", badTwoWay}, code: 2, errOut: []string{
			`watch.users: must be directory, all or group:<object id> (got "everyone")`,
			"lookup.tokn: unknown key",
			`outputs[0].type: must be one of nats, sip, webhook (got "kafka")`,
			`outputs[0].skip_sources[0]: unknown source "pbx"`,
		}},
		{name: "output never published", args: []string{"check-config", "--config", unwatched}, out: []string{"ok"},
			errOut: []string{"warning: outputs[0] (bus) publishes nothing: watch.enabled is false"}},
		{name: "missing file", args: []string{"check-config", "--config", filepath.Join(dir, "none.yaml")}, code: 2, errOut: []string{"no such file"}},
		{name: "stray word", args: []string{"check-config", "stray", "--config", "../../config.example.yaml"}, code: 2, errOut: []string{"takes no arguments"}},
		{name: "client without a URL", args: []string{"status", "--token", "x"}, code: 2, errOut: []string{"--url", "PRESENCE_BRIDGE_URL"}},
		{name: "client without a token", args: []string{"status", "--url", "http://127.0.0.1:1"}, code: 2, errOut: []string{"PRESENCE_BRIDGE_TOKEN"}},
		{name: "bad output", args: []string{"dlq", "list", "-o", "xml", "--url", "http://127.0.0.1:1", "--token", "x"}, code: 2, errOut: []string{"-o must be table or json"}},
		{name: "bad since", args: []string{"dlq", "list", "--since", "yesterday", "--url", "http://127.0.0.1:1", "--token", "x"}, code: 2, errOut: []string{"--since"}},
		{name: "why needs a user", args: []string{"why"}, code: 2, errOut: []string{"why needs one USER"}},
		{name: "replay needs numbers", args: []string{"dlq", "replay", "nope"}, code: 2, errOut: []string{`not "nope"`}},
		{name: "replay needs something", args: []string{"dlq", "replay"}, code: 2, errOut: []string{"--all"}},
		{name: "replay numbers or all", args: []string{"dlq", "replay", "3", "--all"}, code: 2, errOut: []string{"not both"}},
		{name: "filters go with all", args: []string{"dlq", "replay", "3", "--source", "a"}, code: 2, errOut: []string{"go with --all"}},
		{name: "bridge down, token not shown", args: []string{"status", "--url", "http://127.0.0.1:1", "--token", "s3cret-admin"}, code: 1,
			errOut: []string{"error: can not reach the bridge at http://127.0.0.1:1"}, missing: []string{"s3cret-admin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, nil) })
	}
}

// TestVersionFromLdflags: the values the Makefile passes with -X win over
// the build information.
func TestVersionFromLdflags(t *testing.T) {
	old, oldRev := version, revision
	defer func() { version, revision = old, oldRev }()
	version, revision = "v1.2.3", "abc123"
	if got := runLine([]string{"--version"}, nil, ""); got.code != 0 || !strings.HasPrefix(got.out, "presence-bridge v1.2.3 (revision abc123, go") {
		t.Fatalf("%+v", got)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

const aliceID = bridgetest.AliceID

// startBridge runs the whole program on a test configuration with an
// admin token and returns its base URL; it stops when the test ends.
func startBridge(t *testing.T) (url, configPath string) {
	return startBridgeAdmin(t, "")
}

// startBridgeAdmin is startBridge with admin.listen set to adminListen.
func startBridgeAdmin(t *testing.T, adminListen string) (url, configPath string) {
	return startBridgeWith(t, bridgetest.Emulator(bridgetest.Alice), adminListen, "")
}

// startBridgeWith is startBridge with emulator as graph.emulator,
// admin.listen set to adminListen, and extra added to the configuration.
func startBridgeWith(t *testing.T, emulator, adminListen, extra string) (url, configPath string) {
	addr := freeAddr(t)
	dir := t.TempDir()
	configPath = filepath.Join(dir, "c.yaml")
	yaml := fmt.Sprintf("log: {level: warn}\nhttp: {listen: %q}\nnats: {store_dir: %q}\ngraph:\n", addr, filepath.Join(dir, "nats")) +
		bridgetest.Tenants() + emulator + fmt.Sprintf(`directory: {"ext:1001": alice@contoso.example}
sources:
  - {name: demo, type: generic, token: demo-t0ken}
  - {name: pbx, type: generic, token: pbx-t0ken}
admin: {token: admin-s3cret, listen: %q}
`, adminListen) + extra
	os.WriteFile(configPath, []byte(yaml), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--config", configPath}, &env{stdout: io.Discard, stderr: &syncWriter{w: &bytes.Buffer{}}})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + addr, configPath
}

// postEvent sends one canonical event, retrying while the bridge starts.
func postEvent(t *testing.T, base, token, body string) {
	t.Helper()
	testpoll.UntilOK(t, "the bridge to take the event", func() error {
		return bridgetest.Post(http.DefaultClient, base+"/v1/events", token, body)
	})
}

// waitFor runs a command line until its output holds want.
func waitFor(t *testing.T, environ map[string]string, want string, args ...string) {
	t.Helper()
	testpoll.UntilOK(t, fmt.Sprintf("%v to show %q", args, want), func() error {
		if r := runLine(args, environ, ""); r.code != 0 || !strings.Contains(r.out, want) {
			return fmt.Errorf("exit %d\n%s%s", r.code, r.out, r.errOut)
		}
		return nil
	})
}

// TestClientCommands drives status, why and dlq against a running bridge
// as an operator would, with the URL and token from the environment.
func TestClientCommands(t *testing.T) {
	base, configPath := startBridge(t)
	environ := map[string]string{"PRESENCE_BRIDGE_URL": base, "PRESENCE_BRIDGE_TOKEN": "admin-s3cret"}
	now := time.Now().UTC().Format(time.RFC3339)
	event := func(id, source, user string) string {
		return fmt.Sprintf(`{"id":%q,"source":%q,"type":"call","user":%q,"occurredAt":%q,"callId":"c-%s","state":"active"}`, id, source, user, now, id)
	}
	// Three events for people nobody knows are dead-lettered; one for
	// Alice makes her busy.
	postEvent(t, base, "demo-t0ken", event("d1", "demo", "ext:404"))
	postEvent(t, base, "demo-t0ken", event("d2", "demo", "ext:405"))
	postEvent(t, base, "pbx-t0ken", event("p1", "pbx", "ext:406"))
	postEvent(t, base, "demo-t0ken", event("a1", "demo", "ext:1001"))
	waitFor(t, environ, "pbx", "dlq", "list", "--source", "pbx")
	waitFor(t, environ, "told", "why", "alice@contoso.example")

	secrets := []string{"admin-s3cret", "demo-t0ken", "pbx-t0ken", bridgetest.ClientSecret}
	tests := []lineTest{
		{name: "status", args: []string{"status"}, out: []string{"TENANTS", "ID", "WRITING", "contoso.example", "SOURCES", "NAME", "demo", "/v1/hooks/pbx", "token"}},
		{name: "status json", args: []string{"status", "-o", "json"}, out: []string{`"tenants": [`, `"name": "pbx"`}},
		{name: "outputs, none running", args: []string{"outputs"}, out: []string{"(none)"}},
		{name: "why", args: []string{"why", "alice@contoso.example"}, out: []string{"state:", "  userId: " + aliceID, "  calls:", "    demo/c-a1:", "desired:", "told:"}},
		{name: "why by directory key, json", args: []string{"why", "ext:1001", "--tenant", "contoso.example", "-o", "json"}, out: []string{`"userId": "` + aliceID + `"`}},
		{name: "why unknown", args: []string{"why", "nobody@elsewhere.example"}, code: 1, errOut: []string{"error: the bridge answered 404 unknown_user"}},
		{name: "dlq list", args: []string{"dlq", "list"}, out: []string{"SEQ  AT", "SOURCE  REASON", "demo", "pbx", "unknown user"}},
		{name: "dlq list by source", args: []string{"dlq", "list", "--source", "pbx"}, out: []string{"pbx"}, missing: []string{" demo "}},
		{name: "dlq list by reason", args: []string{"dlq", "list", "--reason", "EXT:405"}, out: []string{`"ext:405"`}, missing: []string{"ext:404", "ext:406"}},
		{name: "dlq list since an hour", args: []string{"dlq", "list", "--since", "1h", "-o", "json"}, out: []string{`"source": "demo"`, `"source": "pbx"`, `"data": {`}},
		{name: "dlq list since the future", args: []string{"dlq", "list", "--since", "2999-01-01T00:00:00Z", "-o", "json"}, out: []string{"[]"}},
		{name: "wrong token", args: []string{"dlq", "list", "--token", "wr0ng-token"}, code: 1, errOut: []string{"401 unauthorized"}, missing: []string{"wr0ng-token"}},
		{name: "replay all of a source", args: []string{"dlq", "replay", "--all", "--source", "pbx"}, out: []string{"1 replayed, 0 failed"}},
		{name: "replay one missing", args: []string{"dlq", "replay", "999999"}, code: 1, out: []string{"0 replayed, 1 failed"}, errOut: []string{"dead letter 999999 not replayed"}},
	}
	for _, tt := range tests {
		tt.missing = append(tt.missing, secrets...)
		t.Run(tt.name, func(t *testing.T) { tt.check(t, environ) })
	}
	// Several at once, by the sequence numbers dlq list -o json gives.
	r := runLine([]string{"dlq", "list", "--reason", "ext:40", "-o", "json"}, environ, "")
	var listed []struct{ Seq uint64 }
	if err := json.Unmarshal([]byte(r.out), &listed); err != nil || len(listed) < 2 {
		t.Fatalf("dlq list -o json: %v %q", err, r.out)
	}
	several := lineTest{args: []string{"dlq", "replay", fmt.Sprint(listed[0].Seq), fmt.Sprint(listed[1].Seq)},
		out: []string{fmt.Sprintf("replayed %d\nreplayed %d\n2 replayed, 0 failed", listed[0].Seq, listed[1].Seq)}, missing: secrets}
	several.check(t, environ)
	// The replayed events are dead-lettered again; once all three are
	// back, nothing else is on the way and the purge empties the list.
	for _, user := range []string{"ext:404", "ext:405", "ext:406"} {
		waitFor(t, environ, user, "dlq", "list")
	}
	for _, tt := range []lineTest{
		{name: "purge refused", args: []string{"dlq", "purge"}, stdin: "no\n", code: 1, errOut: []string{"Delete all 3 dead letters for good?", "nothing purged"}},
		{name: "purge confirmed", args: []string{"dlq", "purge"}, stdin: "yes\n", out: []string{"purged 3"}},
		{name: "purge --yes", args: []string{"dlq", "purge", "--yes"}, out: []string{"purged 0"}},
		{name: "empty list", args: []string{"dlq", "list"}, out: []string{"SEQ"}, missing: []string{"ext:40"}},
	} {
		tt.missing = append(tt.missing, secrets...)
		t.Run(tt.name, func(t *testing.T) { tt.check(t, environ) })
	}
	// Without the environment, the URL and token come from the bridge's
	// configuration.
	fromConfig := lineTest{args: []string{"status", "--config", configPath}, out: []string{"contoso.example"}, missing: secrets}
	fromConfig.check(t, nil)
}

// TestWhyShowsTeamsChanges: with the Teams watch on, a Teams call set
// through the emulator shows in why's history with origin teams, its pair
// and sequenceNumber.
func TestWhyShowsTeamsChanges(t *testing.T) {
	emulatorAddr := freeAddr(t)
	emulator := strings.Replace(bridgetest.Emulator(bridgetest.Alice), `listen: "127.0.0.1:0"`, fmt.Sprintf("listen: %q", emulatorAddr), 1) +
		"    admin: {writes: true}\n"
	base, _ := startBridgeWith(t, emulator, "", "watch: {enabled: true, interval: 200ms}\n")
	environ := map[string]string{"PRESENCE_BRIDGE_URL": base, "PRESENCE_BRIDGE_TOKEN": "admin-s3cret"}
	// The watcher has read Alice once (her first presence is a change),
	// so the Teams call is the next one.
	waitFor(t, environ, "origin: teams", "why", "ext:1001")
	body := fmt.Sprintf(`{"user":%q,"kind":"teams","sessionId":"desk","availability":"Busy","activity":"InACall"}`, aliceID)
	testpoll.UntilOK(t, "the emulator to take the Teams call", func() error {
		resp, err := http.Post("http://"+emulatorAddr+"/_emulator/sessions", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the emulator answered %d", resp.StatusCode)
		}
		return nil
	})
	waitFor(t, environ, "pair: Busy/InACall", "why", "ext:1001")
	check := lineTest{args: []string{"why", "alice@contoso.example"},
		out: []string{"history:", "  - at: ", "    origin: teams\n    pair: Busy/InACall\n    sequenceNumber: "}, missing: []string{"admin-s3cret"}}
	check.check(t, environ)
}

// TestClientReachesAdminListen: with admin.listen set, the admin API is
// not on http.listen, and --config takes the client to admin.listen.
func TestClientReachesAdminListen(t *testing.T) {
	adminAddr := freeAddr(t)
	base, configPath := startBridgeAdmin(t, adminAddr)
	postEvent(t, base, "demo-t0ken", fmt.Sprintf(`{"id":"a1","source":"demo","type":"call","user":"ext:1001","occurredAt":%q,"callId":"c1","state":"active"}`,
		time.Now().UTC().Format(time.RFC3339)))
	waitFor(t, map[string]string{"PRESENCE_BRIDGE_URL": "http://" + adminAddr, "PRESENCE_BRIDGE_TOKEN": "admin-s3cret"}, "contoso.example", "status")
	if r := runLine([]string{"status", "--url", base, "--token", "admin-s3cret"}, nil, ""); r.code == 0 {
		t.Fatalf("the admin API answers on http.listen too:\n%s", r.out)
	}
	fromConfig := lineTest{args: []string{"status", "--config", configPath}, out: []string{"contoso.example", "demo"}, missing: []string{"admin-s3cret"}}
	fromConfig.check(t, nil)
}

// TestAdminAddr: the client reaches a wildcard listen address on
// loopback, and admin.listen wins over http.listen.
func TestAdminAddr(t *testing.T) {
	for _, tt := range []struct{ http, admin, want string }{
		{"127.0.0.1:8080", "", "127.0.0.1:8080"},
		{"0.0.0.0:8080", "", "127.0.0.1:8080"},
		{"0.0.0.0:8080", "0.0.0.0:9090", "127.0.0.1:9090"},
		{"0.0.0.0:8080", ":9090", "127.0.0.1:9090"},
		{"0.0.0.0:8080", "[::]:9090", "[::1]:9090"},
		{"0.0.0.0:8080", "10.0.0.5:9090", "10.0.0.5:9090"},
		{"0.0.0.0:8080", "ops.internal:9090", "ops.internal:9090"},
	} {
		cfg := &config.Config{HTTP: config.HTTP{Listen: tt.http}, Admin: config.Admin{Listen: tt.admin}}
		if got := adminAddr(cfg); got != tt.want {
			t.Errorf("http.listen %q, admin.listen %q: %q, want %q", tt.http, tt.admin, got, tt.want)
		}
	}
}

// TestBuildInfoIsVersion: presence_bridge_build_info reports what
// --version prints, the values -X sets.
func TestBuildInfoIsVersion(t *testing.T) {
	old, oldRev := version, revision
	defer func() { version, revision = old, oldRev }()
	version, revision = "v7.8.9-test", "0123abcd4567"
	if r := runLine([]string{"--version"}, nil, ""); !strings.HasPrefix(r.out, "presence-bridge v7.8.9-test (revision 0123abcd4567, ") {
		t.Fatalf("--version: %q", r.out)
	}
	adminAddr := freeAddr(t)
	startBridgeAdmin(t, adminAddr)
	want := `presence_bridge_build_info{goversion="` + runtime.Version() + `",revision="0123abcd4567",version="v7.8.9-test"} 1`
	var body []byte
	testpoll.Until(t, "/metrics on admin.listen", func() bool {
		resp, err := http.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK
	})
	if !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s:\n%s", want, grepLines(string(body), "build_info"))
	}
}

// grepLines returns the lines of text that hold s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRunStopsOnSignal runs the whole program on a test configuration and
// cancels it as SIGTERM would: it must stop cleanly with exit code 0.
func TestRunStopsOnSignal(t *testing.T) {
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
http: {listen: "127.0.0.1:0"}
nats: {store_dir: %q}
graph:
  tenants: [{id: t.example, client_id: app, client_secret: s}]
  emulator:
    enabled: true
    listen: "127.0.0.1:0"
    tenants: [{id: t.example, apps: [{client_id: app, client_secret: s}], users: []}]
sources: [{name: demo, type: generic, token: x}]
`, filepath.Join(dir, "nats"))
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	errOut := &syncWriter{w: &bytes.Buffer{}}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--config", path}, &env{stdout: io.Discard, stderr: errOut})
	}()
	// Stopped once it runs, not after a guess at how long starting takes.
	testpoll.Until(t, "the bridge to log that it listens", func() bool {
		return strings.Contains(errOut.String(), "presence bridge listening")
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop within 15s")
	}
}

// syncWriter lets the program's logger and the test share a buffer.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func TestEmulatorExampleConfig(t *testing.T) {
	for _, path := range []string{"../../graphclient/emulator/testdata/emulator.example.yaml", "../../config.example.yaml"} {
		cfg, _, err := loadEmulatorConfig(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if cfg.Listen != "127.0.0.1:8081" || len(cfg.Tenants) != 1 || len(cfg.Tenants[0].Users) != 2 {
			t.Fatalf("%s: %+v", path, cfg)
		}
	}
}
