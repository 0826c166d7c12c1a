package state

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/internal/natstest"
)

// openStore opens a store on a fresh in-process JetStream.
func openStore(tb testing.TB, opts Options) *Store {
	tb.Helper()
	js, _ := natstest.Start(tb)
	if opts.Rules.Call == nil {
		opts.Rules = rules
	}
	s, err := Open(context.Background(), js, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestApplyKeepsStateUnderItsSize: claims are evicted to keep the encoded
// state under MaxStateSize, the newest kept; an event whose own claim can
// not fit is refused with ErrStateTooLarge and changes nothing.
func TestApplyKeepsStateUnderItsSize(t *testing.T) {
	const limit = 1024
	e := openStore(t, Options{MaxStateSize: limit, Clock: fixedClock(t0)})
	ctx := context.Background()
	var last string
	for i := range 40 {
		last = fmt.Sprintf("c%02d-%s", i, strings.Repeat("x", 40))
		if err := e.Apply(ctx, "contoso.example", "u1", call("pbx", last, "ringing", 0, false)); err != nil {
			t.Fatal(err)
		}
		entry, err := e.KV().Get(ctx, UserKey("contoso.example", "u1"))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(entry.Value()); n > limit {
			t.Fatalf("state of %d bytes after %d calls, limit %d", n, i+1, limit)
		}
	}
	st, _, err := e.Get(ctx, "contoso.example", "u1")
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
	if class, _ := fault.Of(err); class != fault.Permanent {
		t.Fatalf("a state too large is %v, want permanent: retrying it changes nothing", class)
	}
	after, _, err := e.Get(ctx, "contoso.example", "u1")
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
	e := openStore(b, Options{Clock: fixedClock(t0)})
	ctx := context.Background()
	for i := range b.N {
		if err := e.Apply(ctx, "contoso.example", "agent", call("hunt", fmt.Sprintf("ring-%d", i), "ringing", 0, false)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st, _, err := e.Get(ctx, "contoso.example", "agent")
	if err != nil {
		b.Fatal(err)
	}
	data, _ := json.Marshal(st)
	b.ReportMetric(float64(st.Claims()), "claims")
	b.ReportMetric(float64(len(data)), "state-bytes")
}

// BenchmarkApply measures Store.Apply alone: one op is one event
// persisted into its user's state (read, decode, apply, encode, KV
// compare-and-set on a real in-process JetStream), from GOMAXPROCS
// goroutines over 5,000 users. No HTTP, no worker, and no writer runs.
func BenchmarkApply(b *testing.B) {
	e := openStore(b, Options{Clock: fixedClock(t0)})
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			ev := call("pbx", "c", []string{"active", "ended"}[i%2], int(i), false)
			if err := e.Apply(context.Background(), "contoso.example", fmt.Sprintf("u%d", i%5000), ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// fixedClock is a clock that stays at one time.
type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

// countingKV counts the reads of a bucket.
type countingKV struct {
	jetstream.KeyValue
	gets atomic.Int64
}

func (k *countingKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	k.gets.Add(1)
	return k.KeyValue.Get(ctx, key)
}

// TestApplyStartsFromRecentState: the second event for a user costs no
// read (the store starts from the state it wrote), and two stores (two
// bridges) applying to one user in turns lose nothing: a state changed by
// the other store fails the compare-and-set and is read again.
func TestApplyStartsFromRecentState(t *testing.T) {
	js, _ := natstest.Start(t)
	ctx := context.Background()
	open := func() (*Store, *countingKV) {
		s, err := Open(ctx, js, Options{Rules: rules, Clock: fixedClock(t0)})
		if err != nil {
			t.Fatal(err)
		}
		kv := &countingKV{KeyValue: s.KV()}
		return s.WithKV(kv), kv
	}
	a, akv := open()
	b, _ := open()
	if err := a.Apply(ctx, "contoso.example", "u1", call("pbx", "c0", "active", 0, false)); err != nil {
		t.Fatal(err)
	}
	before := akv.gets.Load()
	if err := a.Apply(ctx, "contoso.example", "u1", call("pbx", "c1", "active", 1, false)); err != nil {
		t.Fatal(err)
	}
	if n := akv.gets.Load() - before; n != 0 {
		t.Fatalf("applying to a state the store just wrote read it %d times, want 0", n)
	}
	for i := 2; i < 12; i++ {
		s := []*Store{a, b}[i%2]
		if err := s.Apply(ctx, "contoso.example", "u1", call("pbx", fmt.Sprintf("c%d", i), "active", i, false)); err != nil {
			t.Fatal(err)
		}
	}
	st, _, err := a.Get(ctx, "contoso.example", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Calls) != 12 {
		t.Fatalf("two stores applying in turns kept %d of 12 calls", len(st.Calls))
	}
	// A duplicate is judged on the stored state, never on a remembered one.
	before = akv.gets.Load()
	if err := a.Apply(ctx, "contoso.example", "u1", call("pbx", "c11", "active", 11, false)); err != nil {
		t.Fatal(err)
	}
	if akv.gets.Load() == before {
		t.Fatal("a duplicate was dropped on a remembered state without reading the stored one")
	}
}

// TestApplyManyEventsOneWrite: events applied together cost one write of
// the state and leave what applying them one by one leaves.
func TestApplyManyEventsOneWrite(t *testing.T) {
	ctx := context.Background()
	together := openStore(t, Options{Clock: fixedClock(t0)})
	oneByOne := openStore(t, Options{Clock: fixedClock(t0)})
	events := []adapters.Event{
		call("pbx", "c1", "ringing", 0, false), call("pbx", "c1", "active", 1, false),
		call("pbx", "c2", "active", 2, true), call("pbx", "c1", "ended", 3, false),
	}
	if err := together.Apply(ctx, "contoso.example", "u1", events...); err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if err := oneByOne.Apply(ctx, "contoso.example", "u1", ev); err != nil {
			t.Fatal(err)
		}
	}
	got, rev, err := together.Get(ctx, "contoso.example", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if rev != 1 {
		t.Fatalf("four events applied together took %d writes, want 1", rev)
	}
	want, _, err := oneByOne.Get(ctx, "contoso.example", "u1")
	if err != nil {
		t.Fatal(err)
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("applied together:\n%s\none by one:\n%s", gotJSON, wantJSON)
	}
}

// TestTakeSaysWhyEventsChangedNothing: Take answers, per event, whether
// it was taken in or why not, and keeps the taken ones' acceptance in
// Waiting (superseded ones too: their effect travels with the later one).
func TestTakeSaysWhyEventsChangedNothing(t *testing.T) {
	e := openStore(t, Options{Clock: fixedClock(t0)})
	ctx := context.Background()
	accepted := t0.Add(-time.Second)
	in := func(ev adapters.Event) Incoming { return Incoming{Event: ev, Accepted: accepted} }
	if _, err := e.Take(ctx, "contoso.example", "u1", in(call("pbx", "c1", "active", 5, false))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		events []adapters.Event
		want   []string
	}{
		{"older", []adapters.Event{call("pbx", "c1", "ringing", 4, false)}, []string{ReasonOlder}},
		{"duplicate", []adapters.Event{{ID: "again", Source: "pbx", Type: "call", CallID: "c1", State: "active", OccurredAt: at(5)}}, []string{ReasonDuplicate}},
		{"superseded within a batch", []adapters.Event{call("pbx", "c2", "ringing", 6, false), call("pbx", "c2", "active", 7, false), call("pbx", "c3", "active", 7, false)}, []string{ReasonSuperseded, "", ""}},
		{"taken in", []adapters.Event{call("pbx", "c1", "ended", 8, false)}, []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := make([]Incoming, len(tc.events))
			for i, ev := range tc.events {
				events[i] = in(ev)
			}
			got, err := e.Take(ctx, "contoso.example", "u1", events...)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("reasons %q, want %q", got, tc.want)
			}
		})
	}
	st, _, err := e.Get(ctx, "contoso.example", "u1")
	if err != nil {
		t.Fatal(err)
	}
	var waiting []string
	for _, w := range st.Waiting {
		if !w.Accepted.Equal(accepted) {
			t.Errorf("waiting %s accepted at %s, want %s", w.Event, w.Accepted, accepted)
		}
		waiting = append(waiting, w.Event)
	}
	want := []string{"pbx:c1active", "pbx:c2ringing", "pbx:c2active", "pbx:c3active", "pbx:c1ended"}
	if fmt.Sprint(waiting) != fmt.Sprint(want) {
		t.Fatalf("waiting %q, want %q (every event taken in, none ignored)", waiting, want)
	}
}

// TestWaitingBounded: a user whose events keep coming while Graph is not
// called keeps the newest MaxWaiting.
func TestWaitingBounded(t *testing.T) {
	e := openStore(t, Options{Clock: fixedClock(t0)})
	ctx := context.Background()
	for i := range MaxWaiting + 10 {
		ev := call("pbx", "c1", []string{"active", "held"}[i%2], i, false)
		ev.ID = fmt.Sprint("e", i)
		if _, err := e.Take(ctx, "contoso.example", "u1", Incoming{Event: ev, Accepted: t0.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	st, _, err := e.Get(ctx, "contoso.example", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Waiting) != MaxWaiting || st.Waiting[len(st.Waiting)-1].Event != fmt.Sprint("pbx:e", MaxWaiting+9) || st.Waiting[0].Event != "pbx:e10" {
		t.Fatalf("%d waiting, %v..., want the newest %d", len(st.Waiting), st.Waiting[0], MaxWaiting)
	}
}

// TestUserKey: a user's key is the hex of the lower-cased tenant and
// user id, as stored keys have always been.
func TestUserKey(t *testing.T) {
	for _, tc := range []struct{ tenant, user, want string }{
		{"contoso.example", "u1", "u.636f6e746f736f2e6578616d706c65.7531"},
		{"Contoso.Example", "Alice@Contoso.Example", "u.636f6e746f736f2e6578616d706c65.616c69636540636f6e746f736f2e6578616d706c65"},
		{"t", "ÄÖ\xff", "u.74.c3a4c3b6efbfbd"},
		{"", "", "u.."},
	} {
		if got := UserKey(tc.tenant, tc.user); got != tc.want {
			t.Errorf("UserKey(%q, %q) = %s, want %s", tc.tenant, tc.user, got, tc.want)
		}
		if got, want := UserKey(tc.tenant, tc.user), "u."+TenantToken(tc.tenant)+"."+hex.EncodeToString([]byte(strings.ToLower(tc.user))); got != want {
			t.Errorf("UserKey(%q, %q) = %s, want %s", tc.tenant, tc.user, got, want)
		}
	}
}
