package eventlog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestFullReason(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string // a part of the reason; "" for not full
	}{
		{"store full", &jetstream.APIError{Code: 503, ErrorCode: 10023, Description: "insufficient resources"}, "store is full"},
		{"account limit", fmt.Errorf("nats: %w", &jetstream.APIError{Code: 400, ErrorCode: 10002, Description: "resource limits exceeded for account"}), "store is full"},
		{"stream bytes", &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum bytes exceeded"}, "events stream reached its limit"},
		{"stream messages", &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum messages exceeded"}, "events stream reached its limit"},
		{"other store failure", &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "disk on fire"}, ""},
		{"timeout", errors.New("context deadline exceeded"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fullReason(tt.err)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("fullReason = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFullErrorMatches(t *testing.T) {
	err := fmt.Errorf("publish: %w", &fullError{reason: "x"})
	if !errors.Is(err, ErrFull) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("%v does not match ErrFull and ErrUnavailable", err)
	}
}

// TestRefusalsLogOnce: a run of refusals is logged when it starts, then
// once a minute with a count, and its end once; Ready remembers it for
// refusalMemory.
func TestRefusalsLogOnce(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	var r refusals
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for i := range 1000 {
		r.refused(log, "the store is full", start.Add(time.Duration(i)*50*time.Millisecond)) // 50 s of refusals
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Fatalf("%d lines for 50 s of refusals, want 1:\n%s", n, out.String())
	}
	r.refused(log, "the store is full", start.Add(61*time.Second))
	if !strings.Contains(out.String(), "still refuses") || !strings.Contains(out.String(), "refused=1000") {
		t.Fatalf("no summary after a minute:\n%s", out.String())
	}
	if got := r.recent(start.Add(61*time.Second + refusalMemory - time.Millisecond)); got == "" {
		t.Fatal("a refusal just now is not remembered")
	}
	if got := r.recent(start.Add(61*time.Second + refusalMemory)); got != "" {
		t.Fatalf("a refusal %s ago is still remembered: %q", refusalMemory, got)
	}
	r.stored(log, start.Add(62*time.Second))
	r.stored(log, start.Add(63*time.Second))
	if n := strings.Count(out.String(), "takes writes again"); n != 1 {
		t.Fatalf("the end of the refusals logged %d times:\n%s", n, out.String())
	}
	if got := r.recent(start.Add(62 * time.Second)); got != "" {
		t.Fatalf("refusal remembered after a write succeeded: %q", got)
	}
}
