package sipdialog

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/sipdialog/sipdialogtest"
)

// deadline is how long a test waits for a condition: generous, because it
// only costs time when the test fails.
const deadline = 60 * time.Second

// recorder keeps the events a source publishes.
type recorder struct {
	mu     sync.Mutex
	events []adapters.Event
}

func (r *recorder) publish(_ context.Context, events []adapters.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range events {
		if err := e.Validate(""); err != nil {
			return fmt.Errorf("invalid event published: %w", err)
		}
	}
	r.events = append(r.events, events...)
	return nil
}

// find returns user's first event of one call in state, of any call but
// those in skip (never a snapshot's event for every call).
func (r *recorder) find(user, state string, skip ...string) (adapters.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
next:
	for _, e := range r.events {
		if e.User != user || e.State != state || e.CallID == adapters.AllCalls {
			continue
		}
		for _, s := range skip {
			if e.CallID == s {
				continue next
			}
		}
		return e, true
	}
	return adapters.Event{}, false
}

// snapshots returns user's events that end every call but some.
func (r *recorder) snapshots(user string) []adapters.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []adapters.Event
	for _, e := range r.events {
		if e.User == user && e.CallID == adapters.AllCalls {
			out = append(out, e)
		}
	}
	return out
}

func (r *recorder) forAll() []adapters.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]adapters.Event(nil), r.events...)
}

func (r *recorder) forCall(callID string) []adapters.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []adapters.Event
	for _, e := range r.events {
		if e.CallID == callID {
			out = append(out, e)
		}
	}
	return out
}

// endedFor reports whether the call was published as ended for every one
// of users.
func (r *recorder) endedFor(callID string, users ...string) bool {
	ended := map[string]bool{}
	for _, e := range r.forCall(callID) {
		if e.State == "ended" {
			ended[e.User] = true
		}
	}
	for _, u := range users {
		if !ended[u] {
			return false
		}
	}
	return true
}

// logs is a slog handler that keeps every record's text.
type logs struct {
	mu    sync.Mutex
	lines []string
	attrs []slog.Attr
	root  *logs
}

func newLogs() *logs { l := &logs{}; l.root = l; return l }

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range l.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.root.mu.Lock()
	l.root.lines = append(l.root.lines, b.String())
	l.root.mu.Unlock()
	return nil
}
func (l *logs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logs{root: l.root, attrs: append(append([]slog.Attr{}, l.attrs...), attrs...)}
}
func (l *logs) WithGroup(string) slog.Handler { return l }

// count is how many lines hold every one of parts.
func (l *logs) count(parts ...string) int {
	l.root.mu.Lock()
	defer l.root.mu.Unlock()
	n := 0
next:
	for _, line := range l.root.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		n++
	}
	return n
}

func (l *logs) text() string {
	l.root.mu.Lock()
	defer l.root.mu.Unlock()
	return strings.Join(l.root.lines, "\n")
}

// freePort finds a loopback port free for both UDP and TCP.
func freePort(t *testing.T) int { return sipdialogtest.FreePort(t) }

func slogFor(l *logs) *slog.Logger { return slog.New(l) }

// TestMain silences the SIP library's own logger, which the test phones
// and the fake PBX use.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
