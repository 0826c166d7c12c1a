package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
	if got, _ := st.Desired(rules, h.clock.Now()); !samePair(got, inACall) {
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

// TestApplyKeepsStateUnderItsSize: claims are evicted to keep the encoded
// state under MaxStateSize, the newest kept; an event whose own claim can
// not fit is refused with ErrStateTooLarge and changes nothing.
func TestApplyKeepsStateUnderItsSize(t *testing.T) {
	const limit = 1024
	h := newHarness(t, func(o *Options) { o.MaxStateSize = limit })
	e, _ := h.start("a")
	ctx := context.Background()
	var last string
	for i := range 40 {
		last = fmt.Sprintf("c%02d-%s", i, strings.Repeat("x", 40))
		h.apply(e, "u1", call("pbx", last, "ringing", 0, false))
		entry, err := e.store.kv.Get(ctx, userKey("contoso.example", "u1"))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(entry.Value()); n > limit {
			t.Fatalf("state of %d bytes after %d calls, limit %d", n, i+1, limit)
		}
	}
	st, err := e.State(ctx, "contoso.example", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Calls["pbx/"+last]; !ok {
		t.Fatal("the newest call was evicted")
	}

	big := call("pbx", strings.Repeat("<", adapters.MaxStringLength), "active", 0, false)
	err = e.Apply(ctx, "contoso.example", "u1", big)
	if !errors.Is(err, ErrStateTooLarge) {
		t.Fatalf("Apply of a claim larger than the limit: %v, want ErrStateTooLarge", err)
	}
	after, err := e.State(ctx, "contoso.example", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Calls) != len(st.Calls) || after.Calls["pbx/"+big.CallID] != nil {
		t.Fatal("a refused event changed the state")
	}
}

// BenchmarkApplyCrowdedUser applies b.N ringing calls, each with its own
// call id, to one user: the time per event stays the same however large
// b.N is, because the state keeps at most MaxClaims claims.
func BenchmarkApplyCrowdedUser(b *testing.B) {
	js, _ := startJetStream(b)
	e, err := New(context.Background(), Options{JetStream: js, Graph: newFakeGraph(&fakeClock{now: t0}), Classify: classify, Rules: rules})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := range b.N {
		if err := e.Apply(ctx, "contoso.example", "agent", call("hunt", fmt.Sprintf("ring-%d", i), "ringing", 0, false)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st, err := e.State(ctx, "contoso.example", "agent")
	if err != nil {
		b.Fatal(err)
	}
	data, _ := json.Marshal(st)
	b.ReportMetric(float64(st.Claims()), "claims")
	b.ReportMetric(float64(len(data)), "state-bytes")
}
