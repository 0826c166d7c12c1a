package deploy

import (
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// dockerfile is the part of the Dockerfile's final stage the tests read.
type dockerfile struct {
	copies      map[string]string // destination -> source, from the build context
	volumes     []string
	workdir     string
	expose      []string
	healthcheck []string
	cmd         []string
	labels      string
}

// readDockerfile parses ../Dockerfile's last stage: one instruction a
// line, continuations joined, JSON (exec) forms split into words.
func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	d := dockerfile{copies: map[string]string{}}
	execForm := regexp.MustCompile(`"([^"]*)"`)
	words := func(s string) []string {
		var out []string
		for _, m := range execForm.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1])
		}
		return out
	}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		rest := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), f[0]))
		switch strings.ToUpper(f[0]) {
		case "FROM":
			d = dockerfile{copies: map[string]string{}}
		case "COPY":
			if len(f) == 3 {
				d.copies[f[2]] = f[1]
			}
		case "VOLUME":
			d.volumes = append(d.volumes, words(rest)...)
		case "WORKDIR":
			d.workdir = rest
		case "EXPOSE":
			d.expose = append(d.expose, f[1:]...)
		case "HEALTHCHECK":
			d.healthcheck = words(rest)
		case "CMD":
			d.cmd = words(rest)
		case "LABEL":
			d.labels += rest + " "
		}
	}
	return d
}

