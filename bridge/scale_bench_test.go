package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
	"github.com/presence-bridge/presence-bridge/internal/freeport"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// BenchmarkScaleHeap (issue 23) says where the bridge's bytes go with
// many people in one tenant: SCALE_PEOPLE people (10,000 by default) each
// start a call and then end it, through a whole bridge (embedded NATS,
// the emulator in this process, the write and lookup budgets raised);
// then the bridge is stopped and started again on the same store. It
// reports the heap in use (after a collection) at each point, and with
// PB_HEAP_PROFILE=<prefix> writes the heap's profile at each point to
// <prefix>-{call,ended,restart}.pprof, for go tool pprof -top, and
// <prefix>-burst.pprof as soon as every call is posted. The
// figures of the bridge alone, from outside, come from make bench-scale.
func BenchmarkScaleHeap(b *testing.B) {
	people := 10_000
	if s := os.Getenv("SCALE_PEOPLE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("SCALE_PEOPLE=%q is not a positive number", s)
		}
		people = n
	}
	em := manyTenants(b, 1, people)
	store := b.TempDir()
	yaml := bridgetest.Header + fmt.Sprintf("nats: {embedded: true, store_dir: %q}\n", store) +
		fmt.Sprintf("graph:\n  tenants:\n    - {id: t0.example, client_id: %s, client_secret: %s, graph_url: %q, login_url: %q, budget: %d, budget_window: 30s, lookup_budget: %d}\n",
			bridgetest.ClientID, bridgetest.ClientSecret, em.GraphURL(), em.LoginURL(), 50*people, min(people, 100_000)) +
		"sources:\n  - {name: demo, type: generic, token: demo-token, tenant: t0.example}\n"
	for range b.N {
		base := measure()
		br := runBridge(b, yaml)
		idle := measure()
		sendAll := func(state string) {
			var wg sync.WaitGroup
			next := make(chan int)
			for range 16 {
				wg.Go(func() {
					for i := range next {
						body := callEvent(fmt.Sprintf("%s-%d", state, i), fmt.Sprintf("w%d@t0.example", i), fmt.Sprintf("call-%d", i), state, time.Now())
						if r := postEvent(b, br, body); r.status != http.StatusAccepted {
							b.Errorf("event %d: status %d", i, r.status)
						}
					}
				})
			}
			for i := range people {
				next <- i
			}
			close(next)
			wg.Wait()
		}
		settled := func(want int) {
			testpoll.Within(b, 30*time.Minute, "every event to reach Graph or need no call", func() bool {
				return settledEvents(b, br) >= want
			})
		}
		profile := func(name string) memory {
			m := steadyHeap()
			if prefix := os.Getenv("PB_HEAP_PROFILE"); prefix != "" {
				writeHeapProfile(b, prefix+"-"+name+".pprof")
			}
			return m
		}
		sendAll("active")
		if prefix := os.Getenv("PB_HEAP_PROFILE"); prefix != "" {
			writeHeapProfile(b, prefix+"-burst.pprof") // every call posted, most not yet told
		}
		settled(people)
		inCall := profile("call")
		sendAll("ended")
		settled(2 * people)
		ended := profile("ended")
		stopBridge(b, br)
		br = runBridge(b, yaml)
		testpoll.Within(b, 5*time.Minute, "the restarted writer to catch up", func() bool { return br.WriterCaughtUp("t0.example") })
		restarted := profile("restart")
		stopBridge(b, br)

		per := func(m memory) float64 { return (float64(m.heap) - float64(idle.heap)) / float64(people) }
		b.Logf("heap+stacks in use: emulator alone %.1f MB, idle bridge %.1f MB, everyone in a call %.1f MB, every call ended %.1f MB, restarted %.1f MB",
			mb(int64(base.heap)), mb(int64(idle.heap)), mb(int64(inCall.heap)), mb(int64(ended.heap)), mb(int64(restarted.heap)))
		b.ReportMetric(per(inCall), "call-B/person")
		b.ReportMetric(per(ended), "ended-B/person")
		b.ReportMetric(per(restarted), "restart-B/person")
	}
}

// settledEvents reads the bridge's presence_bridge_event_to_graph_outcomes_total,
// every outcome summed: the events that reached Graph or needed no call.
func settledEvents(b *testing.B, br *bridge.Bridge) int {
	return sumSeries(b, br, "presence_bridge_event_to_graph_outcomes_total", "")
}

