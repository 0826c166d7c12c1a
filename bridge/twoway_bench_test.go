package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/graphclient/graphlimits"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs/cloudevent"
)

// The benchmarks of the Teams watch (issue 21): each runs a whole bridge
// with embedded NATS and the Graph emulator, reached over loopback
// through the production Graph client, with Graph's read budget and the
// emulator's read throttle at their defaults. They take tens of seconds
// each: run them with -benchtime=1x (make bench-watch).

// watchUser is the object id of the i-th watched person.
func watchUser(i int) string { return fmt.Sprintf("3a7c0000-0000-4000-8000-%012d", i) }

// watchConfig is a bridge watching every member (`users: all`) of the
// test tenant, whose emulator holds n people, at `interval: 2s` with the
// default read budget, publishing every change to a NATS output, with
// the lookup API on.
func watchConfig(b *testing.B, n int) string {
	var users strings.Builder
	for i := range n {
		users.WriteString(bridgetest.User(watchUser(i), fmt.Sprintf("w%d@contoso.example", i)))
	}
	return bridgetest.Header + fmt.Sprintf("nats: {embedded: true, store_dir: %q}\n", b.TempDir()) +
		"graph:\n" + bridgetest.Tenants() + bridgetest.Emulator(users.String()) + `sources:
  - {name: demo, type: generic, token: demo-token}
watch: {enabled: true, interval: 2s, users: all}
lookup: {token: lookup-token}
outputs:
  - {name: bus, type: nats, skip_sources: []}
`
}

// percentile is the p-th percentile (0 to 1) of sorted durations, in
// milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(p*float64(len(sorted)-1))].Microseconds()) / 1000
}

// arrivals follows the CloudEvents on presence.teams.>: how many came,
// and for each person with a change under way, how long after the
// change its message came.
type arrivals struct {
	mu        sync.Mutex
	count     int
	pending   map[string]time.Time // person -> when their change was made
	latencies []time.Duration
	unmatched int // messages with no change under way (after the first sightings)
	bad       int // messages that are no CloudEvent of a change
}

func (a *arrivals) take(m *nats.Msg) {
	at := time.Now()
	c, err := cloudevent.Decode(m.Data)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.count++
	if err != nil {
		a.bad++
		return
	}
	if a.pending == nil {
		return // the first sightings
	}
	made, ok := a.pending[c.View.ID]
	if !ok {
		a.unmatched++
		return
	}
	delete(a.pending, c.View.ID)
	a.latencies = append(a.latencies, at.Sub(made))
}

func (a *arrivals) messages() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.count
}

// BenchmarkWatchChangeToNATS: 10,000 people watched at `interval: 2s`
// with the default read budget (1,000 per 30 s; the emulator throttles
// at Graph's 1,500 per 30 s); after the first sighting of everyone, 100
// Teams changes per second are made in the emulator (SetTeamsSession,
// each a different person) for watchChangeSeconds. It reports the time
// from a change in the emulator to its CloudEvent on a core NATS
// subscription to presence.teams.> (p50, p99), the most read requests
// the emulator counted in one of its 30 s windows, its 429s, and the
// watcher's last cycle. It fails if a change never arrives, or on a 429.
func BenchmarkWatchChangeToNATS(b *testing.B) {
	const people, perSecond = 10_000, 100
	seconds := watchChangeSeconds
	br := startBridge(b, watchConfig(b, people))
	em := br.Emulator()
	var got arrivals
	sub, err := br.Queue().JetStream().Conn().Subscribe("presence.teams.>", got.take)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, -1)
	testpoll.Within(b, 5*time.Minute, "the first sighting of everyone on the bus", func() bool { return got.messages() >= people })
	got.mu.Lock()
	first := got.count
	got.pending = map[string]time.Time{}
	got.mu.Unlock()

	b.ResetTimer()
	changes := 0
	for run := range b.N {
		changes += paceTeamsChanges(b, em, run*seconds*perSecond, seconds, perSecond, people, func(who int, _ bool) {
			got.mu.Lock()
			got.pending[watchUser(who)] = time.Now()
			got.mu.Unlock()
		})
		testpoll.Within(b, 30*time.Second, "every change on the bus", func() bool {
			got.mu.Lock()
			defer got.mu.Unlock()
			return len(got.pending) == 0
		})
	}
	b.StopTimer()

	got.mu.Lock()
	lat := slices.Clone(got.latencies)
	unmatched, bad := got.unmatched, got.bad
	got.mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.50), "p50-ms")
	b.ReportMetric(percentile(lat, 0.99), "p99-ms")
	b.ReportMetric(percentile(lat, 1), "max-ms")
	b.ReportMetric(float64(changes), "changes")
	maxWindow, throttled := 0, 0
	for _, w := range em.ReadWindows() {
		b.Logf("read window %s +30s: %d requests, %d throttled", w.Start.Format("15:04:05.000"), w.Requests, w.Throttled)
		maxWindow = max(maxWindow, w.Requests)
		throttled += w.Throttled
	}
	b.ReportMetric(float64(maxWindow), "max-reads/30s")
	b.ReportMetric(float64(throttled), "429s")
	for _, s := range br.WatchStatus() {
		b.ReportMetric(s.LastCycleSeconds, "last-cycle-s")
		b.Logf("watch %s: people %d, planned cycle %.2fs, last cycle %.2fs, stretched %v, reads %v, changes %v",
			s.Tenant, s.People, s.CycleSeconds, s.LastCycleSeconds, s.Stretched, s.Reads, s.Changes)
	}
	b.Logf("first sightings %d; changes %d, arrived %d, unmatched messages %d, undecodable %d", first, changes, len(lat), unmatched, bad)
	if throttled > 0 || bad > 0 {
		b.Errorf("%d reads throttled (want none), %d messages undecodable", throttled, bad)
	}
}

