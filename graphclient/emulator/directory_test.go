package emulator

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// Groups of the directory tests: staff holds alice, bob and the nested
// group ops; ops holds carol.
const (
	staff = "5a1d0000-0000-4000-8000-00000000000a"
	ops   = "5a1d0000-0000-4000-8000-00000000000b"
)

// manyUsers is a tenant config with n more users (ids sorting after the
// demo users) and the groups staff and ops.
func manyUsers(n int) func(*Config) {
	return func(c *Config) {
		for i := range n {
			c.Tenants[0].Users = append(c.Tenants[0].Users, User{ID: fmt.Sprintf("ffff0000-0000-4000-8000-%012d", i), UserPrincipalName: fmt.Sprintf("u%d@contoso.example", i)})
		}
		c.Tenants[0].Groups = []Group{
			{ID: staff, DisplayName: "Staff", Members: []string{bob, alice, ops}},
			{ID: ops, DisplayName: "Ops", Members: []string{carol}},
		}
		c.Tenants[0].Apps[0].Roles = append(c.Tenants[0].Apps[0].Roles, "GroupMember.Read.All")
	}
}

// follow reads a list page by page through its @odata.nextLink (on the
// emulator's own host) and returns the ids and the number of pages.
func (h *harness) follow(path string) (ids []string, pages int, last map[string]any) {
	h.t.Helper()
	for path != "" && pages < 1000 {
		status, body := h.do("GET", path, nil)
		if status != 200 {
			h.t.Fatalf("%s: %d %v", path, status, body)
		}
		pages++
		for _, v := range body["value"].([]any) {
			ids = append(ids, v.(map[string]any)["id"].(string))
		}
		path = ""
		if next, ok := body["@odata.nextLink"].(string); ok {
			if !strings.HasPrefix(next, h.url+"/v1.0/") {
				h.t.Fatalf("nextLink %q is not on the emulator's host %s", next, h.url)
			}
			path = strings.TrimPrefix(next, h.url)
		}
		last = body
	}
	return ids, pages, last
}

// TestListUsersPaging: GET /users lists every user of the tenant once, in
// object id order, $top at a time, following @odata.nextLink; other
// tenants' users are not listed.
func TestListUsersPaging(t *testing.T) {
	h := newHarness(t, manyUsers(250))
	var want []string
	for _, v := range h.em.Presences() {
		if v.ID != dave {
			want = append(want, strings.ToLower(v.ID))
		}
	}
	cases := []struct {
		query string
		pages int
	}{
		{"", 3}, // 253 users, 100 by default
		{"?$top=999", 1},
		{"?$top=1", 253},
		{"?$top=100&$select=id,userPrincipalName", 3},
		{"?$select=id&$top=253", 1},
		{"?$top=252", 2},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			h.t = t
			ids, pages, last := h.follow("/v1.0/users" + c.query)
			if pages != c.pages || !slices.Equal(ids, want) {
				t.Fatalf("%d pages, %d ids (first %v), want %d pages of %d", pages, len(ids), ids[:min(3, len(ids))], c.pages, len(want))
			}
			if strings.Contains(c.query, "$select=id,userPrincipalName") {
				u := last["value"].([]any)[0].(map[string]any)
				if len(u) != 2 || u["userPrincipalName"] == nil {
					t.Fatalf("$select=id,userPrincipalName: %v", u)
				}
			}
		})
	}
}

// TestDirectoryPagingErrors: bad paging options are Graph's 400s.
func TestDirectoryPagingErrors(t *testing.T) {
	h := newHarness(t, manyUsers(0))
	for _, path := range []string{
		"/v1.0/users?$top=0", "/v1.0/users?$top=1000", "/v1.0/users?$top=x", "/v1.0/users?$top=1&$top=2",
		"/v1.0/users?$skiptoken=nonsense", "/v1.0/users?$skiptoken=" + url.QueryEscape(skipToken("not-a-guid")),
		"/v1.0/users?$select=id,nope",
		"/v1.0/groups/" + staff + "/members?$top=1000", "/v1.0/groups/" + staff + "/members?$skiptoken=%25",
		"/v1.0/groups/not-a-guid/members",
	} {
		status, body := h.do("GET", path, nil)
		if status != 400 {
			t.Fatalf("%s: %d %v", path, status, body)
		}
		errorCode(t, body)
	}
}

