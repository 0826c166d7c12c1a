package emulator

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestThrottleWindowEdge walks a fixed window of 3 requests per 30 s: the
// limit itself passes, the next request is 429 with Retry-After up to the
// window's end (rounded up), the window is [start, start+30s) so a request
// exactly at start+30s opens a fresh window, and throttled requests count.
func TestThrottleWindowEdge(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Throttle = Throttle{Limit: 3, Window: 30 * time.Second} })
	steps := []struct {
		at         time.Duration // since t0, when the first window opens
		status     int
		retryAfter string
	}{
		{0, 200, ""},
		{10 * time.Second, 200, ""},
		{20 * time.Second, 200, ""}, // the third: exactly the limit
		{20 * time.Second, 429, "10"},
		{29*time.Second + 500*time.Millisecond, 429, "1"}, // 0.5 s left, rounded up
		{30*time.Second - time.Nanosecond, 429, "1"},      // the last instant of the window
		{30 * time.Second, 200, ""},                       // exactly at the edge: a new window [30s, 60s)
		{31 * time.Second, 200, ""},
		{59 * time.Second, 200, ""},
		{59 * time.Second, 429, "1"},
		{60 * time.Second, 200, ""},
		{95 * time.Second, 200, ""}, // after an idle gap, the window opens at 95s
		{95 * time.Second, 200, ""},
		{95 * time.Second, 200, ""},
		{124 * time.Second, 429, "1"},
		{125 * time.Second, 200, ""},
	}
	for i, s := range steps {
		h.clock.Set(t0.Add(s.at))
		status, header, body := h.doHeader("GET", "/v1.0/users/"+alice+"/presence", nil)
		if status != s.status || header.Get("Retry-After") != s.retryAfter {
			t.Fatalf("step %d at +%s: %d Retry-After %q, want %d %q (%v)", i, s.at, status, header.Get("Retry-After"), s.status, s.retryAfter, body)
		}
		if status == 429 {
			e := body["error"].(map[string]any)
			inner := e["innerError"].(map[string]any)
			if e["code"] != "TooManyRequests" || e["message"] != "Please retry again later." || inner["code"] != "429" || inner["status"] != "429" ||
				inner["request-id"] != header.Get("request-id") || inner["date"] == nil || inner["client-request-id"] != nil {
				t.Fatalf("429 body %v", body)
			}
		}
	}
}

// TestThrottledRequestsCount: a client that keeps calling while throttled
// spends its budget on the refusals too.
func TestThrottledRequestsCount(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Throttle = Throttle{Limit: 2, Window: 30 * time.Second} })
	for range 5 {
		h.do("GET", "/v1.0/users/"+alice+"/presence", nil)
	}
	h.em.mu.Lock()
	count := h.em.throttle.windows[tenantID+"/"+appID].count
	h.em.mu.Unlock()
	if count != 5 {
		t.Fatalf("window count %d after 2 admitted and 3 throttled requests, want 5", count)
	}
}