// watchChangeSeconds is how long BenchmarkWatchChangeToNATS makes
// changes, per iteration; PB_WATCH_SECONDS overrides it.
var watchChangeSeconds = func() int {
	if n, err := strconv.Atoi(os.Getenv("PB_WATCH_SECONDS")); err == nil && n > 0 {
		return n
	}
	return 30
}()

// memory is what this process holds: the Go heap and stacks in use after
// a collection (and the live objects alone), and the resident set size
// (Linux; 0 elsewhere) after the freed memory was returned to the system.
type memory struct{ heap, live, rss uint64 }

func measure() memory {
	debug.FreeOSMemory() // collects, then returns what is free
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memory{heap: m.HeapInuse + m.StackInuse, live: m.HeapAlloc, rss: rssOf("/proc/self/status")}
}

// rssOf reads VmRSS from a /proc/<pid>/status file, in bytes.
func rssOf(path string) uint64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// manyTenants is an emulator of tenants t0.example ... with perTenant
// people each, the test application in each, started on loopback.
func manyTenants(tb testing.TB, tenants, perTenant int) *emulator.Emulator {
	cfg := emulator.Config{Listen: "127.0.0.1:0"}
	for t := range tenants {
		tc := emulator.Tenant{ID: fmt.Sprintf("t%d.example", t), Apps: []emulator.App{{
			ClientID: bridgetest.ClientID, ClientSecret: bridgetest.ClientSecret,
			Roles: []string{"Presence.ReadWrite.All", "Presence.Read.All", "User.Read.All"},
		}}}
		for i := range perTenant {
			tc.Users = append(tc.Users, emulator.User{ID: watchUser(t*perTenant + i), UserPrincipalName: fmt.Sprintf("w%d@t%d.example", i, t)})
		}
		cfg.Tenants = append(cfg.Tenants, tc)
	}
	cfg.SetDefaults()
	em, err := emulator.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := em.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = em.Close() })
	return em
}

// emulatorProcessEnv makes the test binary serve the emulator of
// manyTenants in TestEmulatorProcess: its value is "<tenants>x<per tenant>".
const emulatorProcessEnv = "PB_EMULATOR_PROCESS"

