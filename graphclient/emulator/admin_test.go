package emulator

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAdminWritesOff: without admin.writes every change is 403 in JSON,
// and the reads still work.
func TestAdminWritesOff(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Admin = Admin{} })
	changes := []struct{ method, path, body string }{
		{"POST", "/_emulator/sessions", `{"user":"` + alice + `","availability":"Busy","activity":"InAMeeting"}`},
		{"DELETE", "/_emulator/sessions/" + alice + "/teams-desktop", ""},
		{"POST", "/_emulator/preferred", `{"user":"` + alice + `","availability":"Busy","activity":"Busy"}`},
		{"DELETE", "/_emulator/preferred/" + alice, ""},
		{"POST", "/_emulator/faults", `{"failNext":1}`},
		{"DELETE", "/_emulator/faults", ""},
		{"POST", "/_emulator/events", `{}`},
		{"DELETE", "/_emulator/events/" + alice + "/x", ""},
		{"POST", "/_emulator/tokens", `{"user":"` + alice + `","scopes":["Presence.Read"]}`},
		{"POST", "/_emulator/reset", ""},
		{"DELETE", "/_emulator/requests", ""},
		{"POST", "/_emulator/clock/advance", `{"seconds":60}`},
	}
	for _, c := range changes {
		status, body := h.admin(c.method, c.path, c.body)
		if status != 403 || errorCode(t, body) != "Forbidden" {
			t.Errorf("%s %s: %d %v", c.method, c.path, status, body)
		}
	}
	for _, path := range []string{"/_emulator/presences", "/_emulator/presences/" + alice, "/_emulator/requests", "/_emulator/faults", "/_emulator/events", "/_emulator/clock"} {
		if status, body := h.admin("GET", path, ""); status != 200 {
			t.Errorf("GET %s: %d %v", path, status, body)
		}
	}
}

// TestAdminPresences: the read-only view of every user's aggregate,
// sessions and preferred presence, by object id or UPN.
func TestAdminPresences(t *testing.T) {
	h := newHarness(t)
	h.set(alice, "Busy", "InACall", "PT15M")
	if status, body := h.admin("POST", "/_emulator/sessions", `{"user":"alice@contoso.example","kind":"teams","sessionId":"teams-mobile","availability":"Available","activity":"Available"}`); status != 200 {
		t.Fatalf("teams session: %d %v", status, body)
	}
	if status, body := h.admin("POST", "/_emulator/preferred", `{"user":"alice@contoso.example","availability":"DoNotDisturb","activity":"DoNotDisturb","expiresIn":"1h"}`); status != 200 {
		t.Fatalf("preferred: %d %v", status, body)
	}
	for _, id := range []string{alice, "alice@contoso.example", "alice%40contoso.example"} {
		status, v := h.admin("GET", "/_emulator/presences/"+id, "")
		if status != 200 || v["id"] != alice || v["availability"] != "DoNotDisturb" || v["activity"] != "DoNotDisturb" || v["sequenceNumber"] == "" {
			t.Fatalf("%s: %d %v", id, status, v)
		}
		sessions := v["sessions"].([]any)
		if len(sessions) != 2 {
			t.Fatalf("sessions %v", sessions)
		}
		app, teams := sessions[0].(map[string]any), sessions[1].(map[string]any)
		if app["sessionId"] != appID || app["kind"] != "app" || app["availability"] != "Busy" || app["activity"] != "InACall" ||
			app["expiresAt"] != "2026-11-23T10:15:00Z" || app["lastRefreshedAt"] != "2026-11-23T10:00:00Z" {
			t.Fatalf("app session %v", app)
		}
		if teams["sessionId"] != "teams-mobile" || teams["kind"] != "teams" || teams["expiresAt"] != nil {
			t.Fatalf("teams session %v", teams)
		}
		if p := v["preferred"].(map[string]any); p["availability"] != "DoNotDisturb" || p["expiresAt"] != "2026-11-23T11:00:00Z" {
			t.Fatalf("preferred %v", p)
		}
	}
	status, all := h.admin("GET", "/_emulator/presences", "")
	if status != 200 || len(all["value"].([]any)) != 4 {
		t.Fatalf("all: %d %v", status, all)
	}
	if status, _ := h.admin("GET", "/_emulator/presences/nobody", ""); status != 404 {
		t.Fatalf("unknown user: %d", status)
	}

	// Ending sessions and the preferred presence.
	if status, _ := h.admin("DELETE", "/_emulator/preferred/"+alice, ""); status != 200 {
		t.Fatalf("clear preferred: %d", status)
	}
	if status, _ := h.admin("DELETE", "/_emulator/sessions/alice@contoso.example/"+appID, ""); status != 200 {
		t.Fatalf("end app session: %d", status)
	}
	if got := h.presence(alice); got != "Available/Available" {
		t.Fatalf("left: %s", got)
	}
	if status, _ := h.admin("DELETE", "/_emulator/sessions/"+alice+"/nope", ""); status != 404 {
		t.Fatalf("no such session: %d", status)
	}
}