// sumSeries sums the values of the bridge's series of metric name but
// those whose labels hold except (nothing left out when it is empty).
func sumSeries(b *testing.B, br *bridge.Bridge, name, except string) int {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+br.Addr()+"/metrics", nil)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || (except != "" && strings.Contains(line, except)) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			b.Fatalf("metrics line %q: %v", line, err)
		}
		n += v
	}
	return int(n)
}

// steadyHeap measures the heap once it has stopped falling: the bridge's
// other watchers of the state bucket may still be taking in what the
// writer took, on a busy machine for seconds. It reads once a second
// (real time must pass), for at most a minute.
func steadyHeap() memory {
	m := measure()
	for range 60 {
		time.Sleep(time.Second) // real time: other goroutines drain their backlogs
		next := measure()
		if next.heap+next.heap/50 >= m.heap {
			return next
		}
		m = next
	}
	return m
}

// BenchmarkScaleRestart (issue 23) measures a restart alone over
// SCALE_PEOPLE idle people (20,000 by default): their states are written
// straight into the state bucket as a call that ended leaves them (an
// ended call claim, Graph told to clear, nothing under way), then a bridge
// starts on that store with a Graph emulator that knows no one, so that
// this process holds the bridge alone. It reports the time to ready and
// until the writer has read every state, this process's RSS and Go heap
// SCALE_QUIET (60s by default) later (RSS as it is, then heap and RSS
// after a collection that returns free memory), and the Graph calls the
// bridge made; SCALE_EXTRA_YAML is added to the bridge's configuration
// (e.g. "presence: {observe_interval: 0s}\n" to leave out the Teams
// watcher). With SCALE_BRIDGE=<presence-bridge binary> the bridge runs as
// that process instead, measured from /proc as make bench-scale measures
// it. With PB_HEAP_PROFILE=<prefix> it writes the heap's profile
// to <prefix>-restart-only.pprof.
func BenchmarkScaleRestart(b *testing.B) {
	people := envInt(b, "SCALE_PEOPLE", 20_000)
	quiet := 60 * time.Second
	if s := os.Getenv("SCALE_QUIET"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("SCALE_QUIET=%q: %v", s, err)
		}
		quiet = d
	}
	em := manyTenants(b, 1, 0)
	store := b.TempDir()
	yaml := bridgetest.Header + fmt.Sprintf("nats: {embedded: true, store_dir: %q}\n", store) +
		fmt.Sprintf("graph:\n  tenants:\n    - {id: t0.example, client_id: %s, client_secret: %s, graph_url: %q, login_url: %q}\n",
			bridgetest.ClientID, bridgetest.ClientSecret, em.GraphURL(), em.LoginURL()) +
		"sources:\n  - {name: demo, type: generic, token: demo-token, tenant: t0.example}\n" + os.Getenv("SCALE_EXTRA_YAML")
	fillIdleStates(b, yaml+"worker: {enabled: false}\n", "t0.example", people)
	if bin := os.Getenv("SCALE_BRIDGE"); bin != "" {
		for range b.N {
			restartProcess(b, bin, yaml, people, quiet)
		}
		return
	}
	for range b.N {
		base := measure()
		resetPeakRSS(b)
		started := time.Now()
		br := runBridge(b, yaml)
		ready := time.Since(started)
		testpoll.Within(b, 10*time.Minute, "the restarted writer to catch up", func() bool { return br.WriterCaughtUp("t0.example") })
		caughtUp := time.Since(started)
		time.Sleep(quiet) // real time must pass: what the restart holds a minute on
		rss, peak := rssOf("/proc/self/status"), peakRSS()
		after := measure()
		if prefix := os.Getenv("PB_HEAP_PROFILE"); prefix != "" {
			writeHeapProfile(b, prefix+"-restart-only.pprof")
		}
		calls := graphCalls(b, br)
		stopBridge(b, br)
		b.Logf("%d idle people: ready after %s, every state read after %s; %s later RSS %.1f MB (peak %.1f MB), after a collection heap+stacks %.1f MB (live %.1f MB, before the bridge %.1f MB), RSS %.1f MB; Graph calls %d",
			people, ready.Round(time.Millisecond), caughtUp.Round(time.Millisecond), quiet, mb(int64(rss)), mb(int64(peak)),
			mb(int64(after.heap)), mb(int64(after.live)), mb(int64(base.heap)), mb(int64(after.rss)), calls)
		b.ReportMetric(ready.Seconds(), "ready-s")
		b.ReportMetric(caughtUp.Seconds(), "caughtup-s")
		b.ReportMetric(mb(int64(rss)), "rss-MB")
		b.ReportMetric(mb(int64(peak)), "peak-rss-MB")
		b.ReportMetric((float64(after.heap)-float64(base.heap))/float64(people), "heap-B/person")
		b.ReportMetric(float64(calls), "graph-calls")
	}
}

