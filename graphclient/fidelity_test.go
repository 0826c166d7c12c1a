package graphclient_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

const bobID = "66825e03-7ef5-42da-9069-724602c31f6b"

// startEmulator serves the emulator on a free loopback port, on a fake
// clock at t0, and returns it with a client of the demo app.
func startEmulator(t *testing.T, t0 time.Time) (*emulator.Emulator, *graphclient.Client) {
	t.Helper()
	em, err := emulator.New(emulator.Config{
		Listen: "127.0.0.1:0",
		Tenants: []emulator.Tenant{{
			ID:   tenant,
			Apps: []emulator.App{{ClientID: clientID, ClientSecret: secret, Roles: []string{"Presence.ReadWrite.All", "User.Read.All"}}},
			Users: []emulator.User{
				{ID: aliceID, UserPrincipalName: "alice@contoso.example"},
				{ID: bobID, UserPrincipalName: "bob@contoso.example"},
			},
		}},
	}, emulator.WithClock(emulator.NewFakeClock(t0)))
	if err != nil {
		t.Fatal(err)
	}
	c := serve(t, em)
	return em, c
}

// serve starts em, which stops when the test ends, and returns a client
// of the demo app for it.
func serve(t *testing.T, em *emulator.Emulator) *graphclient.Client {
	t.Helper()
	if err := em.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	c, err := graphclient.New(graphclient.Config{
		TenantID: tenant, ClientID: clientID, ClientSecret: secret,
		GraphBaseURL: em.GraphURL(), LoginBaseURL: em.LoginURL(), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestEveryActionTakesAny2XX: with the emulator answering its actions 200,
// 202 and 204 (no body), every write succeeds and takes effect.
func TestEveryActionTakesAny2XX(t *testing.T) {
	ctx := context.Background()
	em, c := startEmulator(t, time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	for _, status := range []int{http.StatusOK, http.StatusAccepted, http.StatusNoContent} {
		if err := em.SetActionStatus(status); err != nil {
			t.Fatal(err)
		}
		if err := c.SetPresence(ctx, aliceID, graphclient.Pair{Availability: "Busy", Activity: "InACall"}, 15*time.Minute); err != nil {
			t.Fatalf("%d: set presence: %v", status, err)
		}
		if err := c.SetStatusMessage(ctx, aliceID, "On a call", time.Time{}); err != nil {
			t.Fatalf("%d: set status message: %v", status, err)
		}
		if v, _ := em.Presence(aliceID); v.Activity != "InACall" || v.StatusMessage == nil {
			t.Fatalf("%d: after the writes: %s, status message %v", status, v, v.StatusMessage)
		}
		if err := c.ClearPresence(ctx, aliceID); err != nil {
			t.Fatalf("%d: clear presence: %v", status, err)
		}
		if err := c.ClearStatusMessage(ctx, aliceID); err != nil {
			t.Fatalf("%d: clear status message: %v", status, err)
		}
		if v, _ := em.Presence(aliceID); v.Activity != "Offline" || v.StatusMessage != nil {
			t.Fatalf("%d: after the clears: %s, status message %v", status, v, v.StatusMessage)
		}
	}
	var got []int
	for _, r := range em.Requests() {
		if r.Method == http.MethodPost && r.Path != "/"+tenant+"/oauth2/v2.0/token" && !slices.Contains(got, r.Status) {
			got = append(got, r.Status)
		}
	}
	if !slices.Equal(got, []int{200, 202, 204}) {
		t.Fatalf("the emulator answered %v, want 200, 202 and 204", got)
	}
}

// TestReadsTakeAny2XX: a read answered 204, or 200 or 201 without a body,
// is no error and leaves the result empty.
func TestReadsTakeAny2XX(t *testing.T) {
	ctx := context.Background()
	for _, status := range []int{http.StatusOK, http.StatusCreated, http.StatusNoContent} {
		f := newFake(t)
		c := f.client(t)
		f.setGraph(respond(status, ""))
		if p, err := c.GetPresence(ctx, aliceID); err != nil || p.ID != "" {
			t.Fatalf("%d: get presence: %+v, %v", status, p, err)
		}
		if ps, err := c.GetPresencesByUserID(ctx, []string{aliceID}); err != nil || len(ps) != 0 {
			t.Fatalf("%d: get presences: %+v, %v", status, ps, err)
		}
		if _, err := c.GetUser(ctx, aliceID); err != nil {
			t.Fatalf("%d: get user: %v", status, err)
		}
	}
}

// TestUnknownPresenceValuesAreKept: values Graph's pages do not list (the
// changelog's Focusing, an availability that used to be an activity, a
// list, a number) are kept as strings and reported by Unknown, never an
// error.
func TestUnknownPresenceValuesAreKept(t *testing.T) {
	ctx := context.Background()
	em, c := startEmulator(t, time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	if err := em.SetTeamsSession(aliceID, "Focusing", "Focusing"); err != nil {
		t.Fatal(err)
	}
	if err := em.SetTeamsSession(bobID, "InACall", "InACall"); err != nil {
		t.Fatal(err)
	}
	ps, err := c.GetPresencesByUserID(ctx, []string{aliceID, bobID})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Availability != "Focusing" || ps[0].Activity != "Focusing" || ps[1].Availability != "InACall" {
		t.Fatalf("presences %+v", ps)
	}
	if u := ps[0].Unknown(); !slices.Equal(u, []string{"availability=Focusing", "activity=Focusing"}) {
		t.Fatalf("unknown %v", u)
	}
	if u := ps[1].Unknown(); !slices.Equal(u, []string{"availability=InACall"}) {
		t.Fatalf("unknown %v", u)
	}

	f := newFake(t)
	fc := f.client(t)
	for body, want := range map[string]graphclient.Pair{
		`{"id":"a","availability":["Busy","InACall"],"activity":"InACall"}`: {Availability: "Busy,InACall", Activity: "InACall"},
		`{"id":"a","availability":7,"activity":{"x":1}}`:                    {Availability: "7", Activity: `{"x":1}`},
		`{"id":"a","availability":null}`:                                    {},
		`{"id":"a","availability":"Busy","activity":"Busy"}`:                {Availability: "Busy", Activity: "Busy"},
	} {
		f.setGraph(respond(200, body))
		p, err := fc.GetPresence(ctx, aliceID)
		if err != nil || p.ID != "a" || (graphclient.Pair{Availability: p.Availability, Activity: p.Activity}) != want {
			t.Fatalf("%s: %+v, %v", body, p, err)
		}
	}
}

// TestStatusMessage: SetStatusMessage sends Graph's shape with the expiry
// in UTC; the aggregate read shows the message (without its expiry, as
// Graph shows another user's), a message the user wrote themself included,
// and the work location.
func TestStatusMessage(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	em, c := startEmulator(t, t0)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skipf("no zone data: %v", err)
	}
	if err := c.SetStatusMessage(ctx, aliceID, "On a call", t0.Add(time.Hour).In(paris)); err != nil {
		t.Fatal(err)
	}
	v, _ := em.Presence(aliceID)
	if m := v.StatusMessage; m == nil || m.Content != "On a call" || m.ContentType != "text" || m.SetBy != clientID ||
		m.ExpiresAt == nil || !m.ExpiresAt.Equal(t0.Add(time.Hour)) || m.ExpiryDateTime.TimeZone != "UTC" {
		t.Fatalf("status message %+v", v.StatusMessage)
	}
	if err := em.SetStatusMessage(bobID, "Back on Monday", time.Time{}); err != nil {
		t.Fatal(err)
	}
	ps, err := c.GetPresencesByUserID(ctx, []string{aliceID, bobID})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].StatusText() != "On a call" || ps[1].StatusText() != "Back on Monday" ||
		ps[0].StatusMessage.ExpiryDateTime != nil || ps[0].StatusMessage.PublishedDateTime != "" {
		t.Fatalf("presences %+v", ps)
	}
	if w := ps[0].WorkLocation; w == nil || w.Source != "none" || w.WorkLocationType != "unspecified" {
		t.Fatalf("work location %+v", ps[0].WorkLocation)
	}
	if err := c.SetStatusMessage(ctx, "alice@contoso.example", "x", time.Time{}); err != nil {
		t.Fatalf("by UPN under /users: %v", err)
	}
	if err := c.SetStatusMessage(ctx, "", "x", time.Time{}); !errors.Is(err, graphclient.ErrInvalidArgument) {
		t.Fatalf("empty user id: %v", err)
	}
}