// loadProduction loads config.production.yaml as the image would, with
// its secret file moved to a temporary one and its environment set.
func loadProduction(t *testing.T) (*config.Config, string) {
	t.Helper()
	data, err := os.ReadFile("config.production.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	dir := t.TempDir()
	for _, m := range regexp.MustCompile(`/run/secrets/([a-z_]+)`).FindAllStringSubmatch(text, -1) {
		if err := os.WriteFile(filepath.Join(dir, m[1]), []byte("file-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	text = strings.ReplaceAll(text, "/run/secrets/", dir+"/")
	for _, m := range regexp.MustCompile(`_env: ([A-Z_]+)`).FindAllStringSubmatch(text, -1) {
		t.Setenv(m[1], "env-secret-"+strings.ToLower(m[1]))
	}
	cfg, err := config.Parse([]byte(text), dir)
	if err != nil {
		t.Fatalf("config.production.yaml: %v", err)
	}
	return cfg, string(data)
}

// TestProductionConfig: the production configuration loads, listens on
// every interface, runs no emulator, uses an external NATS cluster with
// three copies, and writes no secret inline.
func TestProductionConfig(t *testing.T) {
	cfg, raw := loadProduction(t)
	if host, _, _ := net.SplitHostPort(cfg.HTTP.Listen); host != "0.0.0.0" {
		t.Errorf("http.listen %s, want 0.0.0.0", cfg.HTTP.Listen)
	}
	if cfg.Graph.Emulator.Enabled {
		t.Error("the emulator is on")
	}
	if cfg.NATS.Embedded || len(cfg.NATS.URLs) < 3 || cfg.NATS.Replicas != 3 {
		t.Errorf("nats: embedded %v, %d urls, %d replicas; want an external cluster of three with three replicas",
			cfg.NATS.Embedded, len(cfg.NATS.URLs), cfg.NATS.Replicas)
	}
	for _, tenant := range cfg.Graph.Tenants {
		if tenant.GraphURL != "" || tenant.LoginURL != "" {
			t.Errorf("tenant %s does not talk to the real Graph", tenant.ID)
		}
		if tenant.ClientSecret != "file-secret" && tenant.ClientCertificate == "" {
			t.Errorf("tenant %s: the client secret does not come from its file", tenant.ID)
		}
	}
	for _, s := range cfg.Sources {
		if !strings.HasPrefix(s.Token, "env-secret-") && !strings.HasPrefix(s.Secret, "env-secret-") && s.Token+s.Secret != "file-secret" {
			t.Errorf("source %s: its credential is not from a file or the environment", s.Name)
		}
	}
	if !strings.HasPrefix(cfg.Admin.Token, "env-secret-") {
		t.Error("admin.token is not from the environment")
	}
	// The operations surface (metrics, admin API, status page) is kept
	// off the public listener.
	_, httpPort, _ := net.SplitHostPort(cfg.HTTP.Listen)
	if _, adminPort, err := net.SplitHostPort(cfg.Admin.Listen); err != nil || adminPort == httpPort {
		t.Errorf("admin.listen %q: want a port of its own, not http.listen's %s", cfg.Admin.Listen, httpPort)
	}
	inline := regexp.MustCompile(`(?m)^\s*-?\s*(client_secret|client_certificate|token|secret|password):`)
	if m := inline.FindString(raw); m != "" {
		t.Errorf("an inline secret: %q", strings.TrimSpace(m))
	}
}

// TestDockerfile: the image runs the production configuration, keeps the
// embedded JetStream store on a volume, checks the port the configuration
// listens on, and labels itself with the version.
func TestDockerfile(t *testing.T) {
	d := readDockerfile(t)
	cfg, _ := loadProduction(t)
	i := slices.Index(d.cmd, "--config")
	if i < 0 || i+1 >= len(d.cmd) {
		t.Fatalf("CMD %q names no --config", d.cmd)
	}
	if src := d.copies[d.cmd[i+1]]; src != "deploy/config.production.yaml" {
		t.Errorf("CMD reads %s, copied from %q; want deploy/config.production.yaml", d.cmd[i+1], src)
	}
	// The embedded server's default store (relative to the working
	// directory) must land on the volume.
	store := filepath.Join(d.workdir, config.Default().NATS.StoreDir)
	if !slices.ContainsFunc(d.volumes, func(v string) bool { return strings.HasPrefix(store, strings.TrimSuffix(v, "/")+"/") }) {
		t.Errorf("the JetStream store %s is on no VOLUME (%q)", store, d.volumes)
	}
	_, port, _ := net.SplitHostPort(cfg.HTTP.Listen)
	if !slices.Contains(d.expose, port) {
		t.Errorf("EXPOSE %q, the configuration listens on %s", d.expose, port)
	}
	_, adminPort, _ := net.SplitHostPort(cfg.Admin.Listen)
	if !slices.Contains(d.expose, adminPort) {
		t.Errorf("EXPOSE %q, the configuration serves the admin side on %s", d.expose, adminPort)
	}
	sip := sipListenPort(t)
	for _, p := range []string{sip + "/udp", sip + "/tcp"} {
		if !slices.Contains(d.expose, p) {
			t.Errorf("EXPOSE %q lacks %s, the sipdialog listen port of config.example.yaml", d.expose, p)
		}
	}
	u := healthURL(t, d)
	if u.Port() != port || u.Path != "/healthz" {
		t.Errorf("HEALTHCHECK asks %s; want /healthz on port %s", u, port)
	}
	for _, label := range []string{`org.opencontainers.image.version="${VERSION}"`, `org.opencontainers.image.revision="${REVISION}"`} {
		if !strings.Contains(d.labels, label) {
			t.Errorf("no label %s", label)
		}
	}
}

// healthURL is the URL the Dockerfile's HEALTHCHECK asks.
func healthURL(t *testing.T, d dockerfile) *url.URL {
	t.Helper()
	for _, w := range d.healthcheck {
		if strings.HasPrefix(w, "http://") {
			u, err := url.Parse(w)
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
	}
	t.Fatalf("HEALTHCHECK %q asks no URL", d.healthcheck)
	return nil
}

// sipListenPort is the port of the sipdialog example's listen address in
// config.example.yaml (a commented-out source).
func sipListenPort(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(data), "#   type: sipdialog")
	m := regexp.MustCompile(`#\s+listen: [0-9.]*:(\d+)`).FindStringSubmatch(block)
	if !ok || m == nil {
		t.Fatal("config.example.yaml shows no sipdialog source with a listen address")
	}
	return m[1]
}

// TestImageStampsVersion: the image's build stamps both the version and
// the revision into the values --version prints and build_info reports;
// a binary built with the Dockerfile's -ldflags prints both.
func TestImageStampsVersion(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`-ldflags="([^"]*)"`).FindSubmatch(data)
	if m == nil {
		t.Fatal("the Dockerfile's go build has no -ldflags")
	}
	flags := strings.NewReplacer("${VERSION}", "v0.9.1-image", "${REVISION}", "feedc0ffee12").Replace(string(m[1]))
	for _, want := range []string{"-X main.version=v0.9.1-image", "-X main.revision=feedc0ffee12"} {
		if !strings.Contains(flags, want) {
			t.Fatalf("the Dockerfile's -ldflags %q do not stamp %s", m[1], want)
		}
	}
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	bin := filepath.Join(t.TempDir(), "presence-bridge")
	build := exec.Command(goTool, "build", "-ldflags="+flags, "-o", bin, "./cmd/presence-bridge")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "presence-bridge v0.9.1-image (revision feedc0ffee12, ") {
		t.Errorf("--version of the image's build: %q, %v", out, err)
	}
}
