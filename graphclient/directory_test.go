package graphclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

var directoryT0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// startDirectory serves the emulator with alice, bob and n more users on
// a fake clock over real HTTP, changed by mutate, and returns it with its
// clock and a client of the demo app.
func startDirectory(t *testing.T, n int, mutate func(*emulator.Config)) (*emulator.Emulator, *emulator.FakeClock, *graphclient.Client) {
	t.Helper()
	users := []emulator.User{{ID: aliceID, UserPrincipalName: "alice@contoso.example"}, {ID: bobID, UserPrincipalName: "bob@contoso.example"}}
	for i := range n {
		users = append(users, emulator.User{ID: fmt.Sprintf("0d000000-0000-4000-8000-%012d", i), UserPrincipalName: fmt.Sprintf("user%d@contoso.example", i)})
	}
	cfg := emulator.Config{
		Listen: "127.0.0.1:0",
		Tenants: []emulator.Tenant{{
			ID:    tenant,
			Apps:  []emulator.App{{ClientID: clientID, ClientSecret: secret, Roles: []string{"Presence.ReadWrite.All", "User.Read.All", "GroupMember.Read.All"}}},
			Users: users,
		}, {
			ID:    "fabrikam.example",
			Apps:  []emulator.App{{ClientID: "other", ClientSecret: "other-secret"}},
			Users: []emulator.User{{ID: "9a0f3c55-1b7e-4f63-9d2a-6c1e2f3b4a5d", UserPrincipalName: "dave@fabrikam.example"}},
		}},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	clock := emulator.NewFakeClock(directoryT0)
	em, err := emulator.New(cfg, emulator.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	c := serve(t, em)
	return em, clock, c
}

// graphRequests returns the logged Graph requests to paths ending in
// suffix.
func graphRequests(em *emulator.Emulator, suffix string) []emulator.RequestRecord {
	var out []emulator.RequestRecord
	for _, r := range em.Requests() {
		if strings.HasSuffix(r.Path, suffix) {
			out = append(out, r)
		}
	}
	return out
}

// TestListUsers: ListUsers follows @odata.nextLink through the emulator's
// pages of 999 and returns every user of the tenant once, with id and UPN.
func TestListUsers(t *testing.T) {
	for _, tt := range []struct {
		more, pages int
	}{{0, 1}, {997, 1}, {998, 2}, {2500, 3}} {
		t.Run(fmt.Sprint(tt.more+2, " users"), func(t *testing.T) {
			em, _, c := startDirectory(t, tt.more, nil)
			users, err := c.ListUsers(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]string{}
			for _, u := range users {
				seen[u.ID] = u.UserPrincipalName
			}
			if len(users) != tt.more+2 || len(seen) != len(users) || seen[aliceID] != "alice@contoso.example" || seen[bobID] != "bob@contoso.example" {
				t.Fatalf("%d users (%d distinct), alice %q, bob %q", len(users), len(seen), seen[aliceID], seen[bobID])
			}
			if tt.more > 0 && seen["0d000000-0000-4000-8000-000000000000"] != "user0@contoso.example" {
				t.Fatalf("user0: %q", seen["0d000000-0000-4000-8000-000000000000"])
			}
			reqs := graphRequests(em, "/users")
			if len(reqs) != tt.pages {
				t.Fatalf("%d requests, want %d pages", len(reqs), tt.pages)
			}
			q, _ := url.ParseQuery(reqs[0].Query)
			if q.Get("$top") != "999" || q.Get("$select") != "id,userPrincipalName" {
				t.Fatalf("first page query %q", reqs[0].Query)
			}
		})
	}
}

// TestListGroupMembers: ListGroupMembers returns the users among a
// group's direct members page by page and leaves member groups out.
func TestListGroupMembers(t *testing.T) {
	const group, nested = "6a000000-0000-4000-8000-000000000001", "6a000000-0000-4000-8000-000000000002"
	em, _, c := startDirectory(t, 1200, func(cfg *emulator.Config) {
		members := []string{nested, bobID}
		for i := range 1100 {
			members = append(members, fmt.Sprintf("0d000000-0000-4000-8000-%012d", i))
		}
		cfg.Tenants[0].Groups = []emulator.Group{{ID: group, Members: members}, {ID: nested, Members: []string{aliceID}}}
	})
	ctx := context.Background()
	users, err := c.ListGroupMembers(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, u := range users {
		ids[u.ID] = u.UserPrincipalName != ""
	}
	if len(users) != 1101 || len(ids) != 1101 || !ids[bobID] || ids[nested] || ids[aliceID] {
		t.Fatalf("%d members (%d distinct); bob %v, the nested group %v, alice (nested only) %v", len(users), len(ids), ids[bobID], ids[nested], ids[aliceID])
	}
	if n := len(graphRequests(em, "/members")); n != 2 {
		t.Fatalf("%d requests for 1,102 members, want 2 pages", n)
	}
	if users, err := c.ListGroupMembers(ctx, nested); err != nil || len(users) != 1 || users[0].ID != aliceID || users[0].UserPrincipalName != "alice@contoso.example" {
		t.Fatalf("nested group: %v, %v", users, err)
	}

	// A member joins and one leaves: the next list says so.
	if err := em.AddGroupMember(nested, bobID); err != nil {
		t.Fatal(err)
	}
	if _, err := em.RemoveGroupMember(nested, aliceID); err != nil {
		t.Fatal(err)
	}
	if users, err := c.ListGroupMembers(ctx, nested); err != nil || len(users) != 1 || users[0].ID != bobID {
		t.Fatalf("after the changes: %v, %v", users, err)
	}

	for _, tt := range []struct {
		name  string
		group string
		is    func(error) bool
	}{
		{"unknown group", "6a000000-0000-4000-8000-0000000000ff", func(err error) bool { return hasStatus(err, 404) }},
		{"not an object id", "staff", func(err error) bool { return hasStatus(err, 400) }},
		{"empty id", " ", func(err error) bool { return errors.Is(err, graphclient.ErrInvalidArgument) }},
	} {
		if users, err := c.ListGroupMembers(ctx, tt.group); users != nil || !tt.is(err) {
			t.Errorf("%s: %v, %v", tt.name, users, err)
		}
	}
}

// TestListNeedsPermission: without GroupMember.Read.All and User.Read.All
// the lists fail with Graph's 403, as a fact for the caller.
func TestListNeedsPermission(t *testing.T) {
	_, _, c := startDirectory(t, 0, func(cfg *emulator.Config) { cfg.Tenants[0].Apps[0].Roles = []string{"Presence.Read.All"} })
	if _, err := c.ListUsers(context.Background()); !hasStatus(err, 403) {
		t.Fatalf("ListUsers: %v", err)
	}
	if _, err := c.ListGroupMembers(context.Background(), "6a000000-0000-4000-8000-000000000001"); !hasStatus(err, 403) {
		t.Fatalf("ListGroupMembers: %v", err)
	}
}

// TestListPaging: how a list treats what Graph says about its pages, on a
// scripted server: a failing page ends the list with its error (429 with
// its Retry-After), a nextLink is followed on the configured host only, a
// nextLink outside the API version is an error, and a list that never
// ends stops after MaxListPages.
func TestListPaging(t *testing.T) {
	for _, tt := range []struct {
		name      string
		page      func(n int, r *http.Request) (int, string) // the answer to request n (from 1)
		wantUsers int
		wantCalls int
		check     func(err error) bool
	}{
		{
			name: "429 on page 2",
			page: func(n int, _ *http.Request) (int, string) {
				if n == 2 {
					return 429, `{"error":{"code":"TooManyRequests","message":"Please retry again later."}}`
				}
				return 200, `{"value":[{"id":"a","userPrincipalName":"a@x"}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/users?$skiptoken=p2"}`
			},
			wantCalls: 2,
			check: func(err error) bool {
				return hasStatus(err, 429) && graphclient.RetryAfter(err) == 3*time.Second && strings.Contains(err.Error(), "list users (page 2)")
			},
		},
		{
			name: "nextLink on another host is followed on ours",
			page: func(n int, r *http.Request) (int, string) {
				if n == 1 {
					return 200, `{"value":[{"id":"a","userPrincipalName":"a@x"}],"@odata.nextLink":"https://elsewhere.example/v1.0/users?$skiptoken=p2&$top=999"}`
				}
				if r.URL.Query().Get("$skiptoken") != "p2" {
					return 400, `{"error":{"code":"BadRequest","message":"lost the skiptoken"}}`
				}
				return 200, `{"value":[{"id":"b","userPrincipalName":"b@x"},{"@odata.type":"#microsoft.graph.group","id":"g"},{"id":""}]}`
			},
			wantUsers: 2, wantCalls: 2,
			check: func(err error) bool { return err == nil },
		},
		{
			name: "nextLink outside the API version",
			page: func(int, *http.Request) (int, string) {
				return 200, `{"value":[],"@odata.nextLink":"https://graph.microsoft.com/beta/users?$skiptoken=p2"}`
			},
			wantCalls: 1,
			check:     func(err error) bool { return err != nil && strings.Contains(err.Error(), "not below /v1.0") },
		},
		{
			name: "endless pages",
			page: func(int, *http.Request) (int, string) {
				return 200, `{"value":[{"id":"a"}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/users?$skiptoken=again"}`
			},
			wantCalls: graphclient.MaxListPages,
			check:     func(err error) bool { return errors.Is(err, graphclient.ErrTooManyPages) },
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			calls := 0
			f.setGraph(func(w http.ResponseWriter, r *http.Request) {
				calls++
				status, body := tt.page(calls, r)
				if r.URL.Path != "/v1.0/users" {
					status, body = 404, `{"error":{"code":"NotFound","message":"wrong path"}}`
				}
				if status == 429 {
					w.Header().Set("Retry-After", "3")
				}
				w.WriteHeader(status)
				io.WriteString(w, body)
			})
			users, err := f.client(t).ListUsers(context.Background())
			if !tt.check(err) || calls != tt.wantCalls || len(users) != tt.wantUsers {
				t.Fatalf("%d users, %d calls, %v", len(users), calls, err)
			}
		})
	}
}

// TestGetPresencesByUserIDReadBudget: against the emulator's read budget
// on its fake clock, GetPresencesByUserID returns sequenceNumber (growing
// with a change), a 429 is an *Error with the Retry-After Graph sent, as
// for the other calls, and the next window reads again.
func TestGetPresencesByUserIDReadBudget(t *testing.T) {
	em, clock, c := startDirectory(t, 0, func(cfg *emulator.Config) {
		cfg.ReadThrottle = emulator.Throttle{Limit: 2, Window: 30 * time.Second}
	})
	ctx := context.Background()
	first, err := c.GetPresencesByUserID(ctx, []string{aliceID, bobID})
	if err != nil || len(first) != 2 || first[0].SequenceNumber == "" {
		t.Fatalf("first read: %v, %v", first, err)
	}
	if err := em.SetTeamsSession(aliceID, "Busy", "InAMeeting"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Second)
	second, err := c.GetPresencesByUserID(ctx, []string{aliceID, bobID})
	if err != nil || second[0].Activity != "InAMeeting" || second[0].SequenceNumber <= first[0].SequenceNumber || second[1].SequenceNumber != first[1].SequenceNumber {
		t.Fatalf("second read: %+v after %+v, %v", second, first, err)
	}
	if err := c.SetPresence(ctx, bobID, graphclient.Pair{Availability: "Busy", Activity: "InACall"}, 0); err != nil {
		t.Fatalf("a write is not held back by the read budget: %v", err)
	}
	_, err = c.GetPresencesByUserID(ctx, []string{aliceID})
	var gerr *graphclient.Error
	if !errors.As(err, &gerr) || gerr.StatusCode != 429 || gerr.Code != "TooManyRequests" || gerr.RetryAfter != 20*time.Second || graphclient.RetryAfter(err) != 20*time.Second {
		t.Fatalf("third read: %v", err)
	}
	clock.Advance(20 * time.Second)
	if _, err := c.GetPresencesByUserID(ctx, []string{aliceID}); err != nil {
		t.Fatalf("next window: %v", err)
	}
	windows := em.ReadWindows()
	if len(windows) != 2 || windows[0].Requests != 3 || windows[0].Throttled != 1 || windows[1].Requests != 1 {
		t.Fatalf("read windows %+v", windows)
	}
	if !slices.ContainsFunc(em.WriteWindows(), func(w emulator.ThrottleWindow) bool { return w.Requests == 1 }) {
		t.Fatalf("write windows %+v", em.WriteWindows())
	}
}