// TestAdminSessionValidation: simulated sessions are checked like the
// real ones, and typos in the body are errors.
func TestAdminSessionValidation(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		body   string
		status int
	}{
		{`{"user":"` + bob + `","availability":"Busy","activity":"InAMeeting"}`, 200},
		{`{"user":"` + bob + `","kind":"teams","availability":"Busy","activity":"InAMeeting","expiresIn":90}`, 200},
		{`{"user":"` + bob + `","kind":"app","appId":"x","availability":"Busy","activity":"InACall","expiresIn":"PT1H"}`, 200},
		{`{"user":"` + bob + `","kind":"app","appId":"x","availability":"Busy","activity":"InAMeeting"}`, 400},
		{`{"user":"` + bob + `","kind":"preferred","availability":"Busy","activity":"Busy"}`, 200},
		{`{"user":"` + bob + `","kind":"preferred","availability":"Busy","activity":"InACall"}`, 400},
		{`{"user":"` + bob + `","availability":"Sleepy","activity":"Away"}`, 400},
		{`{"user":"` + bob + `","kind":"robot","availability":"Busy","activity":"Busy"}`, 400},
		{`{"user":"` + bob + `","availabilty":"Busy","activity":"Busy"}`, 400},
		{`{"user":"` + bob + `","availability":"Busy","activity":"InAMeeting","expiresIn":"soon"}`, 400},
		{`{"user":"nobody","availability":"Busy","activity":"InAMeeting"}`, 404},
	}
	for _, tt := range tests {
		if status, body := h.admin("POST", "/_emulator/sessions", tt.body); status != tt.status {
			t.Errorf("%s: %d, want %d (%v)", tt.body, status, tt.status, body)
		}
	}
	v, _ := h.em.Presence(bob)
	if v.Availability != "Busy" || v.Activity != "Busy" || len(v.Sessions) != 2 {
		t.Fatalf("bob: %s %+v", v, v.Sessions)
	}
}

