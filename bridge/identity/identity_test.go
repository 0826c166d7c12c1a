package identity

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable clock that counts how often it is read.
type clock struct {
	mu    sync.Mutex
	now   time.Time
	reads int
	read  chan struct{} // gets a value on every read, when not nil
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	if c.read != nil {
		c.read <- struct{}{}
	}
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestConcurrentMissesShareOneLookup: users resolving the same UPN at once
// make one Graph request between them.
func TestConcurrentMissesShareOneLookup(t *testing.T) {
	const n = 8
	clk := newClock()
	clk.read = make(chan struct{}, 100)
	release := make(chan struct{})
	var calls atomic.Int32
	d := New(Options{
		Lookup: func(ctx context.Context, tenant, upn string) (string, error) {
			calls.Add(1)
			<-release
			return "id-" + upn, nil
		},
		TTL: time.Hour,
		Now: clk.Now,
	})
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = d.Resolve(context.Background(), "t", "Alice@Contoso.example")
		}()
	}
	// Every caller has looked at the cache and found nothing before the
	// first lookup answers.
	deadline := time.After(30 * time.Second)
	for range n {
		select {
		case <-clk.read:
		case <-deadline:
			t.Fatal("the callers did not all look at the cache")
		}
	}
	close(release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || ids[i] != "id-alice@contoso.example" {
			t.Fatalf("caller %d: %q %v", i, ids[i], errs[i])
		}
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("%d concurrent misses made %d lookups, want 1", n, got)
	}
}

// TestLookupOutcomesCached: an id is kept for TTL (a GUID one in its 16
// bytes, given back the same), an unknown user for UnknownTTL, a
// transient failure not at all; tenants do not share entries.
func TestLookupOutcomesCached(t *testing.T) {
	unknown := fmt.Errorf("%w: nobody@contoso.example", ErrUnknownUser)
	transient := errors.New("503 from Graph")
	tests := []struct {
		name      string
		id        string
		answer    error
		wait      time.Duration // before the second resolve
		wantCalls int32
	}{
		{"known, within ttl", "id-1", nil, 59 * time.Minute, 1},
		{"known GUID, within ttl", "3a7c0000-0000-4000-8000-00000000002a", nil, 59 * time.Minute, 1},
		{"known upper-case GUID, within ttl", "3A7C0000-0000-4000-8000-00000000002A", nil, 59 * time.Minute, 1},
		{"known, ttl passed", "id-1", nil, time.Hour, 2},
		{"unknown, within unknown ttl", "", unknown, 59 * time.Second, 1},
		{"unknown, unknown ttl passed", "", unknown, time.Minute, 2},
		{"transient failure", "", transient, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			var calls atomic.Int32
			d := New(Options{
				Lookup: func(ctx context.Context, tenant, upn string) (string, error) {
					calls.Add(1)
					return tt.id, tt.answer
				},
				TTL:        time.Hour,
				UnknownTTL: time.Minute,
				Now:        clk.Now,
			})
			for i := range 2 {
				if i == 1 {
					clk.advance(tt.wait)
				}
				id, err := d.Resolve(context.Background(), "t", "nobody@contoso.example")
				if !errors.Is(err, tt.answer) || (err == nil && id != tt.id) {
					t.Fatalf("resolve %d: %q %v, want %v", i, id, err, tt.answer)
				}
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Fatalf("%d lookups, want %d", got, tt.wantCalls)
			}
			if _, err := d.Resolve(context.Background(), "other", "nobody@contoso.example"); !errors.Is(err, tt.answer) {
				t.Fatal(err)
			}
			if got := calls.Load(); got != tt.wantCalls+1 {
				t.Fatalf("another tenant's user was answered from the cache")
			}
		})
	}
}

// TestExpiredEntriesEvicted: users not seen for longer than their TTL
// leave the cache, so it holds only users seen recently.
func TestExpiredEntriesEvicted(t *testing.T) {
	clk := newClock()
	d := New(Options{
		Lookup: func(ctx context.Context, tenant, upn string) (string, error) {
			if upn == "gone@contoso.example" {
				return "", ErrUnknownUser
			}
			return "id-" + upn, nil
		},
		TTL:        10 * time.Minute,
		UnknownTTL: time.Minute,
		Now:        clk.Now,
	})
	resolve := func(upn string) {
		t.Helper()
		if _, err := d.Resolve(context.Background(), "t", upn); err != nil && !errors.Is(err, ErrUnknownUser) {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		resolve(fmt.Sprintf("user%d@contoso.example", i))
	}
	resolve("gone@contoso.example")
	if d.Len() != 101 {
		t.Fatalf("%d cached, want 101", d.Len())
	}
	clk.advance(2 * time.Minute)
	resolve("fresh@contoso.example")
	if d.Len() != 101 {
		t.Fatalf("%d cached after the unknown user expired, want 101 (100 known and the fresh one)", d.Len())
	}
	clk.advance(10 * time.Minute)
	resolve("newest@contoso.example")
	if d.Len() != 1 {
		t.Fatalf("%d cached after every ttl passed, want only the newest", d.Len())
	}
}

// TestResolveWithoutLookup: object ids and directory entries need no
// Graph request; a name that is neither is unknown.
func TestResolveWithoutLookup(t *testing.T) {
	d := New(Options{
		Entries: map[string]string{"EXT:1001": "FA8BF3DC-ECA7-46B7-BAD1-DB199B62AFC3"},
		Lookup: func(ctx context.Context, tenant, upn string) (string, error) {
			t.Fatalf("lookup of %s", upn)
			return "", nil
		},
	})
	for _, tt := range []struct{ user, want string }{
		{"ext:1001", "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"},
		{"66825E03-7EF5-42DA-9069-724602C31F6B", "66825e03-7ef5-42da-9069-724602c31f6b"},
	} {
		if got, err := d.Resolve(context.Background(), "t", tt.user); err != nil || got != tt.want {
			t.Errorf("%s: %q %v, want %q", tt.user, got, err, tt.want)
		}
	}
	if _, err := d.Resolve(context.Background(), "t", "ext:9999"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("ext:9999: %v, want unknown", err)
	}
}

func TestIsObjectID(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"fa8bf3dc-eca7-46b7-bad1-db199b62afc3", true},
		{"FA8BF3DC-ECA7-46B7-BAD1-DB199B62AFC3", true},
		{"fa8bf3dc-eca7-46b7-bad1-db199b62afc", false},
		{"fa8bf3dc-eca7-46b7-bad1-db199b62afc3a", false},
		{"fa8bf3dceeca7-46b7-bad1-db199b62afc3", false},
		{"fa8bf3dc-eca7-46b7-bad1-db199b62afg3", false},
		{"alice@contoso.example", false},
		{"", false},
	} {
		if got := IsObjectID(tt.in); got != tt.want {
			t.Errorf("IsObjectID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
