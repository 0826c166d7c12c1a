package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/internal/freeport"

	"github.com/presence-bridge/presence-bridge/internal/logbuf"

	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// composeFile is the part of a compose file the test reads.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Volumes     []string          `yaml:"volumes"`
	Environment map[string]string `yaml:"environment"`
	Secrets     []string          `yaml:"secrets"`
	DependsOn   []string          `yaml:"depends_on"`
	Ports       []string          `yaml:"ports"`
}

// topology is the compose file's services by role, each list sorted.
type topology struct {
	file     composeFile
	nats     []string
	emulator string
	bridges  []string
}

// readTopology loads compose.yaml and sorts its services into NATS
// servers, the Graph emulator and bridges, failing on any other.
func readTopology(t *testing.T) topology {
	t.Helper()
	data, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var top topology
	if err := yaml.Unmarshal(data, &top.file); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for name, s := range top.file.Services {
		switch {
		case strings.HasPrefix(s.Image, "nats:"):
			top.nats = append(top.nats, name)
		case len(s.Command) > 0 && s.Command[0] == "emulator":
			if top.emulator != "" {
				t.Fatalf("compose.yaml: two emulators, %s and %s", top.emulator, name)
			}
			top.emulator = name
		case len(s.Command) > 0 && s.Command[0] == "run":
			top.bridges = append(top.bridges, name)
		default:
			t.Fatalf("compose.yaml: service %s is neither NATS, the emulator nor a bridge", name)
		}
	}
	for name, s := range top.file.Services {
		for _, dep := range s.DependsOn {
			if _, ok := top.file.Services[dep]; !ok {
				t.Fatalf("compose.yaml: %s depends on %s, which is no service", name, dep)
			}
		}
	}
	slices.Sort(top.nats)
	slices.Sort(top.bridges)
	if len(top.nats) != 3 || top.emulator == "" || len(top.bridges) != 2 {
		t.Fatalf("compose.yaml: want 3 NATS servers, an emulator and 2 bridges, got %v, %q, %v", top.nats, top.emulator, top.bridges)
	}
	return top
}