// TestAdminFaults: injected failures over the admin API.
func TestAdminFaults(t *testing.T) {
	h := newHarness(t)
	get := func() (int, http.Header, map[string]any) {
		return h.doHeader("GET", "/v1.0/users/"+alice+"/presence", nil)
	}
	t.Run("fail the next N", func(t *testing.T) {
		if status, body := h.admin("POST", "/_emulator/faults", `{"failNext":2,"failStatus":503}`); status != 200 || body["failNext"] != 2.0 {
			t.Fatalf("faults: %d %v", status, body)
		}
		for i, want := range []int{503, 503, 200} {
			status, header, body := get()
			if status != want {
				t.Fatalf("request %d: %d, want %d", i, status, want)
			}
			if status == 503 && (errorCode(t, body) != "serviceNotAvailable" || header.Get("Retry-After") != "1") {
				t.Fatalf("503: %v %v", header, body)
			}
		}
		h.admin("POST", "/_emulator/faults", `{"failNext":1,"failStatus":500}`)
		if status, _, body := get(); status != 500 || errorCode(t, body) != "generalException" {
			t.Fatalf("500: %d %v", status, body)
		}
		h.admin("POST", "/_emulator/faults", `{"failNext":1,"failStatus":403}`)
		if status, _, body := get(); status != 403 || errorCode(t, body) != "Forbidden" {
			t.Fatalf("403: %d %v", status, body)
		}
	})
	t.Run("forced throttling", func(t *testing.T) {
		h.admin("POST", "/_emulator/faults", `{"throttleNext":1,"retryAfter":"2.5s"}`)
		if status, header, _ := get(); status != 429 || header.Get("Retry-After") != "2.5" {
			t.Fatalf("forced 429: %d %v", status, header)
		}
	})
	t.Run("a fraction, reproducible", func(t *testing.T) {
		run := func() string {
			h.admin("POST", "/_emulator/faults", `{"failRate":0.3,"failRateStatus":502,"seed":7}`)
			var out strings.Builder
			for range 40 {
				if status, _, _ := get(); status == 502 {
					out.WriteByte('x')
				} else {
					out.WriteByte('.')
				}
			}
			return out.String()
		}
		first, second := run(), run()
		if first != second {
			t.Fatalf("same seed, different failures:\n%s\n%s", first, second)
		}
		if n := strings.Count(first, "x"); n < 4 || n > 24 {
			t.Fatalf("%d of 40 failed at 30%%: %s", n, first)
		}
		h.admin("POST", "/_emulator/faults", `{"failRate":0}`)
		if status, body := h.admin("POST", "/_emulator/faults", `{"failRate":1.5}`); status != 400 {
			t.Fatalf("failRate 1.5: %d %v", status, body)
		}
	})
	t.Run("outage", func(t *testing.T) {
		h.em.SetEvent(CalendarEvent{ID: "e1", User: alice, Start: t0, End: t0.Add(time.Hour)})
		if status, body := h.admin("POST", "/_emulator/faults", `{"outage":"1m"}`); status != 200 || body["outageUntil"] != "2026-11-23T10:01:00Z" {
			t.Fatalf("outage: %d %v", status, body)
		}
		for _, path := range []string{"/v1.0/users/" + alice + "/presence", "/v1.0/users/" + alice, "/beta/communications/presences", "/v1.0/users/" + alice + "/events/e1", "/v1.0/nothing"} {
			if status, body := h.do("GET", path, nil); status != 503 || errorCode(t, body) != "serviceNotAvailable" {
				t.Fatalf("%s during the outage: %d %v", path, status, body)
			}
		}
		if status, _ := h.do("GET", "/v1.0/users/"+alice+"/presence", nil, ""); status != 503 {
			t.Fatalf("an outage answers before authentication: %d", status)
		}
		h.appToken(tenantID, appID, appKey) // the identity platform stays up
		h.clock.Advance(time.Minute)
		if status, _, _ := get(); status != 200 {
			t.Fatalf("after the outage: %d", status)
		}
	})
	t.Run("latency", func(t *testing.T) {
		// Graph requests wait out the latency; the admin API does not,
		// which a busy machine can not blur at five seconds.
		h.admin("POST", "/_emulator/faults", `{"latency":"5s"}`)
		start := time.Now()
		get()
		if d := time.Since(start); d < 5*time.Second {
			t.Fatalf("request took %s with 5s latency", d)
		}
		start = time.Now()
		h.admin("GET", "/_emulator/presences", "")
		if d := time.Since(start); d > 4*time.Second {
			t.Fatalf("the admin API is delayed too: %s", d)
		}
	})
	t.Run("clear", func(t *testing.T) {
		h.admin("POST", "/_emulator/faults", `{"failNext":5,"throttleNext":5,"outage":60}`)
		if status, body := h.admin("DELETE", "/_emulator/faults", ""); status != 200 || body["failNext"] != 0.0 || body["latency"] != "0s" {
			t.Fatalf("clear: %d %v", status, body)
		}
		if status, _, _ := get(); status != 200 {
			t.Fatalf("after clear: %d", status)
		}
	})
	if status, body := h.admin("POST", "/_emulator/faults", `{"failNxt":1}`); status != 400 {
		t.Fatalf("a typo: %d %v", status, body)
	}
}

