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
	h := newHarness(t, func(c *Config) { c.ReadThrottle = Throttle{Limit: 3, Window: 30 * time.Second} })
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
	h := newHarness(t, func(c *Config) { c.ReadThrottle = Throttle{Limit: 2, Window: 30 * time.Second} })
	for range 5 {
		h.do("GET", "/v1.0/users/"+alice+"/presence", nil)
	}
	windows := h.em.ReadWindows()
	if len(windows) != 1 || windows[0].Requests != 5 || windows[0].Throttled != 3 {
		t.Fatalf("windows %+v after 2 admitted and 3 throttled requests, want one with 5 requests, 3 throttled", windows)
	}
}

// TestThrottleScope: per application per tenant, reads and actions each
// have their own budget, and only the presence endpoints count.
func TestThrottleScope(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Throttle = Throttle{Limit: 1, Window: 30 * time.Second}
		c.ReadThrottle = Throttle{Limit: 1, Window: 30 * time.Second}
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
		t.Fatalf("read 1, after the write budget is spent: %d", status)
	}
	for _, path := range []string{"/v1.0/users/" + alice + "/presence", "/beta/communications/presences/" + alice, "/v1.0/communications/presences"} {
		if status, _ := h.do("GET", path, nil); status != 429 {
			t.Fatalf("%s over the read budget: %d", path, status)
		}
	}
	if s := h.set(alice, "Busy", "InACall", ""); s != 429 {
		t.Fatalf("write over the write budget: %d", s)
	}
	if s, _ := h.do("POST", "/v1.0/users/"+alice+"/presence/clearPresence", map[string]string{"sessionId": appID}); s != 429 {
		t.Fatalf("clearPresence over the write budget: %d", s)
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
	if em.cfg.Throttle != (Throttle{Limit: 1500, Window: 30 * time.Second}) || em.cfg.ReadThrottle != (Throttle{Limit: 1500, Window: 30 * time.Second}) {
		t.Fatalf("defaults %+v %+v", em.cfg.Throttle, em.cfg.ReadThrottle)
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

// TestReadBudget: getPresencesByUserId at Graph's documented 1,500
// requests per 30 s, over real HTTP on the fake clock: 1,500 pass, the
// next is 429 with Retry-After up to the window's end, setPresence keeps
// its own budget, ReadWindows and the admin API count every read of each
// window, and the next window admits reads again.
func TestReadBudget(t *testing.T) {
	h := newHarness(t)
	read := func() (int, http.Header) {
		status, header, _ := h.doHeader("POST", "/v1.0/communications/getPresencesByUserId", map[string][]string{"ids": {alice, bob}})
		return status, header
	}
	for i := 1; i <= 1500; i++ {
		if status, _ := read(); status != 200 {
			t.Fatalf("read %d: %d", i, status)
		}
		if i%100 == 0 {
			h.clock.Advance(time.Second) // 15 s for all 1,500
		}
	}
	if status, header := read(); status != 429 || header.Get("Retry-After") != "15" {
		t.Fatalf("read 1,501: %d Retry-After %q, want 429 \"15\"", status, header.Get("Retry-After"))
	}
	if s := h.set(alice, "Busy", "InACall", ""); s != 200 {
		t.Fatalf("setPresence while reads are throttled: %d", s)
	}
	want := ThrottleWindow{Tenant: tenantID, ClientID: appID, Start: t0, End: t0.Add(30 * time.Second), Requests: 1501, Throttled: 1}
	if got := h.em.ReadWindows(); len(got) != 1 || got[0] != want {
		t.Fatalf("read windows %+v, want [%+v]", got, want)
	}
	if got := h.em.WriteWindows(); len(got) != 1 || got[0].Requests != 1 {
		t.Fatalf("write windows %+v, want one request", got)
	}

	h.clock.Set(t0.Add(30 * time.Second)) // the window rolls
	if status, _ := read(); status != 200 {
		t.Fatalf("first read of the next window: %d", status)
	}
	status, body := h.admin("GET", "/_emulator/throttle", "")
	reads, _ := body["reads"].(map[string]any)
	windows, _ := reads["windows"].([]any)
	if status != 200 || reads["limit"] != 1500.0 || reads["window"] != "30s" || len(windows) != 2 {
		t.Fatalf("GET /_emulator/throttle: %d %v", status, body)
	}
	first, second := windows[0].(map[string]any), windows[1].(map[string]any)
	if first["requests"] != 1501.0 || first["throttled"] != 1.0 || second["requests"] != 1.0 || second["start"] != "2026-11-23T10:00:30Z" || second["clientId"] != appID {
		t.Fatalf("windows %v", windows)
	}
}

// TestAdminThrottle: POST /_emulator/throttle changes a budget for tests
// (fresh windows), checks its body, and needs admin.writes.
func TestAdminThrottle(t *testing.T) {
	cases := []struct {
		name, body string
		status     int
	}{
		{"reads", `{"reads":{"limit":2,"window":"10s"}}`, 200},
		{"both, seconds", `{"reads":{"limit":2,"window":10},"writes":{"limit":5,"window":"PT1M"}}`, 200},
		{"zero limit", `{"reads":{"limit":0,"window":"10s"}}`, 400},
		{"no window", `{"writes":{"limit":3}}`, 400},
		{"negative window", `{"reads":{"limit":3,"window":"-1s"}}`, 400},
		{"unknown key", `{"read":{"limit":3,"window":"10s"}}`, 400},
		{"not JSON", `{"reads":`, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			status, body := h.admin("POST", "/_emulator/throttle", c.body)
			if status != c.status {
				t.Fatalf("%d %v, want %d", status, body, c.status)
			}
			reads, writes := h.em.Throttles()
			if status != 200 {
				errorCode(t, body)
				if reads != (Throttle{1500, 30 * time.Second}) || writes != (Throttle{1500, 30 * time.Second}) {
					t.Fatalf("a refused change changed the budgets: %+v %+v", reads, writes)
				}
				return
			}
			if reads != (Throttle{2, 10 * time.Second}) {
				t.Fatalf("reads %+v", reads)
			}
			for i, want := range []int{200, 200, 429} {
				if s, _ := h.do("GET", "/v1.0/users/"+alice+"/presence", nil); s != want {
					t.Fatalf("read %d: %d, want %d", i, s, want)
				}
			}
		})
	}
	h := newHarness(t, func(c *Config) { c.Admin.Writes = false })
	if status, _ := h.admin("POST", "/_emulator/throttle", `{"reads":{"limit":2,"window":"10s"}}`); status != 403 {
		t.Fatalf("without admin.writes: %d", status)
	}
	if err := h.em.SetReadThrottle(Throttle{Limit: 0, Window: time.Second}); err == nil {
		t.Fatal("SetReadThrottle took a zero limit")
	}
}

// TestWindowHistoryBounded: the closed windows kept per application are
// bounded, however long a test runs.
func TestWindowHistoryBounded(t *testing.T) {
	l := newLimiter(Throttle{Limit: 1, Window: time.Second})
	for i := range 3 * maxWindowHistory {
		l.take(budgetKey(tenantID, appID), t0.Add(time.Duration(i)*time.Second))
	}
	all := l.all()
	if len(all) > maxWindowHistory+1 || !all[len(all)-1].Start.Equal(t0.Add(time.Duration(3*maxWindowHistory-1)*time.Second)) {
		t.Fatalf("%d windows kept, last %v", len(all), all[len(all)-1])
	}
}