// TestComposeImagesMatchModule: the compose file's NATS image is the
// nats-server version this module builds and tests against.
func TestComposeImagesMatchModule(t *testing.T) {
	top := readTopology(t)
	goMod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/nats-io/nats-server/v2 v(\S+)`).FindSubmatch(goMod)
	if m == nil {
		t.Fatal("go.mod requires no nats-server")
	}
	want := "nats:" + string(m[1])
	for _, name := range top.nats {
		if got := top.file.Services[name].Image; got != want {
			t.Errorf("%s runs %s; the module tests %s", name, got, want)
		}
	}
}

// TestComposeNamesItsTest: every Go file compose.yaml's comments point
// to exists.
func TestComposeNamesItsTest(t *testing.T) {
	data, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files := regexp.MustCompile(`deploy/[a-z_]+\.go`).FindAllString(string(data), -1)
	if len(files) == 0 {
		t.Fatal("compose.yaml names no test file")
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join("..", f)); err != nil {
			t.Errorf("compose.yaml names %s: %v", f, err)
		}
	}
}

// TestComposeKeepsAdminPrivate: each bridge serves the admin side on a
// port of its own (admin.listen) and compose publishes that port on the
// host's loopback only.
func TestComposeKeepsAdminPrivate(t *testing.T) {
	top := readTopology(t)
	for _, name := range top.bridges {
		s := top.file.Services[name]
		httpListen, adminListen := composeListens(t, top, name)
		_, httpPort, _ := net.SplitHostPort(httpListen)
		_, adminPort, err := net.SplitHostPort(adminListen)
		if err != nil || adminPort == httpPort {
			t.Errorf("%s: admin.listen %q, want a port of its own", name, adminListen)
			continue
		}
		published := false
		for _, p := range s.Ports {
			parts := strings.Split(p, ":")
			if parts[len(parts)-1] != adminPort {
				continue
			}
			published = true
			if len(parts) != 3 || parts[0] != "127.0.0.1" {
				t.Errorf("%s publishes the admin port as %q; want it on 127.0.0.1 only", name, p)
			}
		}
		if !published {
			t.Errorf("%s does not publish its admin port %s (ports %q)", name, adminPort, s.Ports)
		}
	}
}

// composeListens reads http.listen and admin.listen from the file a
// compose bridge mounts as its configuration, as the container sees them.
func composeListens(t *testing.T, top topology, name string) (httpListen, adminListen string) {
	t.Helper()
	s := top.file.Services[name]
	config := s.Command[slices.Index(s.Command, "--config")+1]
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || parts[1] != config {
			continue
		}
		data, err := os.ReadFile(parts[0])
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			HTTP  struct{ Listen string } `yaml:"http"`
			Admin struct{ Listen string } `yaml:"admin"`
		}
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			t.Fatalf("%s: %v", parts[0], err)
		}
		return cfg.HTTP.Listen, cfg.Admin.Listen
	}
	t.Fatalf("%s mounts no %s", name, config)
	return "", ""
}

// loopback gives each (service, container port) of the compose file a
// free port on 127.0.0.1 and rewrites addresses to them.
type loopback struct {
	services map[string]bool
	ports    map[string]int
}

func newLoopback(top topology) *loopback {
	l := &loopback{services: map[string]bool{}, ports: map[string]int{}}
	for name := range top.file.Services {
		l.services[name] = true
	}
	return l
}

// port returns the loopback port standing for service:containerPort.
func (l *loopback) port(t *testing.T, service string, containerPort int) int {
	t.Helper()
	key := fmt.Sprintf("%s:%d", service, containerPort)
	if p, ok := l.ports[key]; ok {
		return p
	}
	p, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	l.ports[key] = p
	return p
}

// hostPort matches host:port in configurations and URLs.
var hostPort = regexp.MustCompile(`([A-Za-z0-9.-]+):(\d+)\b`)

// rewrite replaces, in text seen by service self, every service:port with
// its loopback address and 0.0.0.0:port with self's own.
func (l *loopback) rewrite(t *testing.T, self, text string) string {
	return hostPort.ReplaceAllStringFunc(text, func(m string) string {
		parts := hostPort.FindStringSubmatch(m)
		host := parts[1]
		if host == "0.0.0.0" {
			host = self
		} else if !l.services[host] {
			return m
		}
		p, _ := strconv.Atoi(parts[2])
		return fmt.Sprintf("127.0.0.1:%d", l.port(t, host, p))
	})
}

// urlHost matches the host of a URL.
var urlHost = regexp.MustCompile(`://([A-Za-z0-9.-]+)`)

// interpolate resolves compose's ${VAR:-default} to its default.
var interpolation = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}`)

// startNATS starts a compose NATS service in this process: its command
// line parsed by nats-server's own flag parser, its addresses moved to
// loopback and its store to a temporary folder.
func startNATS(t *testing.T, l *loopback, name string, s composeService) *server.Server {
	t.Helper()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	nothing := func() {}
	opts, err := server.ConfigureOptions(fs, s.Command, nothing, nothing, nothing)
	if err != nil {
		t.Fatalf("%s: nats-server flags: %v", name, err)
	}
	if !opts.JetStream || opts.Cluster.Name == "" || len(opts.Routes) == 0 {
		t.Fatalf("%s: want JetStream in a named cluster with routes", name)
	}
	opts.Host = "127.0.0.1"
	opts.Port = l.port(t, name, opts.Port)
	opts.Cluster.Host = "127.0.0.1"
	opts.Cluster.Port = l.port(t, name, opts.Cluster.Port)
	for _, u := range opts.Routes {
		if !l.services[u.Hostname()] {
			t.Fatalf("%s: route %s names no service", name, u)
		}
		p, _ := strconv.Atoi(u.Port())
		u.Host = fmt.Sprintf("127.0.0.1:%d", l.port(t, u.Hostname(), p))
	}
	opts.StoreDir = filepath.Join(t.TempDir(), name)
	opts.HTTPPort = 0
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	return srv
}

// child is a process of the built binary, its output kept for failures.
type child struct {
	name string
	cmd  *exec.Cmd
	out  logbuf.Buffer
	done chan struct{}
}

// startChild runs binary with args and env; it is stopped (SIGTERM, then
// SIGKILL) when the test ends, and its output logged if the test failed.
func startChild(t *testing.T, name, binary string, args, env []string) *child {
	t.Helper()
	c := &child{name: name, cmd: exec.Command(binary, args...), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(15 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, c.out.String())
		}
	})
	return c
}

// kill ends the child at once, as a crash would.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill %s: %v", c.name, err)
	}
	<-c.done
}

// buildBinary builds cmd/presence-bridge into a temporary folder.
func buildBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH; it builds the bridge for this test")
	}
	bin := filepath.Join(t.TempDir(), "presence-bridge")
	cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/presence-bridge")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serviceArgs renders a service's command: each argument naming a file the
// service mounts is replaced by that file, rewritten for loopback (and its
// secrets moved to their host files), in a temporary folder.
func serviceArgs(t *testing.T, top topology, l *loopback, name string) []string {
	t.Helper()
	s := top.file.Services[name]
	mounts := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], "./") {
			mounts[parts[1]] = parts[0]
		}
	}
	dir := t.TempDir()
	args := slices.Clone(s.Command)
	for i, arg := range args {
		host, ok := mounts[arg]
		if !ok {
			continue
		}
		data, err := os.ReadFile(host)
		if err != nil {
			t.Fatalf("%s mounts %s: %v", name, host, err)
		}
		text := l.rewrite(t, name, string(data))
		for _, secret := range s.Secrets {
			file, ok := top.file.Secrets[secret]
			if !ok {
				t.Fatalf("%s uses secret %s, which compose.yaml does not define", name, secret)
			}
			abs, err := filepath.Abs(file.File)
			if err != nil {
				t.Fatal(err)
			}
			text = strings.ReplaceAll(text, "/run/secrets/"+secret, abs)
		}
		// Every address must name a service of the compose file; one
		// left pointing elsewhere is drift between the two.
		for _, m := range urlHost.FindAllStringSubmatch(text, -1) {
			if m[1] != "127.0.0.1" {
				t.Fatalf("%s: %s names %s, which is no service of compose.yaml", name, host, m[1])
			}
		}
		if strings.Contains(text, "/run/secrets/") {
			t.Fatalf("%s: %s reads a secret the service is not given", name, host)
		}
		args[i] = filepath.Join(dir, filepath.Base(arg))
		if err := os.WriteFile(args[i], []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return args
}

// serviceEnv is a service's environment with compose defaults applied.
func serviceEnv(s composeService) []string {
	var env []string
	for k, v := range s.Environment {
		env = append(env, k+"="+interpolation.ReplaceAllString(v, "$1"))
	}
	slices.Sort(env)
	return env
}

func get(rawURL string) (int, []byte, error) {
	resp, err := http.Get(rawURL)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// TestComposeTopology runs compose.yaml's services on loopback: the three
// NATS servers in this process from the module's nats-server, the Graph
// emulator and the two bridges as processes of the module's binary with the
// compose configurations. An event posted to one bridge reaches the
// emulator; with one bridge and one NATS server killed, events still do.
func TestComposeTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three NATS servers and three processes; skipped with -short")
	}
	top := readTopology(t)
	bin := buildBinary(t)
	l := newLoopback(top)

	servers := map[string]*server.Server{}
	for _, name := range top.nats {
		servers[name] = startNATS(t, l, name, top.file.Services[name])
	}
	testpoll.UntilOK(t, "NATS cluster", func() error {
		for name, srv := range servers {
			if !srv.ReadyForConnections(time.Second) {
				return fmt.Errorf("%s not ready", name)
			}
			if n := srv.NumRoutes(); n < len(servers)-1 {
				return fmt.Errorf("%s has %d routes", name, n)
			}
		}
		for _, srv := range servers {
			if srv.JetStreamIsLeader() {
				return nil
			}
		}
		return fmt.Errorf("no JetStream meta leader")
	})

	emArgs := serviceArgs(t, top, l, top.emulator)
	startChild(t, top.emulator, bin, emArgs, serviceEnv(top.file.Services[top.emulator]))
	emURL := "http://127.0.0.1:" + strconv.Itoa(l.port(t, top.emulator, 8081))

	// Each bridge's configuration must load as it is (environment and
	// secret files included) before it runs.
	var cfg *config.Config
	bridges := map[string]*child{}
	bridgeURL, adminURL := map[string]string{}, map[string]string{}
	for _, name := range top.bridges {
		s := top.file.Services[name]
		args := serviceArgs(t, top, l, name)
		env := serviceEnv(s)
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		var err error
		if cfg, err = config.Load(args[slices.Index(args, "--config")+1]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, port, err := net.SplitHostPort(cfg.HTTP.Listen)
		if err != nil {
			t.Fatal(err)
		}
		bridgeURL[name] = "http://127.0.0.1:" + port
		adminURL[name] = "http://" + cfg.Admin.Listen
		bridges[name] = startChild(t, name, bin, args, env)
	}
	for name, u := range bridgeURL {
		testpoll.UntilOK(t, name+" ready", func() error {
			code, body, err := get(u + "/readyz")
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("readyz %d: %s", code, body)
			}
			return err
		})
	}

	// Metrics are served on the admin port, not beside the webhooks.
	for name, u := range bridgeURL {
		if code, _, err := get(adminURL[name] + "/metrics"); err != nil || code != http.StatusOK {
			t.Errorf("%s: /metrics on admin.listen answers %d, %v", name, code, err)
		}
		if code, _, err := get(u + "/metrics"); err != nil || code != http.StatusNotFound {
			t.Errorf("%s: /metrics on http.listen answers %d, %v; want 404", name, code, err)
		}
	}

	// The image's HEALTHCHECK asks this of every bridge container.
	health := healthURL(t, readDockerfile(t)).Path
	for name, u := range bridgeURL {
		if code, _, err := get(u + health); err != nil || code != http.StatusOK {
			t.Errorf("%s answers %s with %d, %v", name, health, code, err)
		}
	}

	token := cfg.Sources[0].Token
	var keys []string
	for k := range cfg.Directory {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) < 2 {
		t.Fatalf("the compose bridge's directory has %d entries; the test needs two people", len(keys))
	}
	alice, bob := cfg.Directory[keys[0]], cfg.Directory[keys[1]]
	now := time.Now().UTC()

	post := func(bridgeName, id, user, state string, at time.Time) {
		t.Helper()
		body := fmt.Sprintf(`{"id":%q,"source":%q,"type":"call","user":%q,"occurredAt":%q,"callId":"c-%s","state":%q}`,
			id, cfg.Sources[0].Name, user, at.Format(time.RFC3339Nano), user, state)
		testpoll.UntilOK(t, "post "+id+" to "+bridgeName, func() error {
			return bridgetest.Post(http.DefaultClient, bridgeURL[bridgeName]+"/v1/events", token, body)
		})
	}
	presence := func(upn, want string) {
		t.Helper()
		testpoll.UntilOK(t, upn+" "+want, func() error {
			code, body, err := get(emURL + "/_emulator/presences/" + url.PathEscape(upn))
			if err != nil {
				return err
			}
			var p struct{ Availability, Activity string }
			if err := json.Unmarshal(body, &p); err != nil || code != http.StatusOK {
				return fmt.Errorf("status %d: %s", code, body)
			}
			if got := p.Availability + "/" + p.Activity; got != want {
				return fmt.Errorf("is %s", got)
			}
			return nil
		})
	}

	first, second := top.bridges[0], top.bridges[1]
	post(first, "deploy-1", keys[0], "active", now)
	presence(alice, "Busy/InACall")

	// A bridge and a NATS server crash; the other bridge and the two
	// remaining servers carry on.
	bridges[first].kill(t)
	servers[top.nats[0]].Shutdown()
	post(second, "deploy-2", keys[0], "ended", now.Add(time.Second))
	post(second, "deploy-3", keys[1], "active", now.Add(time.Second))
	presence(bob, "Busy/InACall")
	presence(alice, "Offline/Offline")

	// No secret the bridges were given shows in their logs.
	secrets := []string{cfg.Sources[0].Token, cfg.Admin.Token, cfg.Graph.Tenants[0].ClientSecret}
	for name, c := range bridges {
		out := c.out.String()
		if out == "" {
			t.Errorf("%s logged nothing", name)
		}
		for _, secret := range secrets {
			if secret != "" && strings.Contains(out, secret) {
				t.Errorf("%s logs a secret", name)
			}
		}
	}
}

// TestSystemdUnit: systemd accepts the unit, and its sandbox rates as
// well exposed as systemd-analyze's "OK" or better.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd)")
	}
	unit, err := os.ReadFile("presence-bridge.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify wants the programs to exist; any executable stands in.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "presence-bridge.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/presence-bridge"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, analyze, "verify", path).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, analyze, "security", "--offline=yes", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("exposure level %.1f, want at most 2.0:\n%s", level, out)
	}
}