// TestFaultControls: the Go controls the bridge's tests use.
func TestFaultControls(t *testing.T) {
	h := newHarness(t)
	h.em.FailNext(1, 0)
	if s := h.set(alice, "Busy", "InACall", ""); s != 503 {
		t.Fatalf("FailNext(1, 0): %d", s)
	}
	h.em.FailNext(1, 404)
	if s := h.set(alice, "Busy", "InACall", ""); s != 404 {
		t.Fatalf("FailNext(1, 404): %d", s)
	}
	h.em.Outage(time.Second)
	if s := h.set(alice, "Busy", "InACall", ""); s != 503 {
		t.Fatalf("Outage: %d", s)
	}
	h.em.Outage(0)
	if s := h.set(alice, "Busy", "InACall", ""); s != 200 {
		t.Fatalf("Outage(0): %d", s)
	}
	if status, _ := h.do("GET", "/v1.0/users/"+alice+"/presence", nil, "bad"); status != 401 {
		t.Fatal("a bad token is refused first")
	}
	h.em.FailNext(1, 500)
	if status, _ := h.do("GET", "/v1.0/users/"+alice+"/presence", nil, "bad"); status != 401 {
		t.Fatal("a bad token does not use up an injected failure")
	}
	if s := h.set(alice, "Busy", "InACall", ""); s != 500 {
		t.Fatalf("the failure is still pending: %d", s)
	}
}

// TestClockAdvance: only with admin.test_clock; seconds or a duration.
func TestClockAdvance(t *testing.T) {
	h := newHarness(t)
	steps := []struct {
		body   string
		status int
		now    time.Duration
	}{
		{`{"seconds":90}`, 200, 90 * time.Second},
		{`{"duration":"5m"}`, 200, 390 * time.Second},
		{`{"duration":"PT1H"}`, 200, 3990 * time.Second},
		{`{"duration":1.5}`, 200, 3991500 * time.Millisecond},
		{`{"seconds":-1}`, 400, 3991500 * time.Millisecond},
		{`{"duration":"-5m"}`, 400, 3991500 * time.Millisecond},
		{`{}`, 400, 3991500 * time.Millisecond},
		{`{"seconds":1,"duration":"1s"}`, 400, 3991500 * time.Millisecond},
	}
	for _, s := range steps {
		status, body := h.admin("POST", "/_emulator/clock/advance", s.body)
		if status != s.status || !h.clock.Now().Equal(t0.Add(s.now)) {
			t.Fatalf("%s: %d %v, now %s", s.body, status, body, h.clock.Now())
		}
	}
	off := newHarness(t, func(c *Config) { c.Admin.TestClock = false })
	if status, _ := off.admin("POST", "/_emulator/clock/advance", `{"seconds":60}`); status != 403 {
		t.Fatalf("test_clock off: %d", status)
	}

	// A standalone emulator in test mode runs on real time plus an offset.
	cfg := testConfig()
	em, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := em.Now()
	em.clock.(advancer).Advance(time.Hour)
	if d := em.Now().Sub(before); d < time.Hour || d > time.Hour+time.Minute {
		t.Fatalf("offset clock moved %s", d)
	}
}