// TestEmulatorProcess is not a test: BenchmarkWatchMemory runs the test
// binary again with emulatorProcessEnv set, to serve the emulator in a
// process of its own, so that the benchmark's process holds the bridge
// alone. It prints the emulator's addresses, serves until its standard
// input closes, then prints the emulator's read windows.
func TestEmulatorProcess(t *testing.T) {
	var tenants, perTenant int
	if _, err := fmt.Sscanf(os.Getenv(emulatorProcessEnv), "%dx%d", &tenants, &perTenant); err != nil {
		t.Skip("the emulator process of BenchmarkWatchMemory; run only by it")
	}
	em := manyTenants(t, tenants, perTenant)
	fmt.Printf("emulator %s %s\n", em.GraphURL(), em.LoginURL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	windows, err := json.Marshal(em.ReadWindows())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("windows %s\n", windows)
}

// emulatorProcess is the emulator served by TestEmulatorProcess in a
// child process.
type emulatorProcess struct {
	cmd          *exec.Cmd
	stdin        io.WriteCloser
	out          *bufio.Scanner
	graph, login string
}

// startEmulatorProcess runs the test binary as manyTenants' emulator.
func startEmulatorProcess(b *testing.B, tenants, perTenant int) *emulatorProcess {
	cmd := exec.Command(os.Args[0], "-test.run=^TestEmulatorProcess$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%dx%d", emulatorProcessEnv, tenants, perTenant))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &emulatorProcess{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	p.out.Buffer(nil, 16<<20)
	for p.out.Scan() {
		if _, err := fmt.Sscanf(p.out.Text(), "emulator %s %s", &p.graph, &p.login); err == nil {
			return p
		}
	}
	b.Fatalf("the emulator process printed no addresses: %v", p.out.Err())
	return nil
}

// rss is the emulator process's resident set size.
func (p *emulatorProcess) rss() uint64 {
	return rssOf(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
}

// stop ends the emulator process and returns its read windows.
func (p *emulatorProcess) stop(b *testing.B) []emulator.ThrottleWindow {
	_ = p.stdin.Close()
	var windows []emulator.ThrottleWindow
	for p.out.Scan() {
		if rest, ok := strings.CutPrefix(p.out.Text(), "windows "); ok {
			if err := json.Unmarshal([]byte(rest), &windows); err != nil {
				b.Fatalf("the emulator's read windows: %v", err)
			}
		}
	}
	if err := p.cmd.Wait(); err != nil {
		b.Errorf("the emulator process: %v", err)
	}
	return windows
}

// manyTenantsConfig is a bridge of the tenants of manyTenants, reached
// at graphURL and loginURL, watching everyone (`users: all`, `interval:
// 2s`, the default read budget) when watching, with a NATS output.
func manyTenantsConfig(b *testing.B, graphURL, loginURL string, tenants int, watching bool) string {
	var ts strings.Builder
	ts.WriteString("graph:\n  tenants:\n")
	for t := range tenants {
		fmt.Fprintf(&ts, "    - {id: t%d.example, client_id: %s, client_secret: %s, graph_url: %q, login_url: %q}\n",
			t, bridgetest.ClientID, bridgetest.ClientSecret, graphURL, loginURL)
	}
	return bridgetest.Header + fmt.Sprintf("nats: {embedded: true, store_dir: %q}\n", b.TempDir()) + ts.String() + `sources:
  - {name: demo, type: generic, token: demo-token, tenant: t0.example}
` + fmt.Sprintf("watch: {enabled: %v, interval: 2s, users: all}\n", watching) + `outputs:
  - {name: bus, type: nats, skip_sources: []}
`
}

// runBridge starts a bridge from yaml; the caller stops it.
func runBridge(b *testing.B, yaml string) *bridge.Bridge {
	br, err := bridge.New(bridgetest.Parse(b, yaml), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	testpoll.Until(b, "the bridge to be ready", func() bool { return br.Ready(context.Background()) == nil })
	return br
}

func stopBridge(b *testing.B, br *bridge.Bridge) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := br.Stop(ctx); err != nil {
		b.Errorf("stop: %v", err)
	}
}

// BenchmarkWatchMemory: 100,000 people across 10 tenants (10,000 each;
// PB_WATCH_PER_TENANT changes that),
// every one watched at `interval: 2s` with the default read budget, and
// published to a NATS output (embedded NATS, in the bridge's process).
// The emulator runs in a process of its own (TestEmulatorProcess), so
// this process holds the bridge, its embedded NATS server and the
// benchmark alone. It reports the watchers' cycle time and the memory
// the watch adds: this process's RSS and its Go heap and stacks in use
// (after a collection that returns free memory to the system), once
// everyone has been seen and published and three more cycles have run,
// minus the same with an idle bridge (the same configuration,
// watch.enabled false). It measures the watching bridge twice: just
// after the burst of first sightings (three cycles on), and settled,
// once the NATS file store's two-minute subject state of that burst
// has expired (settle after the first sightings). With PB_HEAP_PROFILE=<file> it
// writes the heap's profile there, and the settled one to <file>.settled.
func BenchmarkWatchMemory(b *testing.B) {
	const tenants = 10
	perTenant := watchMemoryPerTenant
	em := startEmulatorProcess(b, tenants, perTenant)
	for range b.N {
		base := measure()

		idle := runBridge(b, manyTenantsConfig(b, em.graph, em.login, tenants, false))
		idleMem := measure()
		stopBridge(b, idle)

		br := runBridge(b, manyTenantsConfig(b, em.graph, em.login, tenants, true))
		started := time.Now()
		handed := func() int {
			n := 0
			for _, s := range br.WatchStatus() {
				for _, c := range s.Changes {
					n += int(c)
				}
			}
			return n
		}
		testpoll.Within(b, 10*time.Minute, "the first sighting of everyone", func() bool { return handed() >= tenants*perTenant })
		stream, err := br.Queue().JetStream().Stream(context.Background(), "PRESENCE_TEAMS")
		if err != nil {
			b.Fatal(err)
		}
		testpoll.Within(b, 20*time.Minute, "everyone in the stream", func() bool {
			info, err := stream.Info(context.Background())
			return err == nil && info.State.Msgs >= uint64(tenants*perTenant)
		})
		firstSeen := time.Since(started)
		// Measure once every watcher has read everyone three more times
		// since the first sightings (a cycle is one request per 650).
		okReads := func() map[string]uint64 {
			reads := map[string]uint64{}
			for _, s := range br.WatchStatus() {
				reads[s.Tenant] = s.Reads["ok"]
			}
			return reads
		}
		before := okReads()
		perCycle := uint64((perTenant + graphlimits.MaxIDsPerLookup - 1) / graphlimits.MaxIDsPerLookup)
		testpoll.Within(b, 10*time.Minute, "three more whole cycles of every watcher", func() bool {
			now := okReads()
			for tenant, n := range before {
				if now[tenant] < n+3*perCycle {
					return false
				}
			}
			return len(before) == tenants
		})
		watching := measure()
		if path := os.Getenv("PB_HEAP_PROFILE"); path != "" {
			writeHeapProfile(b, path)
		}
		// Again once the file store's per-block subject state of the
		// first sightings' burst has expired (2 min): the steady figure,
		// beside the one just after the burst. The stream's message ids
		// stay for its duplicate window (two minutes by default), so the
		// settled figure is without those of the burst.
		if wait := time.Until(started.Add(firstSeen + settle)); wait > 0 {
			time.Sleep(wait) // real time must pass: the server expires them by its clock
		}
		settled := measure()
		if path := os.Getenv("PB_HEAP_PROFILE"); path != "" {
			writeHeapProfile(b, path+".settled")
		}
		emRSS := em.rss()
		b.Logf("this process (bridge and benchmark): heap+stacks in use %.1f MB before a bridge, %.1f MB with the idle bridge, %.1f MB with the watching bridge; RSS %.1f, %.1f, %.1f MB; the emulator process's RSS %.1f MB",
			mb(int64(base.heap)), mb(int64(idleMem.heap)), mb(int64(watching.heap)), mb(int64(base.rss)), mb(int64(idleMem.rss)), mb(int64(watching.rss)), mb(int64(emRSS)))
		var cycles []float64
		for _, s := range br.WatchStatus() {
			cycles = append(cycles, s.LastCycleSeconds)
			b.Logf("watch %s: people %d, planned cycle %.2fs, last cycle %.2fs, stretched %v, reads %v",
				s.Tenant, s.People, s.CycleSeconds, s.LastCycleSeconds, s.Stretched, s.Reads)
		}
		stopBridge(b, br)
		slices.Sort(cycles)

		b.ReportMetric(firstSeen.Seconds(), "first-sighting-s")
		b.ReportMetric(cycles[0], "min-cycle-s")
		b.ReportMetric(cycles[len(cycles)-1], "max-cycle-s")
		b.ReportMetric(mb(int64(watching.heap)-int64(idleMem.heap)), "heap-above-idle-MB")
		// Live objects alone, without the spans' free room (HeapAlloc).
		b.ReportMetric(mb(int64(watching.live)-int64(idleMem.live)), "live-heap-above-idle-MB")
		b.ReportMetric(mb(int64(idleMem.heap)-int64(base.heap)), "idle-bridge-heap-MB")
		b.ReportMetric(mb(int64(watching.rss)-int64(idleMem.rss)), "RSS-above-idle-MB")
		b.ReportMetric(mb(int64(watching.rss)), "bridge-process-RSS-MB")
		b.ReportMetric(mb(int64(settled.heap)-int64(idleMem.heap)), "settled-heap-above-idle-MB")
		b.ReportMetric(mb(int64(settled.live)-int64(idleMem.live)), "settled-live-heap-above-idle-MB")
		b.ReportMetric(mb(int64(settled.rss)-int64(idleMem.rss)), "settled-RSS-above-idle-MB")
		b.ReportMetric(mb(int64(emRSS)), "emulator-RSS-MB")
		maxWindow, throttled := 0, 0
		for _, w := range em.stop(b) {
			maxWindow = max(maxWindow, w.Requests)
			throttled += w.Throttled
		}
		b.ReportMetric(float64(maxWindow), "max-reads/30s")
		b.ReportMetric(float64(throttled), "429s")
	}
}

// settle is how long after the first sightings of everyone
// BenchmarkWatchMemory measures again: past the NATS file store's 2
// minutes of per-block subject state.
const settle = 150 * time.Second

// watchMemoryPerTenant is how many people each of BenchmarkWatchMemory's
// ten tenants holds: 10,000, or PB_WATCH_PER_TENANT for a smaller run.
var watchMemoryPerTenant = func() int {
	if n, err := strconv.Atoi(os.Getenv("PB_WATCH_PER_TENANT")); err == nil && n > 0 {
		return n
	}
	return 10_000
}()

// writeHeapProfile writes the heap's profile (after a collection) to path.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLookupPaced: GET /v1/presence/{user} over loopback HTTP to a
// running bridge watching 1,000 people (its watcher reading on as usual),
// paced at 2,000 requests per second for lookupPacedSeconds, open loop:
// a request's latency is timed from when it was due, so time spent
// waiting for a free client counts. 64 clients with keep-alive
// connections, in this process. It reports the requests answered per
// second and the latency percentiles, and what this process's scheduling
// did meanwhile; it fails on an answer other than 200.
func BenchmarkLookupPaced(b *testing.B) {
	br := startBridge(b, watchConfig(b, lookupPeople))
	base := "http://" + br.Addr() + "/v1/presence/"
	waitForLookup(b, base, "contoso.example")
	b.ResetTimer()
	for range b.N {
		rt0, os0 := readRuntime(), osWait()
		r := pace(base, "contoso.example")
		rt1, os1 := readRuntime(), osWait()
		r.report(b)
		reportRuntime(b, rt0, rt1, os0, os1, r.Elapsed)
	}
}

// BenchmarkLookupPacedApart: BenchmarkLookupPaced with its clients in a
// process of their own (TestLookupLoadProcess, the test binary run
// again), as a PBX's would be, and the Graph emulator in another
// (TestEmulatorProcess: one tenant, t0.example, of lookupPeople), as
// Graph is: the bridge's process serves and watches, and its scheduling
// and collector figures are the bridge's alone (not the emulator's
// garbage and heap too, as with the embedded emulator of
// BenchmarkLookupPaced); the clients' process reports its own CPU.
func BenchmarkLookupPacedApart(b *testing.B) {
	em := startEmulatorProcess(b, 1, lookupPeople)
	br := startBridge(b, manyTenantsConfig(b, em.graph, em.login, 1, true)+"lookup: {token: lookup-token}\n")
	base := "http://" + br.Addr() + "/v1/presence/"
	const domain = "t0.example"
	waitForLookup(b, base, domain)
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLookupLoadProcess$", "-test.bench=^$")
		cmd.Env = append(os.Environ(), lookupLoadEnv+"="+base+" "+domain)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		var rt0 runtimeStats
		var os0 uint64
		var r paced
		got := false
		for lines.Scan() {
			switch line := lines.Text(); {
			case line == "pacing":
				rt0, os0 = readRuntime(), osWait()
			case strings.HasPrefix(line, "paced "):
				rt1, os1 := readRuntime(), osWait()
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "paced ")), &r); err != nil {
					b.Fatal(err)
				}
				r.report(b)
				reportRuntime(b, rt0, rt1, os0, os1, r.Elapsed)
				b.ReportMetric(r.CPUSec/r.Elapsed.Seconds(), "client-cpu-s/s")
				got = true
			}
		}
		if err := cmd.Wait(); err != nil || !got {
			b.Fatalf("the clients' process: %v (result read: %v)", err, got)
		}
	}
}