// TestGroupMembers: GET /groups/{id}/members lists the direct members,
// users and groups each with @odata.type, page by page; the
// microsoft.graph.user cast lists users only; unknown, foreign and
// unpermitted reads are refused as Graph does.
func TestGroupMembers(t *testing.T) {
	h := newHarness(t, manyUsers(0))
	status, body := h.do("GET", "/v1.0/groups/"+staff+"/members?$select=id,userPrincipalName", nil)
	if status != 200 {
		t.Fatalf("%d %v", status, body)
	}
	types := map[string]string{}
	for _, v := range body["value"].([]any) {
		m := v.(map[string]any)
		types[m["id"].(string)] = m["@odata.type"].(string)
	}
	want := map[string]string{alice: "#microsoft.graph.user", bob: "#microsoft.graph.user", ops: "#microsoft.graph.group"}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("members %v, want %v", types, want)
	}
	ids, pages, _ := h.follow("/v1.0/groups/" + staff + "/members?$top=1")
	if pages != 3 || !slices.Equal(ids, []string{ops, bob, alice}) { // by object id
		t.Fatalf("paged members %v in %d pages", ids, pages)
	}
	ids, pages, _ = h.follow("/v1.0/groups/" + staff + "/members/microsoft.graph.user?$top=1")
	if pages != 2 || !slices.Equal(ids, []string{bob, alice}) {
		t.Fatalf("users only: %v in %d pages", ids, pages)
	}

	h.em.SetGroup("fabrikam.example", Group{ID: "5a1d0000-0000-4000-8000-0000000000ff", Members: []string{dave}})
	for _, c := range []struct {
		path   string
		token  string
		status int
	}{
		{"/v1.0/groups/5a1d0000-0000-4000-8000-000000000099/members", h.token, 404},
		{"/v1.0/groups/5a1d0000-0000-4000-8000-0000000000ff/members", h.token, 404}, // another tenant's
		{"/v1.0/groups/" + staff + "/members", h.appToken(tenantID, "reader", "reader-secret"), 403},
		{"/v1.0/groups/" + staff + "/members", "", 401},
	} {
		if status, body := h.do("GET", c.path, nil, c.token); status != c.status {
			t.Fatalf("%s: %d %v, want %d", c.path, status, body, c.status)
		}
	}
}

// TestAdminDirectory: users, groups and members made and removed through
// the admin API show in the lists at once; Reset brings the configuration
// back.
func TestAdminDirectory(t *testing.T) {
	h := newHarness(t, manyUsers(0))
	const erin = "e5e50000-0000-4000-8000-000000000001"
	steps := []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/_emulator/users", `{"tenant":"contoso.example","id":"` + erin + `","userPrincipalName":"erin@contoso.example"}`, 200},
		{"POST", "/_emulator/users", `{"tenant":"contoso.example","id":"` + erin + `","userPrincipalName":"erin2@contoso.example"}`, 400}, // duplicate id
		{"POST", "/_emulator/users", `{"tenant":"nowhere.example","id":"e5e50000-0000-4000-8000-000000000002","userPrincipalName":"x@y"}`, 400},
		{"POST", "/_emulator/users", `{"tenant":"contoso.example","id":"e5e5","userPrincipalName":"x@y"}`, 400},
		{"POST", "/_emulator/groups/" + staff + "/members", `{"id":"erin@contoso.example"}`, 200},
		{"POST", "/_emulator/groups/" + staff + "/members", `{"id":"` + dave + `"}`, 400},  // another tenant's user
		{"POST", "/_emulator/groups/" + staff + "/members", `{"id":"` + staff + `"}`, 400}, // itself
		{"DELETE", "/_emulator/groups/" + staff + "/members/" + bob, "", 200},
		{"DELETE", "/_emulator/groups/" + staff + "/members/" + bob, "", 404},
		{"POST", "/_emulator/groups", `{"tenant":"contoso.example","id":"5a1d0000-0000-4000-8000-00000000000c","displayName":"New","members":["` + alice + `"]}`, 200},
		{"POST", "/_emulator/groups", `{"tenant":"contoso.example","id":"5a1d0000-0000-4000-8000-00000000000d","members":["nobody"]}`, 400},
		{"POST", "/_emulator/groups", `{"tenant":"contoso.example","id":"5a1d","members":[]}`, 400},
		{"POST", "/_emulator/groups", `{"tenant":"contoso.example","id":"5a1d0000-0000-4000-8000-00000000000d","extra":1}`, 400},
		{"DELETE", "/_emulator/users/" + carol, "", 200},
		{"DELETE", "/_emulator/users/" + carol, "", 404},
		{"DELETE", "/_emulator/groups/5a1d0000-0000-4000-8000-00000000000c", "", 200},
		{"DELETE", "/_emulator/groups/5a1d0000-0000-4000-8000-00000000000c", "", 404},
	}
	for i, s := range steps {
		if status, body := h.admin(s.method, s.path, s.body); status != s.status {
			t.Fatalf("step %d %s %s: %d %v, want %d", i, s.method, s.path, status, body, s.status)
		}
	}
	ids, _, _ := h.follow("/v1.0/groups/" + staff + "/members")
	if !slices.Equal(ids, []string{ops, erin, alice}) {
		t.Fatalf("staff after the changes: %v", ids)
	}
	if ids, _, _ := h.follow("/v1.0/groups/" + ops + "/members"); len(ids) != 0 {
		t.Fatalf("a removed user is left in a group: %v", ids)
	}
	users, _, _ := h.follow("/v1.0/users")
	if !slices.Contains(users, erin) || slices.Contains(users, carol) {
		t.Fatalf("users after the changes: %v", users)
	}
	if status, body := h.admin("GET", "/_emulator/groups", ""); status != 200 || len(body["value"].([]any)) != 2 {
		t.Fatalf("GET /_emulator/groups: %d %v", status, body)
	}
	h.em.Reset()
	h.token = h.appToken(tenantID, appID, appKey)
	users, _, _ = h.follow("/v1.0/users")
	if slices.Contains(users, erin) || !slices.Contains(users, carol) {
		t.Fatalf("users after Reset: %v", users)
	}
	if ids, _, _ := h.follow("/v1.0/groups/" + staff + "/members"); len(ids) != 3 || !slices.Contains(ids, bob) {
		t.Fatalf("staff after Reset: %v", ids)
	}
}

