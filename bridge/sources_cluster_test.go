package bridge_test

import (
	"context"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
)

// calSource is a caldav source for clusterConfig's sources list; url is
// the calendar it polls.
func calSource(url string) string {
	return `  - name: cal
    type: caldav
    caldav:
      poll_interval: 1s
      calendars: [{user: alice@contoso.example, url: "` + url + `"}]
`
}

// TestConnectOutSourceOneBridgeAtATime: of three bridges on one NATS,
// only one runs a connect-out source; when it stops, another takes it over
// at once; when that one loses NATS (as if it died), its lease runs out
// and the last takes over. (The calendar here answers nothing: which
// bridge polls is what counts.)
func TestConnectOutSourceOneBridgeAtATime(t *testing.T) {
	natsURL, em := sharedParts(t)
	yaml := clusterConfig(natsURL, em.Addr()) + calSource("http://127.0.0.1:1/alice/calendar/")
	bridges := []*bridge.Bridge{startClusterBridgeFrom(t, yaml), startClusterBridgeFrom(t, yaml), startClusterBridgeFrom(t, yaml)}
	runner := func() int {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			found, n := -1, 0
			for i, b := range bridges {
				if b != nil && b.Running("cal") {
					found, n = i, n+1
				}
			}
			if n > 1 {
				t.Fatalf("%d bridges run the source", n)
			}
			if found >= 0 {
				return found
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("no bridge runs the source")
		return -1
	}
	first := runner()
	if bridges[first].Running("demo") {
		t.Error("a webhook source is reported running")
	}
	if err := bridges[first].Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if bridges[first].Running("cal") {
		t.Fatal("a stopped bridge still runs the source")
	}
	bridges[first] = nil
	second := runner()

	// The second loses NATS: it can renew no more and stops the source;
	// the lease's TTL frees the source for the last bridge.
	cut := bridges[second]
	bridges[second] = nil
	cut.Queue().Conn().Close()
	last := runner()
	deadline := time.Now().Add(30 * time.Second)
	for cut.Running("cal") {
		if time.Now().After(deadline) {
			t.Fatal("a bridge without NATS still runs the source")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if last == first || last == second {
		t.Fatalf("bridge %d runs the source after %d and %d left", last, first, second)
	}
}
