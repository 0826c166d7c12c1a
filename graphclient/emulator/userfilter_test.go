package emulator

import (
	"net/http"
	"net/url"
	"testing"
)

func withPhones(c *Config) {
	u := &c.Tenants[0].Users
	(*u)[0].BusinessPhones = []string{"+15551230001", "+1 555 123 0009"}
	(*u)[1].MobilePhone = "+15557770002"
	(*u)[1].ExtensionAttributes = map[string]string{"extensionAttribute3": "1002"}
}

func TestUsersFilteredByPhone(t *testing.T) {
	h := newHarness(t, withPhones)
	get := func(filter string, advanced bool) (int, map[string]any) {
		q := url.Values{"$filter": {filter}, "$select": {"id,userPrincipalName"}}
		req := mustRequest(t, "GET", h.url+"/v1.0/users?"+q.Encode()+map[bool]string{true: "&$count=true"}[advanced], "")
		req.Header.Set("Authorization", "Bearer "+h.token)
		if advanced {
			req.Header.Set("ConsistencyLevel", "eventual")
		}
		status, _, body := h.send(req)
		return status, body
	}
	cases := []struct {
		name     string
		filter   string
		advanced bool
		status   int
		want     string // the one user found, "" for none
	}{
		{"business phone", "businessPhones/any(p:p eq '+15551230001')", false, 200, alice},
		{"second business phone", "businessPhones/any(x: x eq '+1 555 123 0009')", true, 200, alice},
		{"no such phone", "businessPhones/any(p:p eq '+19999999999')", false, 200, ""},
		{"mobile, advanced", "mobilePhone eq '+15557770002'", true, 200, bob},
		{"mobile, plain", "mobilePhone eq '+15557770002'", false, 400, ""},
		{"extension attribute", "onPremisesExtensionAttributes/extensionAttribute3 eq '1002'", true, 200, bob},
		{"extension attribute, plain", "onPremisesExtensionAttributes/extensionAttribute3 eq '1002'", false, 400, ""},
		{"lambda variables differ", "businessPhones/any(p:q eq '+15551230001')", false, 400, ""},
		{"other property", "faxNumber eq '1'", true, 400, ""},
		{"quote escaped", "mobilePhone eq 'o''brien'", true, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := get(c.filter, c.advanced)
			if status != c.status {
				t.Fatalf("%d %v", status, body)
			}
			if status != http.StatusOK {
				if code := errorCode(t, body); code != "Request_UnsupportedQuery" {
					t.Fatalf("code %s", code)
				}
				return
			}
			value := body["value"].([]any)
			switch {
			case c.want == "" && len(value) != 0, c.want != "" && (len(value) != 1 || value[0].(map[string]any)["id"] != c.want):
				t.Fatalf("found %v, want %q", value, c.want)
			}
			if c.advanced && body["@odata.count"] != float64(len(value)) {
				t.Fatalf("count %v", body["@odata.count"])
			}
		})
	}
}

func FuzzUserFilter(f *testing.F) {
	for _, s := range []string{"businessPhones/any(p:p eq '+1')", "mobilePhone eq 'a''b'", "onPremisesExtensionAttributes/extensionAttribute15 eq ''", "x", "businessPhones/any(", "'"} {
		f.Add(s)
	}
	u := User{BusinessPhones: []string{"+1"}, MobilePhone: "a'b", ExtensionAttributes: map[string]string{"extensionAttribute15": "x"}}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4*maxUserFilter {
			return
		}
		flt, err := parseUserFilter(s)
		if err != nil {
			if err.status != http.StatusBadRequest {
				t.Fatalf("status %d", err.status)
			}
			return
		}
		_ = flt.matches(u)
	})
}
