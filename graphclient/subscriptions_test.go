package graphclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

// startCalendarEmulator is startEmulator with an app that may read
// calendars and users, on clock.
func startCalendarEmulator(t *testing.T, clock emulator.Clock, users ...emulator.User) (*emulator.Emulator, *graphclient.Client) {
	t.Helper()
	if len(users) == 0 {
		users = []emulator.User{{ID: aliceID, UserPrincipalName: "alice@contoso.example"}}
	}
	em, err := emulator.New(emulator.Config{
		Listen: "127.0.0.1:0",
		Tenants: []emulator.Tenant{{
			ID:    tenant,
			Apps:  []emulator.App{{ClientID: clientID, ClientSecret: secret, Roles: []string{"Calendars.Read", "User.Read.All"}}},
			Users: users,
		}},
	}, emulator.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	c := serve(t, em)
	return em, c
}

// echo answers Graph's validation requests.
func echo(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, r.URL.Query().Get("validationToken"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSubscriptionCalls(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	_, c := startCalendarEmulator(t, emulator.NewFakeClock(t0))
	hook := echo(t)

	sub, err := c.CreateSubscription(ctx, graphclient.Subscription{
		Resource: "users/" + aliceID + "/events", ChangeType: "created,updated,deleted",
		NotificationURL: hook.URL, ExpirationDateTime: t0.Add(time.Hour), ClientState: "very-secret-state",
	})
	if err != nil || sub.ID == "" || !sub.ExpirationDateTime.Equal(t0.Add(time.Hour)) {
		t.Fatalf("create: %+v %v", sub, err)
	}
	if s := fmt.Sprintf("%v %+v %#v", sub, sub, sub); strings.Contains(s, "very-secret-state") {
		t.Fatalf("clientState printed: %s", s)
	}
	renewed, err := c.RenewSubscription(ctx, sub.ID, t0.Add(2*time.Hour))
	if err != nil || !renewed.ExpirationDateTime.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("renew: %+v %v", renewed, err)
	}
	list, err := c.ListSubscriptions(ctx)
	if err != nil || len(list) != 1 || list[0].ID != sub.ID || list[0].Resource != sub.Resource {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := c.DeleteSubscription(ctx, sub.ID); err != nil {
		t.Fatal(err)
	}
	var gerr *graphclient.Error
	if _, err := c.RenewSubscription(ctx, sub.ID, t0.Add(2*time.Hour)); !errors.As(err, &gerr) || gerr.StatusCode != http.StatusNotFound {
		t.Fatalf("renew deleted: %v", err)
	}
	if _, err := c.CreateSubscription(ctx, graphclient.Subscription{Resource: "users/x/events"}); !errors.Is(err, graphclient.ErrInvalidArgument) {
		t.Fatalf("incomplete: %v", err)
	}
}
