package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

var (
	inACall    = &adapters.Pair{Availability: "Busy", Activity: "InACall"}
	inConf     = &adapters.Pair{Availability: "Busy", Activity: "InAConferenceCall"}
	testMap    = Mapping{Call: inACall, ConferenceCall: inConf, Meeting: inConf, MeetingShowAs: []string{"busy", "oof"}}
	discardLog = slog.New(slog.NewTextHandler(io.Discard, nil))
)

func TestMappingAction(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 30, 0, 0, time.UTC)
	at := func(h, m int) *time.Time { t := time.Date(2026, 11, 23, h, m, 0, 0, time.UTC); return &t }
	tests := []struct {
		name  string
		ev    adapters.Event
		set   *adapters.Pair
		clear bool
	}{
		{"active call", adapters.Event{Type: "call", State: "active"}, inACall, false},
		{"held call", adapters.Event{Type: "call", State: "held"}, inACall, false},
		{"conference", adapters.Event{Type: "call", State: "active", Conference: true}, inConf, false},
		{"ringing unmapped", adapters.Event{Type: "call", State: "ringing"}, nil, false},
		{"ended call", adapters.Event{Type: "call", State: "ended"}, nil, true},
		{"meeting started", adapters.Event{Type: "meeting", State: "started"}, inConf, false},
		{"meeting free", adapters.Event{Type: "meeting", State: "started", ShowAs: "free"}, nil, false},
		{"meeting ended", adapters.Event{Type: "meeting", State: "ended"}, nil, true},
		{"window now", adapters.Event{Type: "meeting", Start: at(10, 0), End: at(11, 0), ShowAs: "busy"}, inConf, false},
		{"window past", adapters.Event{Type: "meeting", Start: at(9, 0), End: at(10, 0), ShowAs: "busy"}, nil, true},
		{"window future", adapters.Event{Type: "meeting", Start: at(11, 0), End: at(12, 0), ShowAs: "busy"}, nil, false},
		{"presence set", adapters.Event{Type: "presence", State: "set", Availability: "DoNotDisturb", Activity: "Presenting"}, &adapters.Pair{Availability: "DoNotDisturb", Activity: "Presenting"}, false},
		{"presence clear", adapters.Event{Type: "presence", State: "clear"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := testMap.action(tt.ev, now)
			if got.clear != tt.clear || (got.set == nil) != (tt.set == nil) || (got.set != nil && *got.set != *tt.set) {
				t.Fatalf("action = %+v, want set %v clear %v", got, tt.set, tt.clear)
			}
		})
	}
}

// fakeGraph is a function-type Graph for unit tests.
type fakeGraph func(op string, p *adapters.Pair) error

func (f fakeGraph) SetPresence(_ context.Context, _, _ string, p adapters.Pair, _ time.Duration) error {
	return f("set", &p)
}
func (f fakeGraph) ClearPresence(context.Context, string, string) error { return f("clear", nil) }

var (
	errServer    = errors.New("503")
	errThrottled = errors.New("429")
	errBadPair   = errors.New("400")
)

func classifyFake(err error) (ErrorClass, time.Duration) {
	switch err {
	case errThrottled:
		return Throttled, 2 * time.Second
	case errBadPair:
		return Permanent, 0
	}
	return Retryable, 0
}

func TestDirectOutcomes(t *testing.T) {
	calls := 0
	var fail error
	g := fakeGraph(func(string, *adapters.Pair) error { calls++; return fail })
	d := NewDirect(g, classifyFake, testMap, 15*time.Minute, BreakerSettings{Failures: 2, OpenTimeout: time.Hour}, discardLog)
	ev := adapters.Event{Type: "call", State: "active", OccurredAt: time.Now()}
	ctx := context.Background()

	fail = errBadPair
	var permanent *PermanentError
	if err := d.Apply(ctx, "t", "u", ev); !errors.As(err, &permanent) {
		t.Fatalf("400: want PermanentError, got %v", err)
	}
	fail = errThrottled
	var retry *RetryError
	if err := d.Apply(ctx, "t", "u", ev); !errors.As(err, &retry) || retry.After != 2*time.Second {
		t.Fatalf("429: want RetryError after 2s, got %v", err)
	}
	// Neither 400 nor 429 trips the breaker; two 503s do.
	fail = errServer
	for range 2 {
		if err := d.Apply(ctx, "t", "u", ev); !errors.As(err, &retry) {
			t.Fatalf("503: want RetryError, got %v", err)
		}
	}
	before := calls
	if err := d.Apply(ctx, "t", "u", ev); !errors.As(err, &retry) || retry.After != time.Hour {
		t.Fatalf("open breaker: want RetryError after the open timeout, got %v", err)
	}
	if calls != before {
		t.Fatal("an open breaker let a call through")
	}
	// Another tenant has its own breaker.
	fail = nil
	if err := d.Apply(ctx, "t2", "u", ev); err != nil {
		t.Fatalf("tenant t2: %v", err)
	}
}

func TestDirectIgnoresStaleEvents(t *testing.T) {
	var ops []string
	g := fakeGraph(func(op string, _ *adapters.Pair) error { ops = append(ops, op); return nil })
	d := NewDirect(g, classifyFake, testMap, 15*time.Minute, BreakerSettings{Failures: 5, OpenTimeout: time.Second}, discardLog)
	t0 := time.Now()
	ctx := context.Background()
	_ = d.Apply(ctx, "t", "u", adapters.Event{Type: "call", State: "ended", OccurredAt: t0.Add(time.Second)})
	_ = d.Apply(ctx, "t", "u", adapters.Event{Type: "call", State: "active", OccurredAt: t0})
	if len(ops) != 1 || ops[0] != "clear" {
		t.Fatalf("a stale active after ended reached Graph: %v", ops)
	}
	// Another call's older event still counts.
	_ = d.Apply(ctx, "t", "u", adapters.Event{Type: "call", CallID: "other", State: "active", OccurredAt: t0})
	if len(ops) != 2 || ops[1] != "set" {
		t.Fatalf("an older event of another call was dropped: %v", ops)
	}
}
