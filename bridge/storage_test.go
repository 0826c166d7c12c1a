package bridge_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/logbuf"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// storageConfig is testConfig with small JetStream limits.
func storageConfig(t *testing.T, set func(*config.NATS)) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig(t)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	set(&cfg.NATS)
	return cfg
}

// waitAccepted posts body until it is answered 202.
func waitAccepted(t *testing.T, b *bridge.Bridge, body string, within time.Duration) {
	t.Helper()
	testpoll.WithinOK(t, max(within, testpoll.Deadline), "the event to be accepted", func() error {
		if r := postEvent(t, b, body); r.status != http.StatusAccepted {
			return fmt.Errorf("refused: %d %v", r.status, r.body)
		}
		return nil
	})
}

// checkFullAnswers checks that ingest answers 503 saying JetStream is full,
// and /readyz 503 with want in its message.
func checkFullAnswers(t *testing.T, b *bridge.Bridge, body, want string) {
	t.Helper()
	r := postEvent(t, b, body)
	code, message := errorCodeMessage(r)
	if r.status != http.StatusServiceUnavailable || code != "queue_full" || !strings.Contains(message, want) || r.header.Get("Retry-After") == "" {
		t.Fatalf("ingest while full: %d %v (Retry-After %q), want 503 queue_full naming %q", r.status, r.body, r.header.Get("Retry-After"), want)
	}
	r = getAnswer(t, b, "/readyz")
	if _, message := errorCodeMessage(r); r.status != http.StatusServiceUnavailable || !strings.Contains(message, want) {
		t.Fatalf("readyz while full: %d %v, want 503 naming %q", r.status, r.body, want)
	}
}

// countWarnings counts the log lines of a component at warn or error level.
func countWarnings(logs *logbuf.Buffer, component string) int {
	n := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"component":"`+component+`"`) && (strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`)) {
			n++
		}
	}
	return n
}

// TestFullStreamAnswers503AndRecovers fills the events stream while Graph
// is down and the worker can not apply anything: ingest answers 503 saying
// the stream is full, /readyz says so, the log says it once, and once Graph
// is back every accepted event is applied and ingest takes events again,
// without a restart.
func TestFullStreamAnswers503AndRecovers(t *testing.T) {
	b, logs := startBridgeWithLogs(t, storageConfig(t, func(n *config.NATS) { n.StreamMaxBytes = 16 << 10 }))
	b.Emulator().Outage(time.Hour) // user lookups fail: events stay in the stream

	accepted := 0
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatalf("1000 events accepted into a 16 KiB stream")
		}
		r := postEvent(t, b, callEvent(fmt.Sprintf("fill-%d", i), "bob@contoso.example", "c1", "active", time.Now()))
		if r.status == http.StatusAccepted {
			accepted++
			continue
		}
		if code, _ := errorCodeMessage(r); r.status != http.StatusServiceUnavailable || code != "queue_full" {
			t.Fatalf("event %d: %d %v", i, r.status, r.body)
		}
		break
	}
	if accepted == 0 {
		t.Fatal("no event accepted")
	}
	// Larger than any event accepted, so it can not squeeze into the room
	// left.
	body := callEvent("late-and-longer-than-the-others", "alice@contoso.example", "c2", "active", time.Now())
	for range 20 {
		checkFullAnswers(t, b, body, "events stream")
	}
	if n := countWarnings(logs, "nats") + countWarnings(logs, "http"); n > 3 {
		t.Errorf("%d warnings for a full stream, want it said once:\n%s", n, logs.String())
	}

	b.Emulator().ClearFaults()
	waitAccepted(t, b, body, 60*time.Second)
	waitUntilReady(t, b, 60*time.Second)
	waitPresence(t, b, aliceID, "Busy/InACall", 30*time.Second)
	waitPresence(t, b, bobID, "Busy/InACall", 30*time.Second)
	waitSettled(t, b, 60*time.Second)
	if letters, err := b.Queue().ListDeadLetters(context.Background(), 0, 10); err != nil || len(letters) != 0 {
		t.Fatalf("dead letters %v (%v), want none", letters, err)
	}
}

// TestFullStoreAnswers503AndRecovers fills the embedded server's JetStream
// store (nats.max_store) with another stream, as another user of a shared
// server would: ingest answers 503 saying the store is full, /readyz says
// so, and when the space is freed the bridge takes and applies events
// again, without a restart.
func TestFullStoreAnswers503AndRecovers(t *testing.T) {
	b, _ := startBridgeWithLogs(t, storageConfig(t, func(n *config.NATS) {
		n.MaxStore = 1 << 20
		n.StreamMaxBytes = 64 << 10
		n.DeadLetterMaxBytes = 64 << 10
	}))
	if r := postEvent(t, b, callEvent("before", "bob@contoso.example", "c1", "active", time.Now())); r.status != http.StatusAccepted {
		t.Fatalf("post: %d %v", r.status, r.body)
	}
	waitPresence(t, b, bobID, "Busy/InACall", 30*time.Second)

	ctx := context.Background()
	js := b.Queue().JetStream()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FILLER", Subjects: []string{"filler.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 32<<10)
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("100 chunks of 32 KiB stored in a 1 MiB store")
		}
		if _, err := js.Publish(ctx, "filler.x", chunk); err != nil {
			break
		}
	}

	body := callEvent("after", "alice@contoso.example", "c2", "active", time.Now())
	checkFullAnswers(t, b, body, "store")

	if err := js.DeleteStream(ctx, "FILLER"); err != nil {
		t.Fatal(err)
	}
	waitAccepted(t, b, body, 60*time.Second)
	waitUntilReady(t, b, 60*time.Second)
	waitPresence(t, b, aliceID, "Busy/InACall", 30*time.Second)
	waitPresence(t, b, bobID, "Busy/InACall", 30*time.Second)
}
