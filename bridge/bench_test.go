package bridge_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
)

// benchConfig is a bridge with embedded NATS and emulator, the demo
// source, alice and n more users (benchUser), and neither the tenant's
// budget nor the emulator's throttle in the way: 100,000,000 calls per
// 30 s each. At Graph's real budget these benchmarks would measure the
// budget, by design one call every few milliseconds.
func benchConfig(b *testing.B, n int) string {
	var users strings.Builder
	for u := range n {
		users.WriteString(bridgetest.User(benchUser(u), fmt.Sprintf("bench%d@contoso.example", u)))
	}
	return bridgetest.Header + "worker: {lanes: 8}\n" + fmt.Sprintf("nats: {embedded: true, store_dir: %q}\n", b.TempDir()) +
		"graph:\n" + bridgetest.Tenants("budget: 100000000") +
		bridgetest.Emulator(bridgetest.Alice, users.String()) + `    throttle: {limit: 100000000, window: 30s}
sources:
  - {name: demo, type: generic, token: demo-token}
`
}

// benchUser is the object id of benchConfig's user u.
func benchUser(u int) string { return fmt.Sprintf("be0c0000-0000-4000-8000-%012d", u) }

// postBody posts body to the bridge's /v1/events with the demo token; an
// answer other than 202 is an error.
func postBody(client *http.Client, url, body string) error {
	return bridgetest.Post(client, url, "demo-token", body)
}

// BenchmarkIngest measures ingest alone: one op is one POST /v1/events
// with one event, answered 202 after the JetStream PubAck. Two senders
// (goroutines with a keep-alive connection each) post over loopback to a
// bridge with worker.enabled false, so nothing reads the
// stream while it fills: the figure is HTTP, authentication, decoding,
// validation and the publish with its PubAck, nothing after.
func BenchmarkIngest(b *testing.B) { benchmarkIngest(b, 1) }

// BenchmarkIngestBatch is BenchmarkIngest with 100 events per request
// ({"events":[...]}), the way a busy PBX would post; one op is one
// request, and events/s counts the events.
func BenchmarkIngestBatch(b *testing.B) { benchmarkIngest(b, 100) }

