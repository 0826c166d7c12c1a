package bridge_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// BenchmarkScaleHeap (issue 23) says where the bridge's bytes go with
// many people in one tenant: SCALE_PEOPLE people (10,000 by default) each
// start a call and then end it, through a whole bridge (embedded NATS,
// the emulator in this process, the write and lookup budgets raised);
// then the bridge is stopped and started again on the same store. It
// reports the heap in use (after a collection) at each point, and with
// PB_HEAP_PROFILE=<prefix> writes the heap's profile at each point to
// <prefix>-{call,ended,restart}.pprof, for go tool pprof -top. The
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
		if !strings.HasPrefix(line, "presence_bridge_event_to_graph_outcomes_total{") {
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