// resetPeakRSS resets this process's peak RSS (VmHWM) to its RSS now
// (Linux), so that peakRSS reports the peak of what follows.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("peak RSS not reset: %v", err)
	}
}

// peakRSS reads VmHWM, this process's peak RSS, in bytes (0 but on
// Linux).
func peakRSS() uint64 { return procField("/proc/self/status", "VmHWM:") }

// restartProcess runs the presence-bridge binary bin from yaml on the
// filled store and reports its time to ready, and its RSS (now and at
// its peak) and Graph calls quiet later.
func restartProcess(b *testing.B, bin, yaml string, people int, quiet time.Duration) {
	addr, err := freeport.Addr()
	if err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(b.TempDir(), "bridge.yaml")
	yaml = strings.Replace(yaml, `http: {listen: "127.0.0.1:0"}`, fmt.Sprintf("http: {listen: %q}", addr), 1)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	started := time.Now()
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	get := func(path string) (string, int) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return "", 0
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body), resp.StatusCode
	}
	testpoll.Within(b, 5*time.Minute, "the bridge process to be ready", func() bool {
		_, code := get("/readyz")
		return code == http.StatusOK
	})
	ready := time.Since(started)
	time.Sleep(quiet) // real time must pass: what the restart holds a minute on
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	rss, peak := procField(status, "VmRSS:"), procField(status, "VmHWM:")
	metrics, _ := get("/metrics")
	calls := 0.0
	for line := range strings.SplitSeq(metrics, "\n") {
		if strings.HasPrefix(line, "presence_bridge_graph_requests_total{") && !strings.Contains(line, `operation="token"`) {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			calls += v
		}
	}
	b.Logf("%d idle people, the bridge as a process: ready after %s; %s later RSS %.1f MB (peak %.1f MB); Graph calls %.0f",
		people, ready.Round(time.Millisecond), quiet, mb(int64(rss)), mb(int64(peak)), calls)
	b.ReportMetric(ready.Seconds(), "ready-s")
	b.ReportMetric(mb(int64(rss)), "rss-MB")
	b.ReportMetric(mb(int64(peak)), "peak-rss-MB")
	b.ReportMetric(calls, "graph-calls")
}

// procField reads a "kB" field (VmRSS:, VmHWM:) of a /proc status file,
// in bytes.
func procField(path, field string) uint64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// envInt reads a positive number from the environment, def when unset.
func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q is not a positive number", name, s)
	}
	return n
}

// fillIdleStates runs a bridge from yaml (its worker off) and writes the
// states of people idle people of tenant into its state bucket, each as a
// call that ended a minute ago leaves it, then stops the bridge.
func fillIdleStates(b *testing.B, yaml, tenant string, people int) {
	br := runBridge(b, yaml)
	defer stopBridge(b, br)
	ctx := context.Background()
	js := br.Queue().JetStream()
	store, err := state.Open(ctx, js, state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	bucket := store.KV().Bucket()
	at := time.Now().Add(-time.Minute).UTC()
	for i := range people {
		user := watchUser(i)
		ended := adapters.Event{ID: fmt.Sprintf("ended-%d", i), Source: "demo", Type: adapters.TypeCall, User: fmt.Sprintf("w%d@%s", i, tenant),
			OccurredAt: at, CallID: fmt.Sprintf("call-%d", i), State: adapters.CallEnded}
		st := state.UserState{Tenant: tenant, UserID: user,
			Calls:      map[string]*state.CallClaim{"demo/" + ended.CallID: {Source: "demo", State: adapters.CallEnded, OccurredAt: at, Updated: at}},
			SourceSeen: map[string]time.Time{"demo": at},
			Told:       &state.Told{At: at},
			LastEvent:  &ended,
		}
		data, err := json.Marshal(st)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishAsync("$KV."+bucket+"."+state.UserKey(tenant, user), data); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("the state bucket did not take the states in a minute")
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("the state bucket did not take the states in a minute")
	}
}

// graphCalls sums the bridge's presence_bridge_graph_requests_total but
// for the token endpoint: the Graph calls it made since it started.
func graphCalls(b *testing.B, br *bridge.Bridge) int {
	return sumSeries(b, br, "presence_bridge_graph_requests_total", `operation="token"`)
}
