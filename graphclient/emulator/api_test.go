package emulator

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestSetPresenceValidation: only the five settable pairs in Graph's
// casing, a required sessionId, PT5M to PT4H, a JSON body.
func TestSetPresenceValidation(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name        string
		body        string
		contentType string
		status      int
		code        string
		message     string
	}{
		{"Available/Available", `{"sessionId":"` + appID + `","availability":"Available","activity":"Available"}`, "", 200, "", ""},
		{"Busy/InACall", `{"sessionId":"` + appID + `","availability":"Busy","activity":"InACall"}`, "", 200, "", ""},
		{"Busy/InAConferenceCall", `{"sessionId":"` + appID + `","availability":"Busy","activity":"InAConferenceCall"}`, "", 200, "", ""},
		{"Away/Away", `{"sessionId":"` + appID + `","availability":"Away","activity":"Away"}`, "", 200, "", ""},
		{"DoNotDisturb/Presenting", `{"sessionId":"` + appID + `","availability":"DoNotDisturb","activity":"Presenting"}`, "", 200, "", ""},
		{"InAMeeting is Teams' own", `{"sessionId":"` + appID + `","availability":"Busy","activity":"InAMeeting"}`, "", 400, "InvalidArgument", ""},
		{"OutOfOffice is the mailbox's", `{"sessionId":"` + appID + `","availability":"Away","activity":"OutOfOffice"}`, "", 400, "InvalidArgument", ""},
		{"Busy/Busy is preferred only", `{"sessionId":"` + appID + `","availability":"Busy","activity":"Busy"}`, "", 400, "InvalidArgument", ""},
		{"lower case", `{"sessionId":"` + appID + `","availability":"busy","activity":"inACall"}`, "", 400, "InvalidArgument", ""},
		{"no activity", `{"sessionId":"` + appID + `","availability":"Busy"}`, "", 400, "InvalidArgument", ""},
		{"no sessionId", `{"availability":"Busy","activity":"InACall"}`, "", 400, "InvalidArgument", ""},
		{"empty body", ``, "", 400, "InvalidArgument", ""},
		{"PT5M", `{"sessionId":"a","availability":"Busy","activity":"InACall","expirationDuration":"PT5M"}`, "", 200, "", ""},
		{"PT4H", `{"sessionId":"a","availability":"Busy","activity":"InACall","expirationDuration":"PT4H"}`, "", 200, "", ""},
		{"PT240M", `{"sessionId":"a","availability":"Busy","activity":"InACall","expirationDuration":"PT240M"}`, "", 200, "", ""},
		{"null expiration", `{"sessionId":"a","availability":"Busy","activity":"InACall","expirationDuration":null}`, "", 200, "", ""},
		{"PT4M59S", `{"sessionId":"a","availability":"Busy","activity":"InACall","expirationDuration":"PT4M59S"}`, "", 400, "InvalidArgument", "The provided [ExpirationDuration] is out of range."},
		{"PT4H0M1S", `{"sessionId":"a","availability":"Busy","activity":"InACall","expirationDuration":"PT4H0M1S"}`, "", 400, "InvalidArgument", "The provided [ExpirationDuration] is out of range."},
		{"P1D", `{"sessionId":"a","availability":"Busy","activity":"InACall","expirationDuration":"P1D"}`, "", 400, "InvalidArgument", "The provided [ExpirationDuration] is out of range."},
		{"PT0S", `{"sessionId":"a","availability":"Busy","activity":"InACall","expirationDuration":"PT0S"}`, "", 400, "InvalidArgument", "The provided [ExpirationDuration] is out of range."},
		{"not a duration", `{"sessionId":"a","availability":"Busy","activity":"InACall","expirationDuration":"15 minutes"}`, "", 400, "BadRequest", ""},
		{"negative duration", `{"sessionId":"a","availability":"Busy","activity":"InACall","expirationDuration":"-PT5M"}`, "", 400, "BadRequest", ""},
		{"unknown parameter", `{"sessionId":"a","availability":"Busy","activity":"InACall","status":"x"}`, "", 400, "BadRequest", "The parameter 'status' in the request payload is not a valid parameter for the operation 'setPresence'."},
		{"PascalCase parameter", `{"SessionId":"a","availability":"Busy","activity":"InACall"}`, "", 400, "BadRequest", ""},
		{"odata annotation", `{"@odata.type":"#microsoft.graph.x","sessionId":"a","availability":"Busy","activity":"InACall"}`, "", 200, "", ""},
		{"number for a string", `{"sessionId":1,"availability":"Busy","activity":"InACall"}`, "", 400, "BadRequest", ""},
		{"not JSON", `sessionId=a`, "", 400, "BadRequest", ""},
		{"a JSON array", `[]`, "", 400, "BadRequest", ""},
		{"text/plain", `{"sessionId":"a","availability":"Busy","activity":"InACall"}`, "text/plain", 415, "UnsupportedMediaType", ""},
		{"no content type", `{"sessionId":"a","availability":"Busy","activity":"InACall"}`, "-", 415, "UnsupportedMediaType", ""},
		{"charset parameter", `{"sessionId":"a","availability":"Busy","activity":"InACall"}`, "application/json; charset=utf-8", 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := mustRequest(t, "POST", h.url+"/v1.0/users/"+alice+"/presence/setPresence", tt.body)
			req.Header.Set("Authorization", "Bearer "+h.token)
			switch tt.contentType {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				req.Header.Set("Content-Type", tt.contentType)
			}
			status, header, body := h.send(req)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%v)", status, tt.status, body)
			}
			if tt.status == 200 {
				if body != nil || header.Get("request-id") == "" {
					t.Fatalf("200 with body %v, request-id %q", body, header.Get("request-id"))
				}
				return
			}
			if code := errorCode(t, body); code != tt.code {
				t.Fatalf("code %s, want %s (%v)", code, tt.code, body)
			}
			if msg := body["error"].(map[string]any)["message"]; tt.message != "" && msg != tt.message {
				t.Fatalf("message %q, want %q", msg, tt.message)
			}
			if inner := body["error"].(map[string]any)["innerError"].(map[string]any); inner["request-id"] != header.Get("request-id") {
				t.Fatalf("innerError request-id %v, header %q", inner["request-id"], header.Get("request-id"))
			}
		})
	}
}

