package identity

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

const (
	aliceID = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
	bobID   = "66825e03-7ef5-42da-9069-724602c31f6b"
	carolID = "dc74d9bb-6afe-433d-8eaa-e39d80d3a647"
)

// TestPhoneKeysResolvedThroughGraph: a tel: or ext: key missing from the
// directory is looked up once, cached for TTL, remembered as unknown for
// UnknownTTL, shared between concurrent callers, and only in tenants that
// turned phone lookups on.
func TestPhoneKeysResolvedThroughGraph(t *testing.T) {
	clk := newClock()
	var calls atomic.Int32
	release := make(chan struct{})
	d := New(Options{
		Entries: map[string]string{"ext:1001": "alice@contoso.example"},
		Lookup:  func(context.Context, string, string) (string, error) { return aliceID, nil },
		PhoneLookup: func(_ context.Context, tenant, key string) (string, error) {
			calls.Add(1)
			<-release
			if key == "tel:+15551230002" {
				return bobID, nil
			}
			return "", fault.Permanently("unknown user", ErrUnknownUser)
		},
		PhoneTenants: map[string]bool{"on": true},
		TTL:          time.Hour,
		UnknownTTL:   time.Minute,
		Now:          clk.Now,
	})
	ctx := context.Background()
	close(release)

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if id, err := d.Resolve(ctx, "on", "tel:+1 555 123 0002"); err != nil || id != bobID {
				t.Errorf("resolve: %q %v", id, err)
			}
		}()
	}
	wg.Wait()
	if id, err := d.Resolve(ctx, "on", "TEL:+15551230002"); err != nil || id != bobID || calls.Load() > 4 {
		t.Fatalf("cached: %q %v after %d calls", id, err, calls.Load())
	}
	before := calls.Load()
	if _, err := d.Resolve(ctx, "on", "tel:+15551230002"); err != nil || calls.Load() != before {
		t.Fatalf("a cached number asked Graph again (%d → %d)", before, calls.Load())
	}

	// Unknown: remembered for UnknownTTL, then asked again.
	for range 2 {
		if _, err := d.Resolve(ctx, "on", "ext:2002"); !errors.Is(err, ErrUnknownUser) {
			t.Fatalf("unknown extension: %v", err)
		}
	}
	if calls.Load() != before+1 {
		t.Fatalf("unknown extension asked %d times", calls.Load()-before)
	}
	clk.advance(2 * time.Minute)
	_, _ = d.Resolve(ctx, "on", "ext:2002")
	if calls.Load() != before+2 {
		t.Fatal("an unknown extension was remembered past UnknownTTL")
	}

	// The directory wins; a tenant without phone lookups never asks.
	n := calls.Load()
	if id, err := d.Resolve(ctx, "on", "ext:1001"); err != nil || id != aliceID {
		t.Fatalf("directory entry: %q %v", id, err)
	}
	if _, err := d.Resolve(ctx, "off", "tel:+15551230002"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("tenant without phone lookups: %v", err)
	}
	if calls.Load() != n {
		t.Fatal("phone lookups asked Graph for a directory entry or a tenant that has them off")
	}
}

// TestPhonesFind runs the Graph side against the emulator: business
// phones first, then mobile phones, extensions by their attribute, and
// ambiguous or missing numbers as unknown users.
func TestPhonesFind(t *testing.T) {
	em, err := emulator.New(emulator.Config{
		Listen: "127.0.0.1:0",
		Tenants: []emulator.Tenant{{
			ID:   "contoso.example",
			Apps: []emulator.App{{ClientID: "app", ClientSecret: "secret", Roles: []string{"User.Read.All"}}},
			Users: []emulator.User{
				{ID: aliceID, UserPrincipalName: "alice@contoso.example", BusinessPhones: []string{"+15551230001"}, ExtensionAttributes: map[string]string{"extensionAttribute3": "1001"}},
				{ID: bobID, UserPrincipalName: "bob@contoso.example", MobilePhone: "+15551230002", ExtensionAttributes: map[string]string{"extensionAttribute3": "1099"}},
				{ID: carolID, UserPrincipalName: "carol@contoso.example", MobilePhone: "+15551230009", ExtensionAttributes: map[string]string{"extensionAttribute3": "1099"}},
			},
		}},
	}, emulator.WithClock(emulator.NewFakeClock(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))))
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	c, err := graphclient.New(graphclient.Config{TenantID: "contoso.example", ClientID: "app", ClientSecret: "secret", GraphBaseURL: em.GraphURL(), LoginBaseURL: em.LoginURL()})
	if err != nil {
		t.Fatal(err)
	}
	phones := Phones{
		Client: func(string) (UserFinder, error) { return c, nil },
		Config: map[string]config.PhoneLookup{
			"contoso.example": {Enabled: true, Properties: []string{"businessPhones", "mobilePhone"}, ExtensionAttribute: "extensionAttribute3"},
			"no-ext":          {Enabled: true, Properties: []string{"businessPhones"}},
		},
	}
	ctx := context.Background()
	cases := []struct{ tenant, key, want string }{
		{"contoso.example", "tel:+15551230001", aliceID},
		{"contoso.example", "tel:+15551230002", bobID},
		{"contoso.example", "ext:1001", aliceID},
		{"contoso.example", "ext:1099", ""},         // two users
		{"contoso.example", "tel:+15550000000", ""}, // nobody
		{"no-ext", "ext:1001", ""},                  // no attribute: no lookup
	}
	for _, tc := range cases {
		id, err := phones.Find(ctx, tc.tenant, tc.key)
		if tc.want != "" {
			if err != nil || id != tc.want {
				t.Fatalf("%s: %q %v", tc.key, id, err)
			}
			continue
		}
		if class, _ := fault.Of(err); !errors.Is(err, ErrUnknownUser) || class != fault.Permanent {
			t.Fatalf("%s in %s: want a permanent unknown user, got %q %v", tc.key, tc.tenant, id, err)
		}
	}
}

// TestPhoneLookupsShareTheBreaker: phone lookups failing with 5xx open the
// tenant's breaker, which then also turns UPN lookups away at once.
func TestPhoneLookupsShareTheBreaker(t *testing.T) {
	var upnCalls atomic.Int32
	l := NewLookups([]config.Tenant{{ID: "t"}}, func(context.Context, string, string) (string, error) {
		upnCalls.Add(1)
		return aliceID, nil
	}, config.Breaker{Failures: 2, OpenTimeout: time.Hour}, slog.New(slog.DiscardHandler))
	down := l.Through(func(context.Context, string, string) (string, error) {
		return "", &graphclient.Error{StatusCode: 503}
	})
	for range 2 {
		if _, err := down(context.Background(), "t", "tel:+1"); err == nil {
			t.Fatal("a failing phone lookup succeeded")
		}
	}
	_, err := l.Lookup(context.Background(), "t", "alice@contoso.example")
	if class, _ := fault.Of(err); class != fault.Retry || upnCalls.Load() != 0 {
		t.Fatalf("UPN lookup with the breaker open: %v after %d calls", err, upnCalls.Load())
	}
}
