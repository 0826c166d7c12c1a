package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs/outputstest"
)

// BenchmarkThroughput: one op is one change delivered to a receiver on
// 127.0.0.1 that answers each request after 20 ms, with the default
// concurrency (32). Changes are for 10,000 people in turn, published by
// 32 goroutines, each stored in JetStream before Publish returns (so that
// publishing, one KV put each, is not what limits). The time runs from
// the first Publish to the last delivery. Reports deliveries/s.
func BenchmarkThroughput(b *testing.B) {
	js, _ := natstest.Start(b)
	var delivered atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// Real time must pass: the receiver answers in 20 ms.
		time.Sleep(20 * time.Millisecond)
		delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	out, err := New(context.Background(), Config{Name: "bench", URL: srv.URL, Secret: secretA}, Options{JetStream: js, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	const people, publishers = 10_000, 32
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > b.N {
					return
				}
				c := outputstest.Change("contoso.example", fmt.Sprintf("00000000-0000-4000-8000-%012d", i%people), i/people+1)
				if err := out.Publish(context.Background(), c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	testpoll.Within(b, 10*time.Minute, "every change delivered", func() bool { return delivered.Load() >= int64(b.N) })
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
}

// BenchmarkQueuedMemory: 100,000 people's changes wait (the endpoint
// answered 410, so nothing is sent); reports the Go heap the output holds
// for them, per queued change and in all, and the bytes of its bucket.
func BenchmarkQueuedMemory(b *testing.B) {
	const n = 100_000
	for range b.N {
		js, stop := natstest.Start(b)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) }))
		out, err := New(context.Background(), Config{Name: "bench", URL: srv.URL, Secret: secretA, MaxQueued: n}, Options{JetStream: js, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		if err := out.Publish(ctx, outputstest.Change("contoso.example", "gone", 1)); err != nil {
			b.Fatal(err)
		}
		testpoll.Until(b, "disabled", func() bool { return out.Health().Disabled })
		before := heapInUse()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for {
					i := int(next.Add(1))
					if i >= n {
						return
					}
					if err := out.Publish(ctx, outputstest.Change("contoso.example", fmt.Sprintf("00000000-0000-4000-8000-%012d", i), 1)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		after := heapInUse()
		h := out.Health()
		if h.Queued != n {
			b.Fatalf("%d queued, want %d", h.Queued, n)
		}
		st, err := out.kv.Status(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(after-before)/float64(n), "heap-B/queued")
		b.ReportMetric(float64(after-before)/(1<<20), "heap-MB")
		b.ReportMetric(float64(st.Bytes())/(1<<20), "bucket-MB")
		out.Close()
		srv.Close()
		stop()
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}