// TestThrottleScope: per application per tenant, reads and writes share
// the budget, and only the presence endpoints count.
func TestThrottleScope(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Throttle = Throttle{Limit: 2, Window: 30 * time.Second}
		c.Tenants[0].Apps[0].Roles = append(c.Tenants[0].Apps[0].Roles, "Calendars.Read")
	})
	h.em.SetEvent(CalendarEvent{ID: "e1", User: alice, Start: t0, End: t0.Add(time.Hour)})
	for range 3 {
		if status, _ := h.do("GET", "/v1.0/users/"+alice, nil); status != 200 {
			t.Fatalf("GET /users is not throttled with presence: %d", status)
		}
		if status, _ := h.do("GET", "/v1.0/users/"+alice+"/events/e1", nil); status != 200 {
			t.Fatalf("GET events is not throttled with presence: %d", status)
		}
	}
	if s := h.set(alice, "Busy", "InACall", ""); s != 200 {
		t.Fatalf("write 1: %d", s)
	}
	if status, _ := h.do("POST", "/v1.0/communications/getPresencesByUserId", map[string][]string{"ids": {alice}}); status != 200 {
		t.Fatalf("read 2: %d", status)
	}
	for _, path := range []string{"/v1.0/users/" + alice + "/presence", "/beta/communications/presences/" + alice, "/v1.0/communications/presences"} {
		if status, _ := h.do("GET", path, nil); status != 429 {
			t.Fatalf("%s over the shared budget: %d", path, status)
		}
	}
	if s := h.set(alice, "Busy", "InACall", ""); s != 429 {
		t.Fatalf("write over the budget: %d", s)
	}
	reader := h.appToken(tenantID, "reader", "reader-secret")
	if status, _ := h.do("GET", "/v1.0/users/"+alice+"/presence", nil, reader); status != 200 {
		t.Fatalf("another app has its own budget: %d", status)
	}
	fabrikam := h.appToken("fabrikam.example", "fabrikam-app", "fabrikam-secret")
	if status, _ := h.do("GET", "/v1.0/users/"+dave+"/presence", nil, fabrikam); status != 200 {
		t.Fatalf("another tenant has its own budget: %d", status)
	}
	if status, _ := h.tokenRequest(tenantID, map[string][]string{"client_id": {appID}, "client_secret": {appKey}, "grant_type": {"client_credentials"}, "scope": {graphURL}}, ""); status != 200 {
		t.Fatalf("the token endpoint is not throttled: %d", status)
	}
	if status, _ := h.do("GET", "/v1.0/users/"+alice+"/presence", nil, "bad"); status != 401 {
		t.Fatalf("an unauthenticated request is refused before throttling: %d", status)
	}
}

// TestDefaultThrottle: Graph's 1,500 requests per 30 s.
func TestDefaultThrottle(t *testing.T) {
	clock := NewFakeClock(t0)
	cfg := testConfig()
	em, err := New(cfg, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if em.cfg.Throttle != (Throttle{Limit: 1500, Window: 30 * time.Second}) {
		t.Fatalf("defaults %+v", em.cfg.Throttle)
	}
	token := signToken(em.signKey, claims{Audience: "https://graph.microsoft.com", AppID: appID, IDType: "app", Roles: []string{"Presence.Read.All"}, TenantID: tenantID}, t0)
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/v1.0/users/"+alice+"/presence", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		em.ServeHTTP(rec, req)
		return rec
	}
	for i := 1; i <= 1500; i++ {
		if rec := get(); rec.Code != 200 {
			t.Fatalf("request %d: %d", i, rec.Code)
		}
		if i%100 == 0 {
			clock.Advance(time.Second) // 15 s for all 1,500
		}
	}
	rec := get()
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "15" {
		t.Fatalf("request 1,501: %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
}

// TestForcedThrottle: ForceThrottle answers 429 with the exact
// Retry-After, fraction kept, or none at all.
func TestForcedThrottle(t *testing.T) {
	h := newHarness(t)
	h.em.ForceThrottle(2, 2128*time.Millisecond)
	for i, want := range []struct {
		status     int
		retryAfter string
	}{{429, "2.128"}, {429, "2.128"}, {200, ""}} {
		status, header, _ := h.doHeader("POST", "/v1.0/users/"+alice+"/presence/setPresence", map[string]string{"sessionId": appID, "availability": "Busy", "activity": "InACall"})
		if status != want.status || header.Get("Retry-After") != want.retryAfter {
			t.Fatalf("request %d: %d %q, want %d %q", i, status, header.Get("Retry-After"), want.status, want.retryAfter)
		}
	}
	var logged []string
	for _, r := range h.em.Requests() {
		if strings.HasSuffix(r.Path, "/setPresence") {
			logged = append(logged, r.RetryAfter)
		}
	}
	if strings.Join(logged, ",") != "2.128,2.128," {
		t.Fatalf("the request log's Retry-After values: %q", logged)
	}
	h.em.ForceThrottle(1, 0)
	req := mustRequest(t, "GET", h.url+"/v1.0/users/"+alice+"/presence", "")
	req.Header.Set("Authorization", "Bearer "+h.token)
	status, header, _ := h.send(req)
	if _, has := header[http.CanonicalHeaderKey("Retry-After")]; status != 429 || has {
		t.Fatalf("ForceThrottle without Retry-After: %d %v", status, header)
	}
	if strings.Contains(retryAfterExact(3*time.Second), ".") || retryAfterSeconds(0) != "1" {
		t.Fatal("Retry-After formatting")
	}
}
