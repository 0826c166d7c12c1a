package writer

import (
	"context"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// TestLongCallOutlivesOtherEvents: a call active at t0 stays set when
// something else happens to the user three hours later, until
// MaxCallDuration (4 h) after its last update, and is forgotten after.
func TestLongCallOutlivesOtherEvents(t *testing.T) {
	h := newHarness(t, nil)
	e, _ := h.start("a")
	h.apply(e, "u1", call("pbx", "c1", "active", 0, false))
	h.settle("u1", inACall)

	h.clock.Advance(3 * time.Hour)
	h.apply(e, "u1", call("zoom", "other", "ended", 180, false))
	st, err := e.State(context.Background(), "contoso.example", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Desired(rules, h.clock.Now()); !adapters.SamePair(got, inACall) {
		t.Fatalf("three hours into a call, after another event, desired %v; calls %v", got, st.Calls)
	}
	h.settle("u1", inACall)

	h.clock.Advance(t0.Add(4*time.Hour - time.Minute).Sub(h.clock.Now()))
	h.settle("u1", inACall)
	h.clock.Advance(time.Minute)
	h.settle("u1", nil)

	h.clock.Advance(time.Hour + time.Minute)
	h.apply(e, "u1", call("zoom", "another", "ended", 301, false))
	st, err = e.State(context.Background(), "contoso.example", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if _, kept := st.Calls["pbx/c1"]; kept {
		t.Fatal("a call silent for MaxCallDuration and the keep window was not forgotten")
	}
}
