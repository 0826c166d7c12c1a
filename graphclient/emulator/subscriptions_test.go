package emulator

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver is a notification endpoint that answers validation requests
// (unless refuse is set) and keeps every notification item it gets.
type receiver struct {
	mu     sync.Mutex
	refuse bool
	items  []map[string]any
	srv    *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if token := r.URL.Query().Get("validationToken"); token != "" {
			if rc.refuse {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, token)
			return
		}
		var body struct {
			Value []map[string]any `json:"value"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		rc.items = append(rc.items, body.Value...)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// await waits for an item with key = value.
func (rc *receiver) await(t *testing.T, key, value string) map[string]any {
	t.Helper()
	var found map[string]any
	testpoll.Until(t, fmt.Sprintf("a notification with %s=%s", key, value), func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for _, it := range rc.items {
			if it[key] == value {
				found = it
				return true
			}
		}
		return false
	})
	return found
}

func subscriptionBody(rc *receiver, user string, expires time.Time) map[string]any {
	return map[string]any{
		"changeType": "created,updated,deleted", "notificationUrl": rc.srv.URL + "/hook",
		"lifecycleNotificationUrl": rc.srv.URL + "/lifecycle", "resource": "users/" + user + "/events",
		"expirationDateTime": expires.Format(time.RFC3339), "clientState": "s3cret",
	}
}

func TestSubscriptionLifecycle(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t)
	token := h.appToken(tenantID, "calendar", "calendar-secret")

	status, sub := h.do("POST", "/v1.0/subscriptions", subscriptionBody(rc, "alice@contoso.example", t0.Add(time.Hour)), token)
	if status != http.StatusCreated || sub["clientState"] != "s3cret" || sub["resource"] != "users/alice@contoso.example/events" {
		t.Fatalf("create: %d %v", status, sub)
	}
	id := sub["id"].(string)

	// A change to an event reaches the notification URL.
	if err := h.em.SetEvent(CalendarEvent{ID: "ev1", User: alice, Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	n := rc.await(t, "changeType", "created")
	if n["subscriptionId"] != id || n["clientState"] != "s3cret" || n["resource"] != "Users/"+alice+"/Events/ev1" {
		t.Fatalf("notification %v", n)
	}
	h.em.DeleteEvent(alice, "ev1")
	rc.await(t, "changeType", "deleted")

	// Renew, list, then expire on the clock.
	status, renewed := h.do("PATCH", "/v1.0/subscriptions/"+id, map[string]any{"expirationDateTime": t0.Add(3 * time.Hour).Format(time.RFC3339)}, token)
	if status != http.StatusOK || !strings.HasPrefix(renewed["expirationDateTime"].(string), "2026-11-23T13:00:00") {
		t.Fatalf("renew: %d %v", status, renewed)
	}
	if status, list := h.do("GET", "/v1.0/subscriptions", nil, token); status != http.StatusOK || len(list["value"].([]any)) != 1 {
		t.Fatalf("list: %d %v", status, list)
	}
	if status, list := h.do("GET", "/v1.0/subscriptions", nil); status != http.StatusOK || len(list["value"].([]any)) != 0 {
		t.Fatalf("another app sees %d %v", status, list)
	}
	h.clock.Advance(3 * time.Hour)
	token = h.appToken(tenantID, "calendar", "calendar-secret")
	if status, body := h.do("GET", "/v1.0/subscriptions/"+id, nil, token); status != http.StatusNotFound {
		t.Fatalf("expired subscription: %d %v", status, body)
	}

	// Delete.
	_, sub = h.do("POST", "/v1.0/subscriptions", subscriptionBody(rc, alice, h.clock.Now().Add(time.Hour)), token)
	id = sub["id"].(string)
	if status, _ := h.do("DELETE", "/v1.0/subscriptions/"+id, nil, token); status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	if status, _ := h.do("DELETE", "/v1.0/subscriptions/"+id, nil, token); status != http.StatusNotFound {
		t.Fatalf("second delete: %d", status)
	}

	// Lifecycle notifications: subscriptionRemoved removes it.
	_, sub = h.do("POST", "/v1.0/subscriptions", subscriptionBody(rc, alice, h.clock.Now().Add(time.Hour)), token)
	id = sub["id"].(string)
	if status, body := h.admin("POST", "/_emulator/subscriptions/"+id+"/lifecycle", `{"lifecycleEvent":"reauthorizationRequired"}`); status != http.StatusNoContent {
		t.Fatalf("lifecycle: %d %v", status, body)
	}
	rc.await(t, "lifecycleEvent", "reauthorizationRequired")
	if err := h.em.SendLifecycle(context.Background(), id, "subscriptionRemoved"); err != nil {
		t.Fatal(err)
	}
	rc.await(t, "lifecycleEvent", "subscriptionRemoved")
	if len(h.em.Subscriptions()) != 0 {
		t.Fatal("subscriptionRemoved left the subscription")
	}
}

func TestSubscriptionValidation(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t)
	token := h.appToken(tenantID, "calendar", "calendar-secret")
	cases := []struct {
		name   string
		edit   func(map[string]any)
		status int
	}{
		{"too far ahead", func(b map[string]any) {
			b["expirationDateTime"] = t0.Add(MaxEventSubscriptionLifetime + time.Minute).Format(time.RFC3339)
		}, 400},
		{"in the past", func(b map[string]any) { b["expirationDateTime"] = t0.Add(-time.Minute).Format(time.RFC3339) }, 400},
		{"bad change type", func(b map[string]any) { b["changeType"] = "moved" }, 400},
		{"no resource", func(b map[string]any) { delete(b, "resource") }, 400},
		{"other resource", func(b map[string]any) { b["resource"] = "groups/x/events" }, 400},
		{"unknown user", func(b map[string]any) { b["resource"] = "users/nobody@contoso.example/events" }, 404},
		{"long clientState", func(b map[string]any) { b["clientState"] = strings.Repeat("x", 129) }, 400},
		{"longest lifetime", func(b map[string]any) {
			b["expirationDateTime"] = t0.Add(MaxEventSubscriptionLifetime).Format(time.RFC3339)
		}, 201},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := subscriptionBody(rc, alice, t0.Add(time.Hour))
			c.edit(b)
			if status, body := h.do("POST", "/v1.0/subscriptions", b, token); status != c.status {
				t.Fatalf("%d %v", status, body)
			}
		})
	}
	// Without Calendars permission: 403.
	if status, _ := h.do("POST", "/v1.0/subscriptions", subscriptionBody(rc, alice, t0.Add(time.Hour))); status != http.StatusForbidden {
		t.Fatalf("no permission: %d", status)
	}
	// An endpoint that fails the validation handshake: 400, nothing created.
	before := len(h.em.Subscriptions())
	rc.mu.Lock()
	rc.refuse = true
	rc.mu.Unlock()
	status, body := h.do("POST", "/v1.0/subscriptions", subscriptionBody(rc, alice, t0.Add(time.Hour)), token)
	if status != http.StatusBadRequest || errorCode(t, body) != "ValidationError" || len(h.em.Subscriptions()) != before {
		t.Fatalf("refused validation: %d %v", status, body)
	}
	// Injected faults.
	h.em.FailSubscriptions(1, http.StatusTooManyRequests)
	if status, _ := h.do("GET", "/v1.0/subscriptions", nil, token); status != http.StatusTooManyRequests {
		t.Fatalf("injected: %d", status)
	}
}