// TestRequestLog: method, path, status, body and time of every Graph and
// token request; secrets never; admin requests not at all.
func TestRequestLog(t *testing.T) {
	h := newHarness(t)
	h.set(alice, "Busy", "InACall", "PT15M")
	h.tokenRequest(tenantID, map[string][]string{"client_id": {appID}, "client_secret": {"wrong-secret"}, "grant_type": {"client_credentials"}, "scope": {graphURL}}, "")
	h.admin("GET", "/_emulator/presences", "")
	status, body := h.admin("GET", "/_emulator/requests", "")
	if status != 200 {
		t.Fatalf("requests: %d", status)
	}
	log := body["value"].([]any)
	if len(log) != 3 {
		t.Fatalf("%d records, want token, setPresence, token: %v", len(log), log)
	}
	first, set, bad := log[0].(map[string]any), log[1].(map[string]any), log[2].(map[string]any)
	if first["method"] != "POST" || first["path"] != "/contoso.example/oauth2/v2.0/token" || first["status"] != 200.0 ||
		!strings.Contains(first["body"].(string), "client_secret=REDACTED") || strings.Contains(first["body"].(string), appKey) {
		t.Fatalf("token record %v", first)
	}
	if set["path"] != "/v1.0/users/"+alice+"/presence/setPresence" || set["status"] != 200.0 || !strings.Contains(set["body"].(string), `"InACall"`) ||
		set["time"] != "2026-11-23T10:00:00Z" || set["requestId"] == "" {
		t.Fatalf("setPresence record %v", set)
	}
	if bad["status"] != 401.0 || strings.Contains(bad["body"].(string), "wrong-secret") {
		t.Fatalf("failed token record %v", bad)
	}
	for _, r := range h.em.Requests() {
		if strings.Contains(r.Body, h.token) {
			t.Fatal("a token is in the request log")
		}
	}
	if status, _ := h.admin("DELETE", "/_emulator/requests", ""); status != 200 || len(h.em.Requests()) != 0 {
		t.Fatalf("clear: %d %d", status, len(h.em.Requests()))
	}
}

// TestReset: back to the configured start; sequence numbers keep growing.
func TestReset(t *testing.T) {
	h := newHarness(t)
	h.set(alice, "Busy", "InACall", "PT1H")
	before, _ := h.em.Presence(alice)
	h.em.FailNext(3, 503)
	h.em.SetEvent(CalendarEvent{ID: "e1", User: alice, Start: t0, End: t0.Add(time.Hour)})
	if status, _ := h.admin("POST", "/_emulator/reset", ""); status != 200 {
		t.Fatalf("reset: %d", status)
	}
	after, _ := h.em.Presence(alice)
	if after.Availability != "Offline" || len(after.Sessions) != 0 || len(h.em.Events()) != 0 || h.em.Faults().FailNext != 0 || len(h.em.Requests()) != 0 {
		t.Fatalf("after reset: %s, events %v, faults %+v", after, h.em.Events(), h.em.Faults())
	}
	if after.SequenceNumber <= before.SequenceNumber {
		t.Fatalf("sequence number went back: %s → %s", before.SequenceNumber, after.SequenceNumber)
	}
	if status, _ := h.do("GET", "/v1.0/users/"+alice+"/presence", nil); status != 401 {
		t.Fatalf("old token after reset: %d", status)
	}
}