// lookupLoadEnv makes the test binary the clients of
// BenchmarkLookupPacedApart in TestLookupLoadProcess: its value is the
// lookup's base URL and the watched people's domain, after a space.
const lookupLoadEnv = "PB_LOOKUP_LOAD"

// TestLookupLoadProcess is not a test: BenchmarkLookupPacedApart runs the
// test binary again with lookupLoadEnv set, to send the paced lookups
// from a process of its own. It prints "pacing" as it starts and
// "paced <json>" with the result.
func TestLookupLoadProcess(t *testing.T) {
	base, domain, ok := strings.Cut(os.Getenv(lookupLoadEnv), " ")
	if !ok {
		t.Skip("the clients of BenchmarkLookupPacedApart; run only by it")
	}
	fmt.Println("pacing")
	r := pace(base, domain)
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("paced %s\n", data)
}

// The paced lookups: lookupRate a second to lookupPeople people, from
// lookupClients clients.
const lookupPeople, lookupRate, lookupClients = 1000, 2000, 64

// lookupGet makes one lookup of user with client.
func lookupGet(client *http.Client, base, user string) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, base+user, nil)
	req.Header.Set("Authorization", "Bearer lookup-token")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitForLookup waits until the lookup at base answers for the last
// person watched, w<lookupPeople-1>@domain.
func waitForLookup(b *testing.B, base, domain string) {
	testpoll.Within(b, 2*time.Minute, "everyone in the lookup", func() bool {
		status, err := lookupGet(http.DefaultClient, base, fmt.Sprintf("w%d@%s", lookupPeople-1, domain))
		return err == nil && status == http.StatusOK
	})
}