// TestSetUserPreferredPresenceValidation: the six preferred pairs.
func TestSetUserPreferredPresenceValidation(t *testing.T) {
	h := newHarness(t)
	for _, tt := range []struct {
		body   string
		status int
	}{
		{`{"availability":"Available","activity":"Available"}`, 200},
		{`{"availability":"Busy","activity":"Busy"}`, 200},
		{`{"availability":"DoNotDisturb","activity":"DoNotDisturb"}`, 200},
		{`{"availability":"BeRightBack","activity":"BeRightBack"}`, 200},
		{`{"availability":"Away","activity":"Away"}`, 200},
		{`{"availability":"Offline","activity":"OffWork","expirationDuration":"PT8H"}`, 200},
		{`{"availability":"Busy","activity":"InACall"}`, 400},
		{`{"availability":"Offline","activity":"Offline"}`, 400},
		{`{"availability":"Away","activity":"Away","expirationDuration":"PT0S"}`, 400},
		{`{"availability":"Away","activity":"Away","sessionId":"x"}`, 400},
	} {
		if status, body := h.do("POST", "/v1.0/users/"+alice+"/presence/setUserPreferredPresence", tt.body); status != tt.status {
			t.Errorf("%s: %d, want %d (%v)", tt.body, status, tt.status, body)
		}
	}
}

// TestClearPresence: clearPresence ends the named session only, and a
// session that does not exist is 404.
func TestClearPresence(t *testing.T) {
	h := newHarness(t)
	clear := func(session string) (int, map[string]any) {
		return h.do("POST", "/v1.0/users/"+alice+"/presence/clearPresence", map[string]string{"sessionId": session})
	}
	if status, body := clear(appID); status != 404 || errorCode(t, body) != "NotFound" {
		t.Fatalf("never set: %d %v", status, body)
	}
	h.em.SetTeamsSession(alice, "Away", "Away")
	h.set(alice, "Busy", "InACall", "PT1H")
	if status, _ := clear("someone-else"); status != 404 {
		t.Fatalf("another session id: %d", status)
	}
	if status, body := clear(appID); status != 200 || body != nil {
		t.Fatalf("clear: %d %v", status, body)
	}
	if got := h.presence(alice); got != "Away/Away" {
		t.Fatalf("after clear, with a Teams session left: %s", got)
	}
	h.em.EndSession(alice, DefaultTeamsSessionID)
	if got := h.presence(alice); got != "Offline/Offline" {
		t.Fatalf("no session left: %s", got)
	}
	if status, _ := h.do("POST", "/v1.0/users/"+alice+"/presence/clearPresence", map[string]string{}); status != 400 {
		t.Fatalf("no sessionId: %d", status)
	}
}

