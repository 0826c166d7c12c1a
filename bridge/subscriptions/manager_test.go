package subscriptions

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters/graphcalendar"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

const (
	tenant   = "contoso.example"
	clientID = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	secret   = "demo-secret"
	alice    = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
	bob      = "66825e03-7ef5-42da-9069-724602c31f6b"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

type fixture struct {
	em      *emulator.Emulator
	clock   *emulator.FakeClock
	client  *graphclient.Client
	m       *Manager
	writing atomic.Bool
	hook    string
}

// newFixture serves the emulator on a fake clock and a notification
// endpoint that answers validations and hands lifecycle notifications to
// the manager.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: emulator.NewFakeClock(t0)}
	em, err := emulator.New(emulator.Config{
		Listen: "127.0.0.1:0",
		Tenants: []emulator.Tenant{{
			ID:   tenant,
			Apps: []emulator.App{{ClientID: clientID, ClientSecret: secret, Roles: []string{"Calendars.Read"}}},
			Users: []emulator.User{
				{ID: alice, UserPrincipalName: "alice@contoso.example"},
				{ID: bob, UserPrincipalName: "bob@contoso.example"},
			},
		}},
	}, emulator.WithClock(f.clock))
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	f.em = em
	f.client, err = graphclient.New(graphclient.Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret, GraphBaseURL: em.GraphURL(), LoginBaseURL: em.LoginURL()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token := r.URL.Query().Get("validationToken"); token != "" {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, token)
			return
		}
		var body struct {
			Value []struct{ SubscriptionID, LifecycleEvent string } `json:"value"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		for _, v := range body.Value {
			if v.LifecycleEvent != "" {
				f.m.HandleLifecycle("calendar", graphcalendar.Lifecycle{SubscriptionID: v.SubscriptionID, Event: v.LifecycleEvent})
			}
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	f.hook = srv.URL + "/v1/hooks/calendar"
	f.writing.Store(true)
	f.m = New(Options{
		Sources: []Source{{
			Name: "calendar", Tenant: tenant, Users: []string{alice, "bob@contoso.example"},
			NotificationURL: f.hook, ClientState: "calendar-client-state", Lifetime: 72 * time.Hour, RenewBefore: 24 * time.Hour,
		}},
		Client:  func(string) (Client, error) { return f.client, nil },
		Writing: func(string) bool { return f.writing.Load() },
		Now:     f.clock.Now,
	})
	return f
}

// expirations maps each live subscription's resource to its expiration.
func (f *fixture) expirations() map[string]time.Time {
	out := map[string]time.Time{}
	for _, s := range f.em.Subscriptions() {
		out[s.Resource] = s.ExpirationDateTime
	}
	return out
}

func TestManagerKeepsOneSubscriptionPerUser(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	f.writing.Store(false)
	f.m.Reconcile(ctx)
	if n := len(f.em.Subscriptions()); n != 0 {
		t.Fatalf("a bridge without the lease created %d subscriptions", n)
	}

	f.writing.Store(true)
	f.m.Reconcile(ctx)
	f.m.Reconcile(ctx)
	exp := f.expirations()
	if len(exp) != 2 || !exp["users/"+alice+"/events"].Equal(t0.Add(72*time.Hour)) || !exp["users/bob@contoso.example/events"].Equal(t0.Add(72*time.Hour)) {
		t.Fatalf("after two rounds: %v", exp)
	}

	// Not yet due: nothing renewed. Due: renewed before expiry.
	f.clock.Advance(47 * time.Hour)
	f.m.Reconcile(ctx)
	if st := f.m.Stats(); st.Renewed != 0 || st.Created != 2 {
		t.Fatalf("renewed too early: %+v", st)
	}
	f.clock.Advance(2 * time.Hour)
	f.m.Reconcile(ctx)
	if exp := f.expirations(); len(exp) != 2 || !exp["users/"+alice+"/events"].Equal(t0.Add(121*time.Hour)) {
		t.Fatalf("after renewal: %v %+v", exp, f.m.Stats())
	}
	f.clock.Advance(24 * time.Hour) // past the first expiration
	if len(f.em.Subscriptions()) != 2 {
		t.Fatal("renewed subscriptions expired")
	}

	// Removed by Graph without a word: created again next round.
	for _, s := range f.em.Subscriptions() {
		if s.Resource == "users/"+alice+"/events" {
			f.em.RemoveSubscription(s.ID)
		}
	}
	f.m.Reconcile(ctx)
	if exp := f.expirations(); len(exp) != 2 || f.m.Stats().Created != 3 {
		t.Fatalf("after removal: %v %+v", exp, f.m.Stats())
	}

	// Expired while no bridge held the lease: created again.
	f.writing.Store(false)
	f.clock.Advance(100 * time.Hour)
	if len(f.em.Subscriptions()) != 0 {
		t.Fatal("subscriptions outlived their expiration")
	}
	f.writing.Store(true)
	f.m.Reconcile(ctx)
	if exp := f.expirations(); len(exp) != 2 {
		t.Fatalf("after expiry: %v", exp)
	}
}

func TestManagerHandlesLifecycleNotifications(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.m.Reconcile(ctx)
	subs := f.em.Subscriptions()
	if len(subs) != 2 {
		t.Fatalf("%d subscriptions", len(subs))
	}

	// reauthorizationRequired: renewed although not due.
	f.clock.Advance(time.Hour)
	if err := f.em.SendLifecycle(ctx, subs[0].ID, "reauthorizationRequired"); err != nil {
		t.Fatal(err)
	}
	f.m.Reconcile(ctx)
	if st := f.m.Stats(); st.Renewed != 1 {
		t.Fatalf("after reauthorizationRequired: %+v", st)
	}
	if exp := f.expirations()[subs[0].Resource]; !exp.Equal(t0.Add(73 * time.Hour)) {
		t.Fatalf("reauthorized subscription expires %v", exp)
	}

	// subscriptionRemoved: created again.
	if err := f.em.SendLifecycle(ctx, subs[1].ID, "subscriptionRemoved"); err != nil {
		t.Fatal(err)
	}
	f.m.Reconcile(ctx)
	if exp := f.expirations(); len(exp) != 2 || f.m.Stats().Created != 3 {
		t.Fatalf("after subscriptionRemoved: %v %+v", exp, f.m.Stats())
	}

	// missed: counted.
	if err := f.em.SendLifecycle(ctx, f.em.Subscriptions()[0].ID, "missed"); err != nil {
		t.Fatal(err)
	}
	if f.m.Stats().Missed != 1 {
		t.Fatalf("missed not counted: %+v", f.m.Stats())
	}
}

func TestManagerBacksOffOnThrottlingAndOutages(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			f.em.FailSubscriptions(1, status)
			f.m.Reconcile(ctx)
			if st := f.m.Stats(); st.Failed != 1 || st.Created != 0 {
				t.Fatalf("first round: %+v", st)
			}
			// Paused: a round before the pause ends makes no call.
			f.em.FailSubscriptions(1, status)
			f.m.Reconcile(ctx)
			if st := f.m.Stats(); st.Failed != 1 || len(f.em.Subscriptions()) != 0 {
				t.Fatalf("paused round called Graph: %+v", st)
			}
			f.em.FailSubscriptions(0, 0)
			f.clock.Advance(5 * time.Minute)
			f.m.Reconcile(ctx)
			if n := len(f.em.Subscriptions()); n != 2 {
				t.Fatalf("after the pause: %d subscriptions, %+v", n, f.m.Stats())
			}
		})
	}
}

// TestManagerDropsUnconfiguredUsersAndKeepsClientStateOutOfLogs: a user
// taken out of the configuration loses the subscription; a user Graph
// refuses does not stop the others; the clientState never reaches the log.
func TestManagerDropsUnconfiguredUsersAndKeepsClientStateOutOfLogs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.m.Reconcile(ctx)
	var logs strings.Builder
	var mu sync.Mutex
	src := f.m.opts.Sources[0]
	src.Users = []string{alice, "nobody@contoso.example"}
	m := New(Options{
		Sources: []Source{src},
		Client:  func(string) (Client, error) { return f.client, nil },
		Writing: func(string) bool { return true },
		Now:     f.clock.Now,
		Log:     slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	m.Reconcile(ctx)
	exp := f.expirations()
	if _, ok := exp["users/bob@contoso.example/events"]; ok || len(exp) != 1 {
		t.Fatalf("after bob left the configuration: %v", exp)
	}
	if st := m.Stats(); st.Deleted != 1 || st.Failed != 1 {
		t.Fatalf("stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logs.String(), "calendar-client-state") || !strings.Contains(logs.String(), "nobody@contoso.example") {
		t.Fatalf("logs:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
