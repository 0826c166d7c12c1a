package writer

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// BenchmarkBudgetPacing measures how closely one tenant's writer paces
// its Graph calls to its budget when the budget is the limit; it says
// nothing about Graph, HTTP or throughput (BenchmarkConverge in package
// bridge does). One op is 1,000 users whose states were stored before
// the timer starts, each needing one setPresence, at a budget of 3,000
// calls per 6 s (500/s, so at best 2.0 s), against an in-memory Graph
// that answers at once. The writer's KV watch is real JetStream, but the
// figure is the token bucket's: the time it lets 1,000 calls out in,
// against the best it could do.
func BenchmarkBudgetPacing(b *testing.B) {
	const users, budget, window = 1000, 3000, 6 * time.Second
	for range b.N {
		b.StopTimer()
		js, stop := startJetStream(b)
		graph := newFakeGraph(&fakeClock{now: t0})
		e, err := newTestPool(Options{
			JetStream: js, Graph: graph, Tick: time.Millisecond,
			Tenants: []TenantOptions{{ID: "contoso.example", Budget: budget, Window: window}}, Rules: rules,
		})
		if err != nil {
			b.Fatal(err)
		}
		for u := range users {
			if err := e.Apply(context.Background(), "contoso.example", fmt.Sprintf("u%d", u), call("pbx", "c", "active", 0, false)); err != nil {
				b.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		b.StartTimer()
		start := time.Now()
		go e.Run(ctx)
		for {
			graph.mu.Lock()
			done := len(graph.sessions) == users
			graph.mu.Unlock()
			if done || time.Since(start) > time.Minute {
				break
			}
			// Real time must pass: a benchmark polls with a fine pause,
			// so that the time measured is the writer's, not the poll's.
			time.Sleep(time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		cancel()
		stop()
		best := float64(users) / (float64(budget) / window.Seconds())
		b.ReportMetric(took.Seconds(), "s-for-1000-calls")
		b.ReportMetric(best/took.Seconds()*100, "%-of-budget-used")
	}
}

// BenchmarkHeapPerUser measures the heap a tenant's writer holds per
// tracked user: one op is 100,000 users, each with one open call, fed to
// a writer that does not run (no JetStream, no Graph).
func BenchmarkHeapPerUser(b *testing.B) {
	const users = 100_000
	for range b.N {
		e := &Pool{rules: rules, opts: withDefaults(Options{Rules: rules, Clock: &fakeClock{now: t0}})}
		e.opts.Logger = discardLogger()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w := newWriter(e, contoso)
		for u := range users {
			var st state.UserState
			st.Tenant, st.UserID = "contoso.example", fmt.Sprintf("%08x-0000-4000-8000-%012x", u, u)
			st.Apply(call("pbx", fmt.Sprintf("call-%d", u), "active", 0, false), t0)
			w.take(st, uint64(u+1))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/users, "heap-bytes/user")
		runtime.KeepAlive(w)
	}
}