// TestCalendarEvents: seeded events over the admin API and Graph's event
// endpoint with $select.
func TestCalendarEvents(t *testing.T) {
	h := newHarness(t)
	calendar := h.appToken(tenantID, "calendar", "calendar-secret")
	ev := `{"id":"AAMkAGI2=","user":"alice@contoso.example","subject":"Standup","start":"2026-11-23T12:00:00+01:00","end":"2026-11-23T11:30:00Z","showAs":"busy"}`
	if status, body := h.admin("POST", "/_emulator/events", ev); status != 200 {
		t.Fatalf("create: %d %v", status, body)
	}
	status, got := h.do("GET", "/v1.0/users/"+alice+"/events/AAMkAGI2%3D?$select=start,end,showAs,isCancelled", nil, calendar)
	if status != 200 || got["showAs"] != "busy" || got["isCancelled"] != false || got["id"] != "AAMkAGI2=" || got["@odata.etag"] == nil {
		t.Fatalf("get: %d %v", status, got)
	}
	if _, has := got["subject"]; has {
		t.Fatalf("$select left subject in: %v", got)
	}
	if start := got["start"].(map[string]any); start["dateTime"] != "2026-11-23T11:00:00.0000000" || start["timeZone"] != "UTC" {
		t.Fatalf("start %v", start)
	}
	_, full := h.do("GET", "/v1.0/users/alice@contoso.example/events/AAMkAGI2=", nil, calendar)
	if full["subject"] != "Standup" || full["end"].(map[string]any)["dateTime"] != "2026-11-23T11:30:00.0000000" {
		t.Fatalf("full: %v", full)
	}
	// Update: cancelled.
	h.admin("POST", "/_emulator/events", strings.Replace(ev, `"showAs":"busy"`, `"showAs":"busy","isCancelled":true`, 1))
	if _, got := h.do("GET", "/v1.0/users/"+alice+"/events/AAMkAGI2=", nil, calendar); got["isCancelled"] != true {
		t.Fatalf("update: %v", got)
	}
	if status, body := h.admin("GET", "/_emulator/events", ""); status != 200 || len(body["value"].([]any)) != 1 {
		t.Fatalf("list: %v", body)
	}
	if status, body := h.do("GET", "/v1.0/users/"+alice+"/events/nope", nil, calendar); status != 404 || errorCode(t, body) != "ErrorItemNotFound" {
		t.Fatalf("unknown event: %d %v", status, body)
	}
	if status, _ := h.do("GET", "/v1.0/users/"+alice+"/events/AAMkAGI2=?$select=attendees", nil, calendar); status != 400 {
		t.Fatalf("unknown $select: %d", status)
	}
	if status, _ := h.admin("DELETE", "/_emulator/events/alice@contoso.example/AAMkAGI2=", ""); status != 200 {
		t.Fatalf("delete: %d", status)
	}
	if status, _ := h.do("GET", "/v1.0/users/"+alice+"/events/AAMkAGI2=", nil, calendar); status != 404 {
		t.Fatalf("deleted: %d", status)
	}
	for _, bad := range []string{
		`{"id":"x","user":"` + alice + `","start":"2026-11-23T12:00:00Z","end":"2026-11-23T11:00:00Z"}`,
		`{"id":"x","user":"` + alice + `","start":"2026-11-23T10:00:00Z","end":"2026-11-23T11:00:00Z","showAs":"maybe"}`,
		`{"user":"` + alice + `","start":"2026-11-23T10:00:00Z","end":"2026-11-23T11:00:00Z"}`,
	} {
		if status, _ := h.admin("POST", "/_emulator/events", bad); status != 400 {
			t.Errorf("%s: %d", bad, status)
		}
	}
}

// TestDelegatedTokenOverAdmin: the admin API hands out a delegated token
// that reaches /me/presence.
func TestDelegatedTokenOverAdmin(t *testing.T) {
	h := newHarness(t)
	h.em.SetTeamsSession(alice, "Available", "Available")
	status, body := h.admin("POST", "/_emulator/tokens", `{"user":"alice@contoso.example","scopes":["Presence.Read"]}`)
	if status != 200 {
		t.Fatalf("token: %d %v", status, body)
	}
	status, me := h.do("GET", "/v1.0/me/presence", nil, body["access_token"].(string))
	if status != 200 || me["id"] != alice || me["availability"] != "Available" {
		t.Fatalf("/me/presence: %d %v", status, me)
	}
	if status, _ := h.admin("POST", "/_emulator/tokens", `{"user":"nobody","scopes":["Presence.Read"]}`); status != 404 {
		t.Fatalf("unknown user: %d", status)
	}
}
