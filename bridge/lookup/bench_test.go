package lookup

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
)

// people fills vs with n people of contoso, user0@ ... user<n-1>@.
func people(vs *Views, n int) {
	for i := range n {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		vs.Set(view(contoso, id, fmt.Sprintf("user%d@contoso.example", i), "1", "Available"))
	}
}

// BenchmarkLookupGet: GET /v1/presence/{user} through real HTTP on
// loopback (keep-alive connections, GOMAXPROCS clients in parallel) over
// 10,000 people; reports the latency percentiles of the requests.
func BenchmarkLookupGet(b *testing.B) {
	vs := NewViews(Options{})
	people(vs, 10_000)
	srv := server(b, vs, testToken, nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()

	var mu sync.Mutex
	var all []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var took []time.Duration
		i := 0
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/presence/user%d@contoso.example", srv.URL, i%10_000), nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			took = append(took, time.Since(start))
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			i++
		}
		mu.Lock()
		all = append(all, took...)
		mu.Unlock()
	})
	b.StopTimer()
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	at := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) }
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// inUse returns the heap and stack bytes in use, after a collection.
func inUse() (heap, stack uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}

// perWaiter reports the memory n waiters added between two readings.
func perWaiter(b *testing.B, n int, heap0, stack0 uint64) {
	heap1, stack1 := inUse()
	b.ReportMetric(float64(int64(heap1)-int64(heap0))/float64(n), "heap-B/waiter")
	b.ReportMetric(float64(int64(stack1)-int64(stack0))/float64(n), "stack-B/waiter")
	b.ReportMetric(float64(int64(heap1+stack1)-int64(heap0+stack0))/float64(n), "B/waiter")
}

// BenchmarkLongPollMemory measures the memory of waiting long-polls, and
// that Close releases them all:
//   - store: 10,000 goroutines in Views.Wait on 1,000 people (what the
//     lookup adds to a handler's goroutine);
//   - http: 4,000 long-polls over loopback HTTP, server and raw TCP
//     clients in this process (file descriptors allow no 10,000 pairs
//     here).
//
// Run it with -benchtime=1x: each iteration opens, measures and releases.
func BenchmarkLongPollMemory(b *testing.B) {
	b.Run("store/10000", func(b *testing.B) {
		const n = 10_000
		for range b.N {
			vs := NewViews(Options{})
			people(vs, 1000)
			heap0, stack0 := inUse()
			var wg sync.WaitGroup
			for i := range n {
				id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i%1000)
				etag := ETag(view(contoso, id, "", "1", "Available"))
				wg.Go(func() { _, _, _ = vs.Wait(context.Background(), contoso, id, etag) })
			}
			testpoll.Until(b, "all waiters to wait", func() bool { return vs.Waiting() == n })
			perWaiter(b, n, heap0, stack0)
			vs.Close()
			wg.Wait()
		}
	})
	b.Run("http/4000", func(b *testing.B) {
		const n = 4000
		for range b.N {
			vs := NewViews(Options{})
			people(vs, 1000)
			srv := server(b, vs, testToken, nil)
			addr := srv.Listener.Addr().String()
			heap0, stack0 := inUse()
			conns := make([]net.Conn, 0, n)
			for i := range n {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i%1000)
				etag := ETag(view(contoso, id, "", "1", "Available"))
				fmt.Fprintf(c, "GET /v1/presence/%s?wait=60s HTTP/1.1\r\nHost: lookup\r\nAuthorization: Bearer %s\r\nIf-None-Match: %s\r\n\r\n", id, testToken, etag)
				conns = append(conns, c)
			}
			testpoll.Until(b, "all long-polls to wait", func() bool { return vs.Waiting() == n })
			perWaiter(b, n, heap0, stack0)
			vs.Close()
			testpoll.Until(b, "all long-polls to be released", func() bool { return vs.Waiting() == 0 })
			for _, c := range conns {
				c.Close()
			}
			srv.Close()
		}
	})
}

// BenchmarkLookupHandler: the server's own work for one GET
// /v1/presence/{user} (token check, lookup, encoding), through gin but
// without a network, over 10,000 people; ns/op and allocs/op are the
// handler's cost per request.
func BenchmarkLookupHandler(b *testing.B) {
	vs := NewViews(Options{})
	people(vs, 10_000)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	Register(r, HTTPOptions{Token: testToken, Views: vs})
	reqs := make([]*http.Request, 10_000)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, fmt.Sprintf("/v1/presence/user%d@contoso.example", i), nil)
		reqs[i].Header.Set("Authorization", "Bearer "+testToken)
		reqs[i].RemoteAddr = "127.0.0.1:40000"
	}
	w := &discard{header: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		clear(w.header)
		r.ServeHTTP(w, reqs[i%len(reqs)])
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

// discard is a ResponseWriter that keeps the status only.
type discard struct {
	header http.Header
	status int
}

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(status int)      { d.status = status }

// BenchmarkViewsMemory: the heap the store holds per person, for 100,000
// people of 10 tenants, each with a UPN, the strings (ids, UPNs, sequence
// numbers) made beforehand as the watcher holds them, so that only the
// store's own bytes count.
func BenchmarkViewsMemory(b *testing.B) {
	const n = 100_000
	views := make([]outputs.View, n)
	for i := range views {
		tenant := fmt.Sprintf("t%d.example", i%10)
		views[i] = view(tenant, fmt.Sprintf("00000000-0000-4000-8000-%012d", i), fmt.Sprintf("user%d@%s", i, tenant), fmt.Sprintf("C%019d", i), "Available")
	}
	for range b.N {
		before := heapInUse()
		vs := NewViews(Options{})
		for _, v := range views {
			vs.Set(v)
		}
		after := heapInUse()
		b.ReportMetric(float64(after-before)/n, "B/person")
		runtime.KeepAlive(vs)
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
