package engine

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkApply measures events persisted per second (KV compare-and-set
// on a real in-process JetStream), from parallel workers.
func BenchmarkApply(b *testing.B) {
	js, _ := startJetStream(b)
	e, err := New(context.Background(), Options{JetStream: js, Graph: newFakeGraph(&fakeClock{now: t0}), Classify: classify})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			ev := call("pbx", "c", []string{"active", "ended"}[i%2], int(i), false)
			if err := e.Apply(context.Background(), "contoso.example", fmt.Sprintf("u%d", i%5000), ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkConverge: N users all change at once; how long until Graph
// shows every one, against the physical limit of N divided by the budget
// per second. It runs on the real clock with the window scaled down to
// seconds (3,000 calls per 6 s, so 500/s), so that the figure includes
// every real cost: KV writes, the watch, the calls.
func BenchmarkConverge(b *testing.B) {
	const users, budget, window = 1000, 3000, 6 * time.Second
	for range b.N {
		b.StopTimer()
		js, stop := startJetStream(b)
		graph := newFakeGraph(&fakeClock{now: t0})
		e, err := New(context.Background(), Options{
			JetStream: js, Graph: graph, Classify: classify, Tick: time.Millisecond,
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
			time.Sleep(time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		cancel()
		stop()
		limit := float64(users) / (float64(budget) / window.Seconds())
		b.ReportMetric(took.Seconds(), "s-to-converge")
		b.ReportMetric(limit, "s-physical-limit")
	}
}

// BenchmarkHeapPerUser measures the writer's memory per tracked user with
// 100,000 users, each with one open call.
func BenchmarkHeapPerUser(b *testing.B) {
	const users = 100_000
	for range b.N {
		e := &Engine{opts: Options{Rules: rules, Expiration: 15 * time.Minute, Clock: &fakeClock{now: t0}, Classify: classify}}
		e.opts.Logger = discardLogger()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w := newWriter(e, TenantOptions{ID: "contoso.example"})
		for u := range users {
			var st UserState
			st.Tenant, st.UserID = "contoso.example", fmt.Sprintf("%08x-0000-4000-8000-%012x", u, u)
			st.Apply(call("pbx", fmt.Sprintf("call-%d", u), "active", 0, false), t0)
			w.observe(st, uint64(u+1))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/users, "heap-bytes/user")
		runtime.KeepAlive(w)
	}
}