// TestGetPresencesByUserID: 1 to 650 ids; unknown ids and other tenants'
// users are left out; each user once, in the order asked.
func TestGetPresencesByUserID(t *testing.T) {
	h := newHarness(t)
	h.em.SetTeamsSession(bob, "Busy", "InAMeeting")
	ids := func(n int, first ...string) []string {
		out := append([]string(nil), first...)
		for i := len(out); i < n; i++ {
			out = append(out, fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
		}
		return out
	}
	tests := []struct {
		name   string
		ids    []string
		status int
		want   []string
	}{
		{"two", []string{bob, alice}, 200, []string{bob + " Busy/InAMeeting", alice + " Offline/Offline"}},
		{"650", ids(650, alice), 200, []string{alice + " Offline/Offline"}},
		{"651", ids(651, alice), 400, nil},
		{"none", []string{}, 400, nil},
		{"duplicates and a UPN (names nobody)", []string{alice, alice, "bob@contoso.example"}, 200, []string{alice + " Offline/Offline"}},
		{"other tenant's user", []string{dave}, 200, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.do("POST", "/v1.0/communications/getPresencesByUserId", map[string][]string{"ids": tt.ids})
			if status != tt.status {
				t.Fatalf("status %d, want %d (%v)", status, tt.status, body)
			}
			if status != 200 {
				if errorCode(t, body) != "BadRequest" {
					t.Fatalf("body %v", body)
				}
				return
			}
			var got []string
			for _, v := range body["value"].([]any) {
				p := v.(map[string]any)
				if p["outOfOfficeSettings"] == nil || p["sequenceNumber"] == nil {
					t.Fatalf("incomplete presence %v", p)
				}
				got = append(got, fmt.Sprintf("%s %s/%s", p["id"], p["availability"], p["activity"]))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("value %v, want %v", got, tt.want)
			}
		})
	}
	if status, body := h.do("POST", "/v1.0/communications/getPresencesByUserId", `{"ids":"x"}`); status != 400 {
		t.Fatalf("ids not a list: %d %v", status, body)
	}
}

// TestListPresences: every user of the tenant, or those $filter names.
func TestListPresences(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		query  string
		status int
		ids    []string
	}{
		{"", 200, []string{bob, carol, alice}}, // ordered by object id
		{"$filter=" + url.QueryEscape("id in ('"+alice+"','"+bob+"')"), 200, []string{alice, bob}},
		{"$filter=" + url.QueryEscape("id in ( '"+bob+"' , 'nobody' )"), 200, []string{bob}},
		{"$filter=" + url.QueryEscape("id eq '"+carol+"' or id eq '"+alice+"'"), 200, []string{carol, alice}},
		{"$filter=" + url.QueryEscape("(id eq '"+carol+"')"), 200, []string{carol}},
		{"$filter=" + url.QueryEscape("availability eq 'Busy'"), 400, nil},
		{"$filter=" + url.QueryEscape("id in ('"+alice), 400, nil},
		{"$filter=" + url.QueryEscape("id in ('"+dave+"')"), 200, nil},
		{"$select=availability&$top=5&$count=true", 200, []string{bob, carol, alice}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			status, body := h.do("GET", "/v1.0/communications/presences?"+tt.query, nil)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%v)", status, tt.status, body)
			}
			if status != 200 {
				return
			}
			var got []string
			for _, v := range body["value"].([]any) {
				got = append(got, v.(map[string]any)["id"].(string))
			}
			if strings.Join(got, ",") != strings.Join(tt.ids, ",") {
				t.Fatalf("ids %v, want %v", got, tt.ids)
			}
		})
	}
	_, body := h.do("GET", "/v1.0/communications/presences?$select=availability", nil)
	if p := body["value"].([]any)[0].(map[string]any); len(p) != 2 || p["availability"] != "Offline" {
		t.Fatalf("$select=availability: %v", p)
	}
}