// paced is the outcome of pace: latencies in milliseconds.
type paced struct {
	Answered, Failed   int
	Elapsed            time.Duration
	P50, P99, P999     float64
	ServiceP99, CPUSec float64 // CPUSec: the sending process's CPU seconds
	// LateP99: how late a request was sent after it was due (the pacer's
	// wake-up and a free client), part of every latency above.
	LateP99 float64
}

func (r paced) report(b *testing.B) {
	b.ReportMetric(float64(r.Answered)/r.Elapsed.Seconds(), "answered/s")
	b.ReportMetric(r.P50, "p50-ms")
	b.ReportMetric(r.P99, "p99-ms")
	b.ReportMetric(r.P999, "p99.9-ms")
	b.ReportMetric(r.ServiceP99, "p99-service-ms")
	b.ReportMetric(r.LateP99, "p99-send-late-ms")
	if r.Failed > 0 {
		b.Errorf("%d of %d requests failed or answered other than 200", r.Failed, r.Answered)
	}
}

// pace sends lookupRate lookups a second for lookupPacedSeconds to the
// lookup at base, of w0@domain to w<lookupPeople-1>@domain, open loop:
// each request's latency is timed from when it was due.
func pace(base, domain string) paced {
	transport := &http.Transport{MaxIdleConnsPerHost: lookupClients}
	client := &http.Client{Transport: transport}
	defer transport.CloseIdleConnections()
	total := lookupPacedSeconds * lookupRate
	due := make(chan time.Time, total)
	var mu sync.Mutex
	var fromDue, service, late []time.Duration
	failed := 0
	var wg sync.WaitGroup
	for c := range lookupClients {
		wg.Go(func() {
			var mine, took, behind []time.Duration
			bad := 0
			i := c
			for at := range due {
				start := time.Now()
				status, err := lookupGet(client, base, fmt.Sprintf("w%d@%s", i%lookupPeople, domain))
				end := time.Now()
				if err != nil || status != http.StatusOK {
					bad++
				}
				mine, took, behind = append(mine, end.Sub(at)), append(took, end.Sub(start)), append(behind, start.Sub(at))
				i += lookupClients
			}
			mu.Lock()
			fromDue, service, late, failed = append(fromDue, mine...), append(service, took...), append(late, behind...), failed+bad
			mu.Unlock()
		})
	}
	cpu0 := readRuntime().cpu
	start := time.Now()
	for i := range total {
		at := start.Add(time.Duration(i) * time.Second / lookupRate)
		if wait := time.Until(at); wait > 0 {
			// Real time must pass: requests are paced at lookupRate.
			time.Sleep(wait)
		}
		due <- at
	}
	close(due)
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(fromDue)
	slices.Sort(service)
	slices.Sort(late)
	return paced{Answered: len(fromDue), Failed: failed, Elapsed: elapsed,
		P50: percentile(fromDue, 0.50), P99: percentile(fromDue, 0.99), P999: percentile(fromDue, 0.999),
		ServiceP99: percentile(service, 0.99), LateP99: percentile(late, 0.99), CPUSec: readRuntime().cpu - cpu0}
}