// TestGroupConfigValidation: groups are checked with their keys.
func TestGroupConfigValidation(t *testing.T) {
	c := testConfig()
	c.Tenants[0].Groups = []Group{
		{ID: "not-a-guid"},
		{ID: alice},
		{ID: staff, Members: []string{bob, dave, staff, "nobody"}},
		{ID: staff},
	}
	err := c.Validate()
	for _, want := range []string{
		"tenants[0].groups[0].id: must be an object id (a GUID)",
		"tenants[0].groups[1].id: duplicate of tenants[0].users[0]",
		`tenants[0].groups[2].members[1]: "` + dave + `" is no user or other group of this tenant`,
		`tenants[0].groups[2].members[2]: "` + staff + `" is no user or other group of this tenant`,
		`tenants[0].groups[2].members[3]: "nobody" is no user or other group of this tenant`,
		"tenants[0].groups[3].id: duplicate of tenants[0].groups[2]",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

// TestParseDirectoryPage: the paging options, each case by itself.
func TestParseDirectoryPage(t *testing.T) {
	after := "5a1d0000-0000-4000-8000-00000000000a"
	for _, c := range []struct {
		query string
		want  DirectoryPage
		ok    bool
	}{
		{"", DirectoryPage{Top: 100}, true},
		{"$top=1", DirectoryPage{Top: 1}, true},
		{"$top=999", DirectoryPage{Top: 999}, true},
		{"$top=0", DirectoryPage{}, false},
		{"$top=1000", DirectoryPage{}, false},
		{"$top=-1", DirectoryPage{}, false},
		{"$top=1e2", DirectoryPage{}, false},
		{"$top=", DirectoryPage{}, false},
		{"$top=1&$top=1", DirectoryPage{}, false},
		{"$skiptoken=" + skipToken(strings.ToUpper(after)), DirectoryPage{Top: 100, After: after}, true},
		{"$top=5&$skiptoken=" + skipToken(after), DirectoryPage{Top: 5, After: after}, true},
		{"$skiptoken=", DirectoryPage{}, false},
		{"$skiptoken=" + skipToken("alice@contoso.example"), DirectoryPage{}, false},
		{"$skiptoken=!!", DirectoryPage{}, false},
		{"$skiptoken=" + skipToken(after) + "&$skiptoken=" + skipToken(after), DirectoryPage{}, false},
	} {
		q, _ := url.ParseQuery(c.query)
		got, err := ParseDirectoryPage(q)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("%q: %+v, %v; want %+v ok=%v", c.query, got, err, c.want, c.ok)
		}
	}
}

// FuzzParseDirectoryPage: any query is a page or a 400, never a panic; a
// page's size is within Graph's bounds and its token reads back.
func FuzzParseDirectoryPage(f *testing.F) {
	for _, s := range []string{"", "$top=5", "$top=999&$skiptoken=" + skipToken(alice), "$skiptoken=%zz", "$top=99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		p, perr := parseDirectoryPage(q)
		if perr != nil {
			if perr.status != 400 {
				t.Fatalf("%q: status %d", query, perr.status)
			}
			return
		}
		if p.Top < 1 || p.Top > maxDirectoryTop {
			t.Fatalf("%q: top %d", query, p.Top)
		}
		if p.After != "" {
			back, err := parseDirectoryPage(url.Values{"$skiptoken": {skipToken(p.After)}})
			if err != nil || back.After != p.After {
				t.Fatalf("%q: token of %q reads back as %+v, %v", query, p.After, back, err)
			}
		}
		ids := []string{alice, bob, carol}
		slices.Sort(ids)
		from, to, more := p.page(ids)
		if from < 0 || to > len(ids) || from > to || more != (to < len(ids)) {
			t.Fatalf("%q: page %d..%d more=%v", query, from, to, more)
		}
	})
}
