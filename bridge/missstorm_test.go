package bridge_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDirectoryMissStormNoRedelivery: 1,000 events about users Graph does
// not know, while Graph takes 50 ms to answer each lookup, keep the lanes
// busy for longer than ack_wait (5 s here). Every event is looked up once
// and dead-lettered once; none is delivered a second time, neither the
// ones being looked up nor the ones waiting in a lane behind them.
func TestDirectoryMissStormNoRedelivery(t *testing.T) {
	const unknown = 1000
	b := startBridge(t, testConfig(t))
	b.Emulator().SetLatency(50 * time.Millisecond)
	now := time.Now()
	for from := 0; from < unknown; from += 100 {
		events := make([]string, 100)
		for i := range events {
			n := from + i
			events[i] = callEvent(fmt.Sprintf("miss-%d", n), fmt.Sprintf("nobody%d@contoso.example", n), "c1", "active", now)
		}
		if r := postEvent(t, b, `{"events":[`+strings.Join(events, ",")+`]}`); r.status != http.StatusAccepted {
			t.Fatalf("post: %d %v", r.status, r.body)
		}
	}
	waitSettled(t, b, 2*time.Minute)
	if info := consumerInfo(t, b); info.NumRedelivered != 0 || info.Delivered.Consumer != unknown {
		t.Fatalf("%d deliveries, %d redelivered, for %d events", info.Delivered.Consumer, info.NumRedelivered, unknown)
	}
	lookups := 0
	for _, r := range b.Emulator().Requests() {
		if strings.Contains(r.Path, "/users/nobody") {
			lookups++
		}
	}
	if lookups != unknown {
		t.Fatalf("%d lookups for %d unknown users", lookups, unknown)
	}
	if n := deadLetters(t, b); n != 100 { // the admin API lists 100 by default
		t.Fatalf("%d dead letters listed, want the first 100 of %d", n, unknown)
	}
}
