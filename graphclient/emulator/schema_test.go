package emulator

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"
)

// TestSchemaFacts holds the emulator to Graph's published v1.0 schema
// (msgraph-metadata's CSDL and the presence pages; see
// shared/GRAPH-PRESENCE.md, "The v1.0 schema"), one row per fact, so that
// a change loosening any of them fails here.
func TestSchemaFacts(t *testing.T) {
	const (
		bobMail     = "robert@contoso.example"
		presenceURL = "/v1.0/users/" + alice + "/presence"
	)
	status := func(content, expiry string) string {
		if expiry != "" {
			expiry = `,"expiryDateTime":` + expiry
		}
		return `{"statusMessage":{"message":{"content":"` + content + `","contentType":"text"}` + expiry + `}}`
	}
	// send makes one request as the demo app, or with a delegated token
	// of alice's when as names its scope.
	send := func(h *harness, method, path, body, as string) (int, http.Header, map[string]any) {
		h.t.Helper()
		token := h.token
		if as != "" {
			var err error
			if token, err = h.em.DelegatedToken(alice, as); err != nil {
				h.t.Fatal(err)
			}
		}
		var b any
		if body != "" {
			b = body
		}
		return h.doHeader(method, path, b, token)
	}
	must := func(h *harness, method, path, body, as string) {
		h.t.Helper()
		if st, _, out := send(h, method, path, body, as); st/100 != 2 {
			h.t.Fatalf("setup %s %s: %d %v", method, path, st, out)
		}
	}
	ids := func(body map[string]any) []string {
		var out []string
		for _, v := range body["value"].([]any) {
			out = append(out, v.(map[string]any)["id"].(string))
		}
		return out
	}
	wantIDs := func(want ...string) func(*harness, map[string]any) error {
		return func(_ *harness, body map[string]any) error {
			if got := ids(body); fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("ids %v, want %v", got, want)
			}
			return nil
		}
	}
	field := func(body map[string]any, path ...string) any {
		var v any = body
		for _, k := range path {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		}
		return v
	}
	equal := func(want any, path ...string) func(*harness, map[string]any) error {
		return func(_ *harness, body map[string]any) error {
			if got := field(body, path...); !reflect.DeepEqual(got, want) {
				return fmt.Errorf("%v = %#v, want %#v", path, got, want)
			}
			return nil
		}
	}
	absent := func(path ...string) func(*harness, map[string]any) error {
		return func(_ *harness, body map[string]any) error {
			parent := field(body, path[:len(path)-1]...).(map[string]any)
			if v, ok := parent[path[len(path)-1]]; ok {
				return fmt.Errorf("%v is present (%v)", path, v)
			}
			return nil
		}
	}
	noLocation := map[string]any{"placeId": nil, "source": "none", "workLocationType": "unspecified"}
	filter := func(ids string) string {
		return "/v1.0/communications/presences?$filter=" + url.QueryEscape("id in ("+ids+")")
	}

	tests := []struct {
		fact   string
		setup  func(h *harness)
		method string
		path   string
		body   string
		as     string // a delegated scope of alice's; "" is the app token
		status int
		check  func(h *harness, body map[string]any) error
	}{
		// Ids: Entra object ids where Graph keys presences.
		{fact: "getPresencesByUserId takes object ids", method: "POST", path: "/v1.0/communications/getPresencesByUserId",
			body: `{"ids":["` + alice + `"]}`, status: 200, check: wantIDs(alice)},
		{fact: "getPresencesByUserId: a UPN names nobody", method: "POST", path: "/v1.0/communications/getPresencesByUserId",
			body: `{"ids":["alice@contoso.example"]}`, status: 200, check: wantIDs()},
		{fact: "getPresencesByUserId: a mail address names nobody", method: "POST", path: "/v1.0/communications/getPresencesByUserId",
			body: `{"ids":["` + bobMail + `"]}`, status: 200, check: wantIDs()},
		{fact: "/communications/presences/{object id} is the presence", method: "GET", path: "/v1.0/communications/presences/" + alice,
			status: 200, check: equal(alice, "id")},
		{fact: "/communications/presences/{UPN} is not found", method: "GET", path: "/v1.0/communications/presences/alice@contoso.example",
			status: 404, check: equal("itemNotFound", "error", "code")},
		{fact: "/communications/presences/{mail} is not found", method: "GET", path: "/v1.0/communications/presences/" + bobMail,
			status: 404, check: equal("itemNotFound", "error", "code")},
		{fact: "$filter=id in (...) takes object ids", method: "GET", path: filter("'" + bob + "'"), status: 200, check: wantIDs(bob)},
		{fact: "$filter=id in (...): a UPN names nobody", method: "GET", path: filter("'bob@contoso.example','" + bobMail + "'"), status: 200, check: wantIDs()},

		// Edm.Duration: days, hours, minutes, seconds.
		{fact: "Edm.Duration takes days and hours", method: "POST", path: presenceURL + "/setUserPreferredPresence",
			body: `{"availability":"Busy","activity":"Busy","expirationDuration":"P1DT2H"}`, status: 200},
		{fact: "Edm.Duration has no weeks", method: "POST", path: presenceURL + "/setUserPreferredPresence",
			body: `{"availability":"Busy","activity":"Busy","expirationDuration":"P1W"}`, status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "Edm.Duration has no years", method: "POST", path: presenceURL + "/setUserPreferredPresence",
			body: `{"availability":"Busy","activity":"Busy","expirationDuration":"P1Y"}`, status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "Edm.Duration has no months", method: "POST", path: presenceURL + "/setUserPreferredPresence",
			body: `{"availability":"Busy","activity":"Busy","expirationDuration":"P1M"}`, status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "a parameter the action does not declare is a 400", method: "POST", path: presenceURL + "/setUserPreferredPresence",
			body: `{"availability":"Busy","activity":"Busy","sessionId":"` + appID + `"}`, status: 400, check: equal("BadRequest", "error", "code")},

		// workLocation: userWorkLocation on the resource, and its actions.
		{fact: "presence has workLocation (none, unspecified)", method: "GET", path: presenceURL, status: 200, check: equal(noLocation, "workLocation")},
		{fact: "$select=workLocation is a property", method: "GET", path: presenceURL + "?$select=workLocation", status: 200, check: equal(noLocation, "workLocation")},
		{fact: "setManualLocation shows as the manual layer", method: "POST", path: "/v1.0/me/presence/setManualLocation", as: "Presence.ReadWrite",
			body: `{"workLocationType":"office","placeId":"eb706f15-137e-4722-b4d1-b601481d9251"}`, status: 200,
			check: func(h *harness, _ map[string]any) error {
				_, _, body := send(h, "GET", presenceURL, "", "")
				return equal(map[string]any{"placeId": "eb706f15-137e-4722-b4d1-b601481d9251", "source": "manual", "workLocationType": "office"}, "workLocation")(h, body)
			}},
		{fact: "manual work location wins over automatic", setup: func(h *harness) {
			must(h, "POST", presenceURL+"/setAutomaticLocation", `{"workLocationType":"remote"}`, "Presence.ReadWrite")
			must(h, "POST", presenceURL+"/setManualLocation", `{"workLocationType":"timeOff"}`, "Presence.ReadWrite")
		}, method: "GET", path: presenceURL, status: 200, check: equal(map[string]any{"placeId": nil, "source": "manual", "workLocationType": "timeOff"}, "workLocation")},
		{fact: "clearAutomaticLocation leaves the manual layer", setup: func(h *harness) {
			must(h, "POST", presenceURL+"/setAutomaticLocation", `{"workLocationType":"remote"}`, "Presence.ReadWrite")
			must(h, "POST", presenceURL+"/setManualLocation", `{"workLocationType":"office"}`, "Presence.ReadWrite")
			must(h, "POST", presenceURL+"/clearAutomaticLocation", "", "Presence.ReadWrite")
		}, method: "GET", path: presenceURL, status: 200, check: equal("manual", "workLocation", "source")},
		{fact: "clearLocation clears both layers", setup: func(h *harness) {
			must(h, "POST", presenceURL+"/setAutomaticLocation", `{"workLocationType":"remote"}`, "Presence.ReadWrite")
			must(h, "POST", presenceURL+"/setManualLocation", `{"workLocationType":"office"}`, "Presence.ReadWrite")
			must(h, "POST", "/v1.0/me/presence/clearLocation", "", "Presence.ReadWrite")
		}, method: "GET", path: presenceURL, status: 200, check: equal(noLocation, "workLocation")},
		{fact: "work-location actions have no application permission", method: "POST", path: presenceURL + "/setManualLocation",
			body: `{"workLocationType":"office"}`, status: 403, check: equal("Forbidden", "error", "code")},
		{fact: "workLocationType is required", method: "POST", path: presenceURL + "/setManualLocation", as: "Presence.ReadWrite",
			body: `{"placeId":"x"}`, status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "workLocationType is the enum, exact case", method: "POST", path: presenceURL + "/setManualLocation", as: "Presence.ReadWrite",
			body: `{"workLocationType":"Office"}`, status: 400, check: equal("BadRequest", "error", "code")},

		// statusMessage: presenceStatusMessage, itemBody, dateTimeTimeZone.
		{fact: "statusMessage is null until set", method: "GET", path: presenceURL, status: 200, check: equal(nil, "statusMessage")},
		{fact: "statusMessage is an itemBody; another user's reader sees no expiry or publishedDateTime",
			setup: func(h *harness) {
				must(h, "POST", presenceURL+"/setStatusMessage", status("On a call", `{"dateTime":"2026-11-23T11:00:00","timeZone":"UTC"}`), "")
			},
			method: "GET", path: presenceURL, status: 200,
			check: func(h *harness, body map[string]any) error {
				if err := equal(map[string]any{"content": "On a call", "contentType": "text"}, "statusMessage", "message")(h, body); err != nil {
					return err
				}
				if err := absent("statusMessage", "expiryDateTime")(h, body); err != nil {
					return err
				}
				return absent("statusMessage", "publishedDateTime")(h, body)
			}},
		{fact: "the user themself sees expiryDateTime (dateTimeTimeZone) and publishedDateTime",
			setup: func(h *harness) {
				must(h, "POST", presenceURL+"/setStatusMessage", status("On a call", `{"dateTime":"2026-11-23T11:00:00","timeZone":"UTC"}`), "")
			},
			method: "GET", path: "/v1.0/me/presence", as: "Presence.Read", status: 200,
			check: func(h *harness, body map[string]any) error {
				if err := equal(map[string]any{"dateTime": "2026-11-23T11:00:00", "timeZone": "UTC"}, "statusMessage", "expiryDateTime")(h, body); err != nil {
					return err
				}
				return equal(t0.Format(time.RFC3339Nano), "statusMessage", "publishedDateTime")(h, body)
			}},
		{fact: "getPresencesByUserId carries statusMessage", setup: func(h *harness) { must(h, "POST", presenceURL+"/setStatusMessage", status("Back at 3", ""), "") },
			method: "POST", path: "/v1.0/communications/getPresencesByUserId", body: `{"ids":["` + alice + `"]}`, status: 200,
			check: func(h *harness, body map[string]any) error {
				return equal("Back at 3", "statusMessage", "message", "content")(h, body["value"].([]any)[0].(map[string]any))
			}},
		{fact: "expiryDateTime takes a Windows zone name (the docs' example)", method: "POST", path: presenceURL + "/setStatusMessage",
			body: status("In a meeting", `{"dateTime":"2026-11-23T03:00:00.0000000","timeZone":"Pacific Standard Time"}`), status: 200,
			check: func(h *harness, _ map[string]any) error {
				v, _ := h.em.Presence(alice)
				if v.StatusMessage == nil || v.StatusMessage.ExpiresAt == nil || !v.StatusMessage.ExpiresAt.Equal(t0.Add(time.Hour)) || v.StatusMessage.SetBy != appID {
					return fmt.Errorf("status message %+v, want one expiring at %s set by the app", v.StatusMessage, t0.Add(time.Hour))
				}
				return nil
			}},
		{fact: "a status message is gone after its expiry", setup: func(h *harness) {
			must(h, "POST", presenceURL+"/setStatusMessage", status("On a call", `{"dateTime":"2026-11-23T10:30:00","timeZone":"UTC"}`), "")
			h.clock.Advance(30 * time.Minute)
		}, method: "GET", path: presenceURL, status: 200, check: equal(nil, "statusMessage")},
		{fact: "status messages are text only", method: "POST", path: presenceURL + "/setStatusMessage",
			body: `{"statusMessage":{"message":{"content":"<b>x</b>","contentType":"html"}}}`, status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "contentType is the bodyType enum", method: "POST", path: presenceURL + "/setStatusMessage",
			body: `{"statusMessage":{"message":{"content":"x","contentType":"markdown"}}}`, status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "statusMessage is required", method: "POST", path: presenceURL + "/setStatusMessage", body: `{}`, status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "message is required", method: "POST", path: presenceURL + "/setStatusMessage",
			body: `{"statusMessage":{"expiryDateTime":{"dateTime":"2026-11-23T11:00:00","timeZone":"UTC"}}}`, status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "setStatusMessage declares only statusMessage", method: "POST", path: presenceURL + "/setStatusMessage",
			body: `{"message":{"content":"x","contentType":"text"}}`, status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "presenceStatusMessage has no other properties", method: "POST", path: presenceURL + "/setStatusMessage",
			body: `{"statusMessage":{"message":{"content":"x"},"expiresIn":"PT1H"}}`, status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "expiryDateTime.dateTime is required", method: "POST", path: presenceURL + "/setStatusMessage",
			body: status("x", `{"timeZone":"UTC"}`), status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "expiryDateTime.dateTime has no offset", method: "POST", path: presenceURL + "/setStatusMessage",
			body: status("x", `{"dateTime":"2026-11-23T11:00:00Z","timeZone":"UTC"}`), status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "expiryDateTime.timeZone must be a zone", method: "POST", path: presenceURL + "/setStatusMessage",
			body: status("x", `{"dateTime":"2026-11-23T11:00:00","timeZone":"Mars/Olympus"}`), status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "setStatusMessage needs Presence.ReadWrite.All", method: "POST", path: presenceURL + "/setStatusMessage",
			body: status("x", ""), as: "Presence.Read", status: 403, check: equal("Forbidden", "error", "code")},

		// The list: $top and $count.
		{fact: "$top pages the list with an @odata.nextLink", method: "GET", path: "/v1.0/communications/presences?$top=2", status: 200,
			check: func(h *harness, body map[string]any) error {
				if err := wantIDs(bob, carol)(h, body); err != nil {
					return err
				}
				next, _ := body["@odata.nextLink"].(string)
				u, err := url.Parse(next)
				if err != nil || next == "" {
					return fmt.Errorf("nextLink %q", next)
				}
				_, _, rest := send(h, "GET", u.RequestURI(), "", "")
				if err := wantIDs(alice)(h, rest); err != nil {
					return fmt.Errorf("the next page: %w", err)
				}
				return absent("@odata.nextLink")(h, rest)
			}},
		{fact: "$count=true counts every match", method: "GET", path: "/v1.0/communications/presences?$top=1&$count=true", status: 200,
			check: equal(float64(3), "@odata.count")},
		{fact: "no @odata.count without $count", method: "GET", path: "/v1.0/communications/presences", status: 200, check: absent("@odata.count")},
		{fact: "$top is a whole number", method: "GET", path: "/v1.0/communications/presences?$top=-1", status: 400, check: equal("BadRequest", "error", "code")},
		{fact: "$count is a boolean", method: "GET", path: "/v1.0/communications/presences?$count=yes", status: 400, check: equal("BadRequest", "error", "code")},

		// Success is any 2XX.
		{fact: "actions answer 200 by default", method: "POST", path: presenceURL + "/setPresence",
			body: `{"sessionId":"` + appID + `","availability":"Busy","activity":"InACall"}`, status: 200},
		{fact: "actions can answer 204 No Content", setup: func(h *harness) {
			if err := h.em.SetActionStatus(http.StatusNoContent); err != nil {
				h.t.Fatal(err)
			}
		}, method: "POST", path: presenceURL + "/setPresence", body: `{"sessionId":"` + appID + `","availability":"Busy","activity":"InACall"}`, status: 204,
			check: func(h *harness, _ map[string]any) error {
				if p := h.presence(alice); p != "Busy/InACall" {
					return fmt.Errorf("presence %s after a 204 setPresence", p)
				}
				return nil
			}},
		{fact: "the admin API turns 204 on", setup: func(h *harness) {
			if st, out := h.admin("POST", "/_emulator/faults", `{"actionStatus":204}`); st != 200 || out["actionStatus"] != float64(204) {
				h.t.Fatalf("admin faults: %d %v", st, out)
			}
		}, method: "POST", path: presenceURL + "/setStatusMessage", body: status("x", ""), status: 204},
	}
	for _, tt := range tests {
		t.Run(tt.fact, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Tenants[0].Users[1].Mail = bobMail })
			if tt.setup != nil {
				tt.setup(h)
			}
			got, header, body := send(h, tt.method, tt.path, tt.body, tt.as)
			if got != tt.status {
				t.Fatalf("%s %s: status %d, want %d (%v)", tt.method, tt.path, got, tt.status, body)
			}
			if got == http.StatusNoContent && (body != nil || header.Get("Content-Type") != "") {
				t.Fatalf("204 with a body %v or a content type %q", body, header.Get("Content-Type"))
			}
			if tt.check != nil {
				if err := tt.check(h, body); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