// reportRuntime reports where time went besides the handler, in this
// process between two readings: Go's own scheduling delay (a runnable
// goroutine waiting for a P), the collector's stop-the-world pauses, the
// CPU used, and the time its threads waited for a core in the kernel's
// run queue.
func reportRuntime(b *testing.B, rt0, rt1 runtimeStats, os0, os1 uint64, elapsed time.Duration) {
	b.ReportMetric(histQuantile(rt0.sched, rt1.sched, 0.99)*1e3, "p99-go-sched-ms")
	b.ReportMetric(histCount(rt0.pauses, rt1.pauses), "gc-pauses")
	b.ReportMetric(histQuantile(rt0.pauses, rt1.pauses, 1)*1e3, "max-gc-pause-ms")
	b.ReportMetric(float64(rt1.gcs-rt0.gcs), "gc-cycles")
	b.ReportMetric((rt1.cpu-rt0.cpu)/elapsed.Seconds(), "cpu-s/s")
	b.ReportMetric(float64(os1-os0)/1e6/elapsed.Seconds(), "os-runq-wait-ms/s")
}

// lookupPacedSeconds is how long BenchmarkLookupPaced sends, per
// iteration.
const lookupPacedSeconds = 10

// runtimeStats are the runtime metrics BenchmarkLookupPaced reports the
// change of.
type runtimeStats struct {
	sched, pauses *metrics.Float64Histogram
	gcs           uint64
	cpu           float64
}

