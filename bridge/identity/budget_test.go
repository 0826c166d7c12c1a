package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/graphclient"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ now atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.now.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.now.Add(int64(d)) }

// TestLookupBudget: a flood of made-up users costs at most lookup_budget
// Graph calls in any lookup_budget_window; the rest are refused at once as
// permanent with reason lookup_budget and logged once per window; users
// that need no lookup (an object id, a user resolved before) still
// resolve; once the window has passed, lookups go again.
func TestLookupBudget(t *testing.T) {
	clock := &fakeClock{}
	clock.now.Store(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano())
	var calls atomic.Int32
	var logs bytes.Buffer
	lookups := NewLookups([]config.Tenant{{ID: "t", LookupBudget: 3, LookupBudgetWindow: time.Minute}},
		func(_ context.Context, _, upn string) (string, error) {
			calls.Add(1)
			if upn == "alice@contoso.example" {
				return aliceID, nil
			}
			return "", &graphclient.Error{StatusCode: 404}
		}, config.Breaker{Failures: 5, OpenTimeout: time.Minute}, slog.New(slog.NewTextHandler(&logs, nil))).WithClock(clock.Now)
	d := New(Options{Lookup: lookups.Lookup, TTL: time.Hour, UnknownTTL: time.Minute, Now: clock.Now})
	ctx := context.Background()

	if id, err := d.Resolve(ctx, "t", "alice@contoso.example"); err != nil || id != aliceID {
		t.Fatalf("alice: %q %v", id, err)
	}
	overBudget := 0
	for i := range 100 {
		_, err := d.Resolve(ctx, "t", fmt.Sprintf("nobody%d@contoso.example", i))
		var ferr *fault.Error
		if !errors.As(err, &ferr) || ferr.Class != fault.Permanent {
			t.Fatalf("made-up user %d: %v, want a permanent failure", i, err)
		}
		if ferr.Reason == ReasonLookupBudget {
			overBudget++
		}
	}
	if calls.Load() != 3 || overBudget != 98 {
		t.Fatalf("%d Graph lookups and %d refused for the budget, want 3 (alice and two made-up users) and 98", calls.Load(), overBudget)
	}
	for _, user := range []string{"alice@contoso.example", "FA8BF3DC-ECA7-46B7-BAD1-DB199B62AFC3"} {
		if id, err := d.Resolve(ctx, "t", user); err != nil || id != aliceID {
			t.Fatalf("%s with the budget spent: %q %v", user, id, err)
		}
	}
	if n := strings.Count(logs.String(), "user lookups over budget"); n != 1 {
		t.Fatalf("the spent budget was logged %d times, want once:\n%s", n, logs.String())
	}

	clock.Advance(59 * time.Second)
	if _, err := d.Resolve(ctx, "t", "late@contoso.example"); !isReason(err, ReasonLookupBudget) || calls.Load() != 3 {
		t.Fatalf("within the window: %v after %d lookups, want the budget spent", err, calls.Load())
	}
	clock.Advance(time.Second)
	if _, err := d.Resolve(ctx, "t", "late@contoso.example"); !errors.Is(err, ErrUnknownUser) || calls.Load() != 4 {
		t.Fatalf("a window later: %v after %d lookups, want a lookup and an unknown user", err, calls.Load())
	}
}

func isReason(err error, reason string) bool {
	var ferr *fault.Error
	return errors.As(err, &ferr) && ferr.Reason == reason
}

// TestLookupBudgetShared: Allow and Wait spend the same budget as the
// lookups, and Wait gives up at once, asking for a retry after the
// budget has room, when that is further away than it may wait.
func TestLookupBudgetShared(t *testing.T) {
	clock := &fakeClock{}
	clock.now.Store(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano())
	var calls atomic.Int32
	lookups := NewLookups([]config.Tenant{{ID: "t", LookupBudget: 2, LookupBudgetWindow: time.Minute}},
		func(context.Context, string, string) (string, error) { calls.Add(1); return aliceID, nil },
		config.Breaker{Failures: 5, OpenTimeout: time.Minute}, slog.New(slog.DiscardHandler)).WithClock(clock.Now)
	if _, ok := lookups.Allow("t"); !ok {
		t.Fatal("Allow: no room in a fresh budget")
	}
	if err := lookups.Wait(context.Background(), "t", 0); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	clock.Advance(10 * time.Second)
	err := lookups.Wait(context.Background(), "t", time.Second)
	class, after := fault.Of(err)
	if class != fault.Retry || after != 50*time.Second || !isReason(err, ReasonLookupBudget) {
		t.Fatalf("Wait with the budget spent: %v (%s after %s), want a retry after 50s", err, class, after)
	}
	if _, err := lookups.Lookup(context.Background(), "t", "alice@contoso.example"); !isReason(err, ReasonLookupBudget) || calls.Load() != 0 {
		t.Fatalf("a lookup after Allow and Wait spent the budget: %v, %d calls", err, calls.Load())
	}
	if _, ok := lookups.Allow("elsewhere"); ok {
		t.Fatal("Allow: a tenant not configured has a budget")
	}
}

// TestUnknownUserSaidOnce: the error of an unknown user, as the dead
// letters show it, says "unknown user" once and names the user once.
func TestUnknownUserSaidOnce(t *testing.T) {
	lookups := NewLookups([]config.Tenant{{ID: "t"}},
		func(context.Context, string, string) (string, error) { return "", &graphclient.Error{StatusCode: 404} },
		config.Breaker{Failures: 5, OpenTimeout: time.Minute}, slog.New(slog.DiscardHandler))
	r := Resolver{Directory: New(Options{Lookup: lookups.Lookup, UnknownTTL: time.Minute})}
	for _, user := range []string{"nobody@contoso.example", "ext:404"} {
		_, err := r.Resolve(context.Background(), "t", user)
		if class, _ := fault.Of(err); class != fault.Permanent || !errors.Is(err, ErrUnknownUser) {
			t.Fatalf("%s: %v, want a permanent unknown user", user, err)
		}
		if msg := err.Error(); strings.Count(msg, "unknown user") != 1 || strings.Count(msg, user) != 1 || !strings.HasPrefix(msg, "unknown user: ") {
			t.Errorf("%s: %q, want \"unknown user: \" once and the user once", user, msg)
		}
	}
}
