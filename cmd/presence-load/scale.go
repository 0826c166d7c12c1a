package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/presence-bridge/presence-bridge/internal/freeport"

	"gopkg.in/yaml.v3"
)

// scaleOptions configure the scale run (issue 23).
type scaleOptions struct {
	bridge    string // the presence-bridge binary, also run as the emulator
	config    string // the bench configuration template
	users     int
	conns     int
	quiet     time.Duration // how long the restarted bridge runs without traffic
	settle    time.Duration // the pause before each memory reading
	applyWait time.Duration
	revision  string
}

// scaleReading is the bridge process at one point of the run: its RSS
// and CPU time from /proc, and from its metrics the Go heap's spans in
// use (go_memstats_heap_inuse_bytes) and the bytes of the objects in them
// (go_memstats_heap_alloc_bytes: live, and garbage not yet collected).
type scaleReading struct {
	name                string
	rss, peak           uint64 // bytes; peak: the process's highest RSS so far (VmHWM)
	cpu                 time.Duration
	heapInuse, heapUsed float64 // bytes
}

// runScale runs issue 23's scale benchmark: the emulator as a process of
// its own with o.users people, the bridge (embedded NATS, write and
// lookup budgets raised) as another; everyone's call started with one
// event a person, then ended, then the bridge restarted on the same store
// and left without traffic for o.quiet. It prints the bridge's RSS at each
// point (and again o.quiet later, once the runtime has given back what
// the burst took), bytes per person, the JetStream store's size, the time to apply
// and to converge, CPU per 1,000 events and the Graph calls after the
// restart.
func runScale(ctx context.Context, o scaleOptions, stdout io.Writer) (bool, error) {
	dir, err := os.MkdirTemp("", "presence-load-scale-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(stdout, "presence-load scale: %d people, %s, built from %s\n", o.users, time.Now().UTC().Format(time.RFC3339), o.revision)

	emPort, err := freeport.Port()
	if err != nil {
		return false, err
	}
	emBase := "http://127.0.0.1:" + strconv.Itoa(emPort)
	emDir := filepath.Join(dir, "emulator")
	if err := os.Mkdir(emDir, 0o700); err != nil {
		return false, err
	}
	bridgeCfg, emCfg, err := scaleConfigs(o.config, emBase, filepath.Join(dir, "nats"), o.users)
	if err != nil {
		return false, err
	}
	if err := os.WriteFile(filepath.Join(emDir, "emulator.yaml"), emCfg, 0o600); err != nil {
		return false, err
	}
	em, err := startChild(ctx, emDir, o.bridge, "emulator", "--config", filepath.Join(emDir, "emulator.yaml"))
	if err != nil {
		return false, err
	}
	defer em.stop()
	if err := em.waitReady(ctx, emBase+"/_emulator/presences/none"); err != nil {
		return false, fmt.Errorf("emulator: %w\n%s", err, em.tail())
	}

	port, err := freeport.Port()
	if err != nil {
		return false, err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	var cfg map[string]any
	if err := yaml.Unmarshal(bridgeCfg, &cfg); err != nil {
		return false, err
	}
	cfg["http"].(map[string]any)["listen"] = "127.0.0.1:" + strconv.Itoa(port)
	bridgeCfg, err = yaml.Marshal(cfg)
	if err != nil {
		return false, err
	}
	runDir := filepath.Join(dir, "bridge")
	if err := os.Mkdir(runDir, 0o700); err != nil {
		return false, err
	}
	cfgPath := filepath.Join(runDir, "bridge.yaml")
	if err := os.WriteFile(cfgPath, bridgeCfg, 0o600); err != nil {
		return false, err
	}
	start := func() (*child, time.Duration, error) {
		started := time.Now()
		c, err := startChild(ctx, runDir, o.bridge, "run", "--config", cfgPath)
		if err != nil {
			return nil, 0, err
		}
		if err := c.waitReady(ctx, base+"/readyz"); err != nil {
			c.stop()
			return nil, 0, fmt.Errorf("bridge: %w\n%s", err, c.tail())
		}
		return c, time.Since(started), nil
	}
	c, ready, err := start()
	if err != nil {
		return false, err
	}
	defer func() { c.stop() }()
	pause := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d): // real time must pass: the bridge settles
			return nil
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	read := func(name string) (scaleReading, error) {
		if err := pause(o.settle); err != nil {
			return scaleReading{}, err
		}
		rss, cpu, err := procUsage(c.cmd.Process.Pid)
		if err != nil {
			return scaleReading{}, err
		}
		peak, err := procStatus(c.cmd.Process.Pid, "VmHWM:")
		if err != nil {
			return scaleReading{}, err
		}
		body, err := get(ctx, client, base+"/metrics")
		if err != nil {
			return scaleReading{}, err
		}
		inuse, err := sumByLabel(body, "go_memstats_heap_inuse_bytes", "")
		if err != nil {
			return scaleReading{}, err
		}
		used, err := sumByLabel(body, "go_memstats_heap_alloc_bytes", "")
		return scaleReading{name, rss, peak, cpu, inuse[""], used[""]}, err
	}
	idle, err := read("idle, no one known")
	if err != nil {
		return false, err
	}
	calls := "scale" + strconv.FormatInt(time.Now().UnixNano(), 36)
	type phase struct {
		name            string
		applied, graph  time.Duration
		cpuPer1000      time.Duration
		accepted        int64
		rejected, fails int64
	}
	var phases []phase
	var readings = []scaleReading{idle}
	for i, state := range []string{"active", "ended"} {
		before, err := read("")
		if err != nil {
			return false, err
		}
		load := postOptions{url: base + "/v1/events", token: benchToken, source: "bench", domain: "contoso.example",
			duration: time.Hour, conns: o.conns, users: o.users, metrics: base + "/metrics", applyWait: o.applyWait,
			total: int64(o.users), state: state, calls: calls}
		posted := time.Now()
		r, err := post(ctx, load)
		if err != nil {
			return false, fmt.Errorf("post %s: %w\n%s", state, err, c.tail())
		}
		if _, err := waitGraphLatency(ctx, client, base+"/metrics", int64(i+1)*r.accepted, o.applyWait); err != nil {
			return false, fmt.Errorf("%s: %w\n%s", state, err, c.tail())
		}
		converged := time.Since(posted)
		_, cpu, err := procUsage(c.cmd.Process.Pid)
		if err != nil {
			return false, err
		}
		phases = append(phases, phase{name: "call " + state, applied: r.done, graph: converged,
			cpuPer1000: time.Duration(float64(cpu-before.cpu) / float64(max(r.accepted, 1)) * 1000), accepted: r.accepted,
			rejected: r.rejected, fails: r.errors})
		name := "everyone in a call"
		if state == "ended" {
			name = "every call ended"
		}
		reading, err := read(name)
		if err != nil {
			return false, err
		}
		if err := pause(o.quiet); err != nil {
			return false, err
		}
		later, err := read(fmt.Sprintf("%s, %s later", name, o.quiet))
		if err != nil {
			return false, err
		}
		readings = append(readings, reading, later)
	}
	storeSize := dirSize(filepath.Join(dir, "nats"))

	c.stop()
	c, restartReady, err := start()
	if err != nil {
		return false, err
	}
	restarted, err := read("restarted, at ready")
	if err != nil {
		return false, err
	}
	if err := pause(o.quiet); err != nil {
		return false, err
	}
	quiet, err := read(fmt.Sprintf("restarted, %s without traffic", o.quiet))
	if err != nil {
		return false, err
	}
	graphCalls, err := graphWrites(ctx, client, base+"/metrics")
	if err != nil {
		return false, err
	}
	readings = append(readings, restarted, quiet)

	fmt.Fprintf(stdout, "ready after %s; after the restart ready after %s\n", ready.Round(time.Millisecond), restartReady.Round(time.Millisecond))
	fmt.Fprintf(stdout, "\n%-40s %10s %16s %12s %10s %14s %14s\n", "bridge", "RSS MB", "above idle/person", "peak RSS MB", "CPU s", "heap in use MB", "heap alloc MB")
	for _, r := range readings {
		fmt.Fprintf(stdout, "%-40s %10.1f %15.0f B %12.1f %10.1f %14.1f %14.1f\n", r.name, float64(r.rss)/(1<<20),
			(float64(r.rss)-float64(idle.rss))/float64(o.users), float64(r.peak)/(1<<20), r.cpu.Seconds(), r.heapInuse/(1<<20), r.heapUsed/(1<<20))
	}
	fmt.Fprintf(stdout, "\n%-20s %9s %9s %9s %14s %14s %16s\n", "phase", "accepted", "other", "errors", "all applied", "all answered", "CPU/1,000 events")
	ok := true
	for _, p := range phases {
		fmt.Fprintf(stdout, "%-20s %9d %9d %9d %13.1fs %13.1fs %15.2fs\n", p.name, p.accepted, p.rejected, p.fails,
			p.applied.Seconds(), p.graph.Seconds(), p.cpuPer1000.Seconds())
		ok = ok && p.accepted == int64(o.users)
	}
	fmt.Fprintf(stdout, "\nJetStream store after both phases: %.1f MB (%.0f B per person)\n", float64(storeSize)/(1<<20), float64(storeSize)/float64(o.users))
	fmt.Fprintf(stdout, "Graph presence calls in the %s after the restart: %.0f\n", o.quiet, graphCalls)
	fmt.Fprintf(stdout, "(RSS of the bridge process alone, read from /proc after %s of rest; the emulator is a process of its own)\n", o.settle)
	return ok && graphCalls == 0, nil
}

// scaleConfigs returns the bridge's configuration, from the bench
// template, reaching the emulator at emBase with its write and lookup
// budgets raised so that the bridge itself is measured, and the
// emulator's own configuration with users people and its write
// throttle raised to match.
func scaleConfigs(path, emBase, storeDir string, users int) (bridgeCfg, emCfg []byte, err error) {
	data, err := benchConfig(path, 0, storeDir, users, 1, false, "")
	if err != nil {
		return nil, nil, err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return nil, nil, err
	}
	graphCfg := cfg["graph"].(map[string]any)
	em := graphCfg["emulator"].(map[string]any)
	delete(graphCfg, "emulator")
	em["enabled"] = false
	em["listen"] = strings.TrimPrefix(emBase, "http://")
	em["throttle"] = map[string]any{"limit": 100 * users, "window": "30s"}
	tenants, _ := graphCfg["tenants"].([]any)
	if len(tenants) != 1 {
		return nil, nil, fmt.Errorf("%s: graph.tenants must list one tenant", path)
	}
	tenant := tenants[0].(map[string]any)
	tenant["graph_url"] = emBase + "/v1.0"
	tenant["login_url"] = emBase
	tenant["budget"] = 50 * users
	tenant["budget_window"] = "30s"
	tenant["lookup_budget"] = min(users, 100000)
	delete(em, "enabled")
	if bridgeCfg, err = yaml.Marshal(cfg); err != nil {
		return nil, nil, err
	}
	emCfg, err = yaml.Marshal(em)
	return bridgeCfg, emCfg, err
}

// graphWrites sums presence_bridge_graph_requests_total but for the token
// endpoint: the Graph calls the bridge made since it started.
func graphWrites(ctx context.Context, client *http.Client, url string) (float64, error) {
	by, err := graphRequests(ctx, client, url)
	n := 0.0
	for op, v := range by {
		if op != "token" {
			n += v
		}
	}
	return n, err
}

// graphRequests returns presence_bridge_graph_requests_total by operation:
// the Graph requests the bridge made since it started.
func graphRequests(ctx context.Context, client *http.Client, url string) (map[string]float64, error) {
	body, err := get(ctx, client, url)
	if err != nil {
		return nil, err
	}
	return sumByLabel(body, "presence_bridge_graph_requests_total", "operation")
}

// procUsage reads a process's resident set size and the CPU time it used
// (user and system) from /proc.
func procUsage(pid int) (rss uint64, cpu time.Duration, err error) {
	rss, err = procStatus(pid, "VmRSS:")
	if err != nil {
		return 0, 0, err
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read process stat: %w", err)
	}
	// The fields after the command's closing parenthesis: utime and
	// stime are the 12th and 13th, in clock ticks of 1/100 s on Linux.
	_, rest, ok := strings.Cut(string(stat), ") ")
	fields := strings.Fields(rest)
	if !ok || len(fields) < 13 {
		return 0, 0, errors.New("unexpected /proc stat line")
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return rss, time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// procStatus reads one field in kB of a process's /proc status (VmRSS:,
// VmHWM: the peak RSS), in bytes.
func procStatus(pid int, field string) (uint64, error) {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read process status: %w", err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024, nil
		}
	}
	return 0, nil
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
