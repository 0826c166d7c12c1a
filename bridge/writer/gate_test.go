package writer

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

func newTestGate() *gate {
	return &gate{probeFirst: 30 * time.Second, probeMax: 10 * time.Minute, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestGateAllows(t *testing.T) {
	errRefused := errors.New("403")
	for _, tt := range []struct {
		name     string
		setup    func(g *gate)
		now      time.Time
		inFlight int
		want     bool
	}{
		{"open", func(g *gate) {}, at(0), 3, true},
		{"paused", func(g *gate) { g.pause(at(2)) }, at(1), 0, false},
		{"pause over, the probe goes alone", func(g *gate) { g.pause(at(2)) }, at(2), 0, true},
		{"pause over, a call in flight", func(g *gate) { g.pause(at(2)) }, at(3), 1, false},
		{"pause answered", func(g *gate) { g.pause(at(2)); g.answered(at(2)) }, at(3), 2, true},
		{"an answer to a call sent before the pause ended", func(g *gate) { g.pause(at(2)); g.answered(at(1)) }, at(3), 1, false},
		{"an answer sent at an unknown time", func(g *gate) { g.pause(at(2)); g.answered(time.Time{}) }, at(3), 1, false},
		{"refused", func(g *gate) { g.refuse(at(0), errRefused) }, at(0).Add(29 * time.Second), 0, false},
		{"refused, the wait over", func(g *gate) { g.refuse(at(0), errRefused) }, at(0).Add(30 * time.Second), 0, true},
		{"refused, the wait over, a call in flight", func(g *gate) { g.refuse(at(0), errRefused) }, at(1), 1, false},
		{"refusal ended", func(g *gate) { g.refuse(at(0), errRefused); g.accepted() }, at(0), 4, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGate()
			tt.setup(g)
			if got := g.allows(tt.now, tt.inFlight); got != tt.want {
				t.Fatalf("allows = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestGatePauseOnlyLengthens: a shorter Retry-After never shortens a
// pause, and only a lengthened pause is reported (to be recorded).
func TestGatePauseOnlyLengthens(t *testing.T) {
	g := newTestGate()
	for _, tt := range []struct {
		until time.Time
		want  bool
		held  time.Time
	}{
		{at(2), true, at(2)},
		{at(1), false, at(2)},
		{at(2), false, at(2)},
		{at(3), true, at(3)},
	} {
		if got := g.pause(tt.until); got != tt.want || !g.pausedUntil.Equal(tt.held) {
			t.Fatalf("pause(%s) = %v, paused until %s; want %v, %s", tt.until.Sub(t0), got, g.pausedUntil.Sub(t0), tt.want, tt.held.Sub(t0))
		}
	}
}

// TestGateProbeBackoff: refused probes double the wait up to the
// maximum; a refusal answered to a call sent during the wait changes
// nothing; acceptance ends the refusal and the next one starts over.
func TestGateProbeBackoff(t *testing.T) {
	g := newTestGate()
	now := t0
	for _, want := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute} {
		g.refuse(now, errors.New("403 Forbidden"))
		reason, until := g.refused()
		if reason != "403 Forbidden" || until.Sub(now) != want {
			t.Fatalf("refused at %s: %q until %s later, want %s", now.Sub(t0), reason, until.Sub(now), want)
		}
		g.refuse(now.Add(time.Second), errors.New("late answer")) // sent before the wait began
		if r, u := g.refused(); r != reason || !u.Equal(until) {
			t.Fatalf("an answer during the wait changed the refusal to %q until %s", r, u.Sub(t0))
		}
		now = until
	}
	g.accepted()
	if reason, _ := g.refused(); reason != "" {
		t.Fatalf("still refused after acceptance: %q", reason)
	}
	g.refuse(now, errors.New("again"))
	if _, until := g.refused(); until.Sub(now) != 30*time.Second {
		t.Fatalf("a new refusal waits %s, want to start over at 30s", until.Sub(now))
	}
}