func readRuntime() runtimeStats {
	samples := []metrics.Sample{{Name: "/sched/latencies:seconds"}, {Name: "/sched/pauses/total/gc:seconds"},
		{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(samples)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return runtimeStats{sched: samples[0].Value.Float64Histogram(), pauses: samples[1].Value.Float64Histogram(),
		gcs: samples[2].Value.Uint64(), cpu: cpu.Seconds()}
}

// histCount is how many samples b holds beyond a (b a later reading of
// the same histogram).
func histCount(a, b *metrics.Float64Histogram) float64 {
	n := uint64(0)
	for i := range b.Counts {
		n += b.Counts[i] - a.Counts[i]
	}
	return float64(n)
}

// histQuantile is the upper bound of the bucket holding quantile q of
// the samples b holds beyond a; 0 without samples.
func histQuantile(a, b *metrics.Float64Histogram, q float64) float64 {
	total := histCount(a, b)
	if total == 0 {
		return 0
	}
	seen := uint64(0)
	for i := range b.Counts {
		seen += b.Counts[i] - a.Counts[i]
		if float64(seen) >= q*total {
			return b.Buckets[i+1]
		}
	}
	return b.Buckets[len(b.Buckets)-1]
}

// osWait is the time, in nanoseconds, this process's threads have
// waited in the kernel's run queue for a core (the second field of
// /proc/self/task/*/schedstat; 0 elsewhere). Threads that ended are not
// counted.
func osWait() uint64 {
	tasks, _ := os.ReadDir("/proc/self/task")
	var total uint64
	for _, t := range tasks {
		data, err := os.ReadFile("/proc/self/task/" + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(data)); len(f) >= 2 {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			total += n
		}
	}
	return total
}