// TestGetUser: by object id, UPN (percent-encoded or not) or mail, with
// $select; Graph's 404 and 400.
func TestGetUser(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		path   string
		status int
		want   map[string]any
	}{
		{"/v1.0/users/" + alice, 200, map[string]any{"id": alice, "userPrincipalName": "alice@contoso.example", "displayName": "Alice", "mail": "alice@contoso.example", "jobTitle": nil}},
		{"/v1.0/users/alice%40contoso.example?$select=id,userPrincipalName,mail", 200, map[string]any{"id": alice, "userPrincipalName": "alice@contoso.example", "mail": "alice@contoso.example"}},
		{"/beta/users/ALICE@contoso.example?$select=id", 200, map[string]any{"id": alice}},
		{"/v1.0/users/" + bob + "?$select=mail,displayName", 200, map[string]any{"mail": nil, "displayName": "Bob"}},
		{"/v1.0/users/" + alice + "?$select=id,shoeSize", 400, nil},
		{"/v1.0/users/nobody@contoso.example", 404, nil},
		{"/v1.0/users/" + dave, 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, body := h.do("GET", tt.path, nil)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%v)", status, tt.status, body)
			}
			if tt.want == nil {
				return
			}
			delete(body, "@odata.context")
			if strings.Contains(tt.path, "$select") && len(body) != len(tt.want) {
				t.Fatalf("$select: got %v, want only %v", body, tt.want)
			}
			assertSubset(t, "user", any(tt.want), any(body))
		})
	}
	if _, body := h.do("GET", "/v1.0/users/nobody@contoso.example", nil); errorCode(t, body) != "Request_ResourceNotFound" {
		t.Fatalf("unknown user: %v", body)
	}
}

// TestWireDetails: gzip bodies, percent-encoded UPNs, $select on presence,
// unknown segments and methods, request and client request ids.
func TestWireDetails(t *testing.T) {
	h := newHarness(t)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Write([]byte(`{"sessionId":"` + appID + `","availability":"Busy","activity":"InACall","expirationDuration":"PT15M"}`))
	gz.Close()
	req := mustRequest(t, "POST", h.url+"/v1.0/users/alice%40contoso.example/presence/setPresence", buf.String())
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	if status, _, body := h.send(req); status != 200 {
		t.Fatalf("gzip body to a percent-encoded UPN: %d %v", status, body)
	}
	if got := h.presence(alice); got != "Busy/InACall" {
		t.Fatalf("presence %s", got)
	}
	if log := h.em.Requests(); log[len(log)-1].ContentEncoding != "gzip" || !strings.Contains(log[len(log)-1].Body, "InACall") {
		t.Fatalf("request log %+v", log[len(log)-1])
	}

	req = mustRequest(t, "POST", h.url+"/v1.0/users/"+alice+"/presence/setPresence", "not gzip")
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	if status, _, body := h.send(req); status != 400 || errorCode(t, body) != "BadRequest" {
		t.Fatalf("broken gzip: %d %v", status, body)
	}

	status, body := h.do("GET", "/beta/users/alice%40contoso.example/presence?$select=availability,activity", nil)
	if status != 200 || len(body) != 4 || body["availability"] != "Busy" || body["id"] != alice || !strings.Contains(body["@odata.context"].(string), "/beta/$metadata#") {
		t.Fatalf("$select on presence: %d %v", status, body)
	}
	if status, body := h.do("GET", "/v1.0/users/"+alice+"/presence?$select=mood", nil); status != 400 || errorCode(t, body) != "BadRequest" {
		t.Fatalf("unknown $select: %d %v", status, body)
	}
	if status, body := h.do("GET", "/v1.0/users/"+alice+"/presence?$expand=x&$orderby=id", nil); status != 200 {
		t.Fatalf("other OData options: %d %v", status, body)
	}
	if status, body := h.do("GET", "/v1.0/communications/callRecords", nil); status != 400 || body["error"].(map[string]any)["message"] != "Resource not found for the segment 'callRecords'." {
		t.Fatalf("unknown segment: %d %v", status, body)
	}
	if status, body := h.do("DELETE", "/v1.0/users/"+alice+"/presence", nil); status != http.StatusMethodNotAllowed || errorCode(t, body) != "BadRequest" {
		t.Fatalf("wrong method: %d %v", status, body)
	}
	if status, body := h.do("GET", "/v2.0/users/"+alice+"/presence", nil); status != 404 || errorCode(t, body) != "NotFound" {
		t.Fatalf("unknown version: %d %v", status, body)
	}

	req = mustRequest(t, "GET", h.url+"/v1.0/users/"+alice+"/presence", "")
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("client-request-id", "my-id-1")
	if _, header, _ := h.send(req); header.Get("client-request-id") != "my-id-1" || header.Get("request-id") == "" {
		t.Fatalf("ids: %v", header)
	}
	req = mustRequest(t, "GET", h.url+"/v1.0/users/nobody/presence", "")
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("client-request-id", "my-id-2")
	if _, _, body := h.send(req); body["error"].(map[string]any)["innerError"].(map[string]any)["client-request-id"] != "my-id-2" {
		t.Fatalf("client-request-id not in innerError: %v", body)
	}
}
