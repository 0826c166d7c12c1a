package bridge_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// scaleParts starts what bridges share in a scale-out run: one external
// NATS server with JetStream and a standalone emulator that also knows
// users benchUser(0) to benchUser(users-1), at Graph's budget.
func scaleParts(tb testing.TB, users int) (natsURL string, em *emulator.Emulator) {
	tb.Helper()
	people := make([]emulator.User, users)
	for u := range people {
		people[u] = emulator.User{ID: benchUser(u), UserPrincipalName: fmt.Sprintf("bench%d@contoso.example", u)}
	}
	return sharedPartsOn(tb, nil, emulator.Throttle{}, people...)
}

// scaleBridge starts a bridge on the shared parts with its apply stage and
// writers stopped; StartWorker starts them.
func scaleBridge(tb testing.TB, natsURL string, em *emulator.Emulator) *bridge.Bridge {
	tb.Helper()
	b := bridgetest.Run(tb, bridgetest.Parse(tb, clusterConfig(natsURL, em.Addr())), nil)
	testpoll.UntilOK(tb, "the bridge to be ready", func() error { return b.Ready(context.Background()) })
	if err := b.StopWorker(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return b
}

// postBacklog posts n call events for users users through b, in batches
// of 100: user u's k-th event is active when k is even, ended when odd,
// each later than the one before.
func postBacklog(tb testing.TB, b *bridge.Bridge, n, users int) {
	tb.Helper()
	url := "http://" + b.Addr() + "/v1/events"
	client := &http.Client{}
	start := time.Now().Add(-time.Hour)
	for from := 0; from < n; from += 100 {
		events := make([]string, 0, 100)
		for i := from; i < min(from+100, n); i++ {
			u, k := i%users, i/users
			events = append(events, callEvent(fmt.Sprintf("s%d", i), benchUser(u), "c1", []string{"active", "ended"}[k%2], start.Add(time.Duration(i)*time.Millisecond)))
		}
		if err := postBody(client, url, `{"events":[`+strings.Join(events, ",")+`]}`); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkScaleOut measures how the apply work of one backlog shares out
// over one and two bridges on one external NATS server (in this process,
// on the same machine: the bridges, NATS and the emulator share its CPUs).
// One op is one event: b.N call events for 1,000 users are stored while
// no bridge applies, then the bridges' apply stages and writers start
// together and the timer runs until every event is settled, counted by
// the bridges' presence_bridge_events_processed_total.
func BenchmarkScaleOut(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("bridges=%d", n), func(b *testing.B) {
			const users = 1000
			natsURL, em := scaleParts(b, users)
			bridges := make([]*bridge.Bridge, n)
			for i := range bridges {
				bridges[i] = scaleBridge(b, natsURL, em)
			}
			postBacklog(b, bridges[0], b.N, users)
			processed := func() float64 {
				var sum float64
				for _, br := range bridges {
					sum += br.Processed()
				}
				return sum
			}
			b.ResetTimer()
			for _, br := range bridges {
				if err := br.StartWorker(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			// Real time must pass: a benchmark polls with a fine pause,
			// so that the time measured is the bridge's, not the poll's.
			for deadline := time.Now().Add(5 * time.Minute); processed() < float64(b.N); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatalf("%v of %d events settled after 5 minutes", processed(), b.N)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// TestBridgeAddedUnderLoad: a second bridge started while the first is
// draining a backlog takes a share of it; no event is applied twice (the
// applied outcomes add up to the events, exactly), and every user ends in
// the state of their last event, whichever bridge applied what.
func TestBridgeAddedUnderLoad(t *testing.T) {
	const users, events = 200, 6000
	natsURL, em := scaleParts(t, users)
	first := scaleBridge(t, natsURL, em)
	postBacklog(t, first, events, users)
	if err := first.StartWorker(context.Background()); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "the first bridge to apply an event", func() bool { return first.Processed() > 0 })
	second := scaleBridge(t, natsURL, em)
	if err := second.StartWorker(context.Background()); err != nil {
		t.Fatal(err)
	}
	testpoll.Within(t, 2*time.Minute, fmt.Sprintf("the %d events to settle", events), func() bool { return first.Processed()+second.Processed() >= events })
	t.Logf("the first bridge settled %v events, the second %v", first.Processed(), second.Processed())
	if first.Processed()+second.Processed() != events || first.Applied()+second.Applied() != events {
		t.Fatalf("%v events settled and %v applied for %d sent: some were delivered twice", first.Processed()+second.Processed(), first.Applied()+second.Applied(), events)
	}
	if second.Processed() == 0 {
		t.Fatal("the bridge added under load took no share")
	}
	// Each user's last event is the one with the highest index: active
	// when its round is even.
	lastRound := (events - 1) / users
	want := map[bool]string{true: "Busy/InACall", false: "Offline/Offline"}
	for u := range users {
		round := lastRound
		if u > (events-1)%users {
			round--
		}
		waitEmulatorPresence(t, em, benchUser(u), want[round%2 == 0])
	}
}

// waitEmulatorPresence waits until the emulator shows id as want.
func waitEmulatorPresence(t *testing.T, em *emulator.Emulator, id, want string) {
	t.Helper()
	testpoll.UntilOK(t, "the emulator to show "+id+" as "+want, presencesAre(em, map[string]string{id: want}))
}

// TestIngestTier: a bridge with worker.enabled false takes events in and
// applies none; a bridge beside it on the same NATS applies them.
func TestIngestTier(t *testing.T) {
	natsURL, em := scaleParts(t, 10)
	ingest := startClusterBridgeFrom(t, clusterConfig(natsURL, em.Addr())+"worker: {enabled: false}\n")
	if r := postEvent(t, ingest, callEvent("tier-1", benchUser(3), "c1", "active", time.Now())); r.status != http.StatusAccepted {
		t.Fatalf("ingest-only bridge answered %d %v", r.status, r.body)
	}
	if err := ingest.Ready(context.Background()); err != nil {
		t.Fatalf("an ingest-only bridge is not ready: %v", err)
	}
	if ingest.Writing("contoso.example") || ingest.Processed() != 0 {
		t.Fatal("the ingest-only bridge writes or applies")
	}
	applier := scaleBridge(t, natsURL, em)
	if err := applier.StartWorker(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitEmulatorPresence(t, em, benchUser(3), "Busy/InACall")
	if ingest.Processed() != 0 {
		t.Fatal("the ingest-only bridge applied events")
	}
}