func benchmarkIngest(b *testing.B, batch int) {
	const senders = 2
	// Ingest alone, as an ingest tier runs it: events are stored in
	// JetStream and nothing reads them.
	br := startBridge(b, strings.Replace(benchConfig(b, 0), "worker: {lanes: 8}", "worker: {lanes: 8, enabled: false}", 1))
	url := "http://" + br.Addr() + "/v1/events"
	now := time.Now()
	var seq, next atomic.Int64
	b.ResetTimer()
	done := make(chan struct{})
	for range senders {
		go func() {
			defer func() { done <- struct{}{} }()
			client := &http.Client{Transport: &http.Transport{}}
			for next.Add(1) <= int64(b.N) {
				events := make([]string, batch)
				for i := range events {
					id := seq.Add(1)
					events[i] = callEvent(fmt.Sprintf("b%d", id), "ext:1001", fmt.Sprintf("c%d", id), "ringing", now)
				}
				body := events[0]
				if batch > 1 {
					body = `{"events":[` + strings.Join(events, ",") + `]}`
				}
				if err := postBody(client, url, body); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for range senders {
		<-done
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkWebhookToPresence measures one event's way through the whole
// bridge, one at a time: one op is one POST /v1/events (a call that
// starts, or on the next op ends), then waiting until the emulator shows
// the new presence. On the path: ingest, JetStream, the worker, the
// directory (a cached UPN lookup), the state stage (KV
// compare-and-set), the writer, graphclient's setPresence or
// clearPresence over loopback to the emulator. The test polls the
// emulator in process every 50 µs, which the figure includes.
func BenchmarkWebhookToPresence(b *testing.B) {
	br := startBridge(b, benchConfig(b, 0))
	states := []string{"active", "ended"}
	want := []string{"Busy/InACall", "Offline/Offline"}
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		body := callEvent(fmt.Sprintf("l%d", i), "alice@contoso.example", "c1", states[i%2], start.Add(time.Duration(i)*time.Millisecond))
		if r := postEvent(b, br, body); r.status != http.StatusAccepted {
			b.Fatalf("status %d", r.status)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			p, ok := br.Emulator().Presence(aliceID)
			if ok && p.Availability+"/"+p.Activity == want[i%2] {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("event %d: presence %s/%s, want %s", i, p.Availability, p.Activity, want[i%2])
			}
			// Real time must pass: a benchmark polls with a fine pause,
			// so that the time measured is the bridge's, not the poll's.
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/event")
}

// BenchmarkConverge measures how fast a whole bridge brings many users'
// changes to Graph when its budget is not the limit. One op is 1,000
// users changing at once (a call starts for each, or on the next op
// ends), from the first POST until the emulator shows every one of them.
// On the path: ingest over loopback HTTP (ten requests of 100 events),
// JetStream, the worker, the per-user state (KV
// compare-and-set), the tenant's writer, graphclient's setPresence or
// clearPresence with a bearer token over loopback HTTP, and the
// emulator. Not on the path: user lookups (the events name object ids),
// the budget and the emulator's throttle (both lifted). It reports users
// brought to Graph per second and Graph writes per second, both counted
// by the emulator.
func BenchmarkConverge(b *testing.B) {
	const users, batch = 1000, 100
	br := startBridge(b, benchConfig(b, users))
	em := br.Emulator()
	url := "http://" + br.Addr() + "/v1/events"
	client := &http.Client{}
	start := time.Now()
	states := []string{"active", "ended"}
	want := []string{"Busy/InACall", "Offline/Offline"}
	writesBefore := graphWrites(em)
	b.ResetTimer()
	for op := range b.N {
		at := start.Add(time.Duration(op) * time.Millisecond)
		for from := 0; from < users; from += batch {
			events := make([]string, batch)
			for i := range events {
				u := from + i
				events[i] = callEvent(fmt.Sprintf("v%d-%d", op, u), benchUser(u), "c1", states[op%2], at)
			}
			if err := postBody(client, url, `{"events":[`+strings.Join(events, ",")+`]}`); err != nil {
				b.Fatal(err)
			}
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			// Counting the writes is cheaper than reading 1,000
			// presences on every poll; the presences are checked once
			// the count is there.
			if graphWrites(em) >= writesBefore+uint64((op+1)*users) && converged(em, users, want[op%2]) == "" {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("op %d did not converge: %s", op, converged(em, users, want[op%2]))
			}
			// Real time must pass: a benchmark polls with a fine pause,
			// so that the time measured is the bridge's, not the poll's.
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	elapsed := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N*users)/elapsed, "users/s")
	b.ReportMetric(float64(graphWrites(em)-writesBefore)/elapsed, "graph-writes/s")
}

// graphWrites counts the emulator's setPresence and clearPresence
// requests answered 200.
func graphWrites(em *emulator.Emulator) uint64 {
	var n uint64
	for k, c := range em.RequestCounts() {
		if k.Status == http.StatusOK && (strings.HasSuffix(k.Route, "/setPresence") || strings.HasSuffix(k.Route, "/clearPresence")) {
			n += c
		}
	}
	return n
}

// converged returns "" when the emulator shows every bench user as want,
// otherwise one who is not.
func converged(em *emulator.Emulator, users int, want string) string {
	for u := range users {
		if p, _ := em.Presence(benchUser(u)); p.Availability+"/"+p.Activity != want {
			return p.String()
		}
	}
	return ""
}

// BenchmarkApplyBacklog measures the apply stage draining a backlog: one
// op is one event. b.N call events for 1,000 users (each user's calls
// alternate active and ended) are stored in JetStream while the consumer
// is stopped; the timer runs from starting the consumer and writers until
// every event is settled (presence_bridge_events_processed_total). On the
// path: the durable consumer, the lanes, the directory, the state KV
// (read and compare-and-set) and the ack; the writers run beside it and
// send what changed to the in-process emulator within Graph's budget, as
// in production.
func BenchmarkApplyBacklog(b *testing.B) {
	const users, batch = 1000, 100
	// Graph's published budget, as in production: the writers send at
	// most 10,000 calls per 30 s, the newest state of each user.
	br := startBridge(b, strings.Replace(benchConfig(b, users), ", budget: 100000000}", "}", 1))
	if err := br.StopWorker(b.Context()); err != nil {
		b.Fatal(err)
	}
	url := "http://" + br.Addr() + "/v1/events"
	client := &http.Client{}
	start := time.Now().Add(-time.Hour)
	states := []string{"active", "ended"}
	for from := 0; from < b.N; from += batch {
		events := make([]string, 0, batch)
		for i := from; i < min(from+batch, b.N); i++ {
			u := i % users
			events = append(events, callEvent(fmt.Sprintf("a%d", i), benchUser(u), "c1", states[(i/users)%2], start.Add(time.Duration(i)*time.Millisecond)))
		}
		if err := postBody(client, url, `{"events":[`+strings.Join(events, ",")+`]}`); err != nil {
			b.Fatal(err)
		}
	}
	before := br.Processed()
	b.ResetTimer()
	if err := br.StartWorker(b.Context()); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for br.Processed() < before+float64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("%v of %d events settled after 5 minutes", br.Processed()-before, b.N)
		}
		// Real time must pass: a benchmark polls with a fine pause, so
		// that the time measured is the bridge's, not the poll's.
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
