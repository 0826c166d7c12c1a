package emulator

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The directory beyond single users: listing every user of a tenant page
// by page (GET /users), groups and their direct members
// (GET /groups/{id}/members), and users and groups created or removed at
// run time for tests.

// Group is a directory group: its object id (a GUID), display name and
// direct members, each the object id of a user or a group of the same
// tenant.
type Group struct {
	ID          string   `yaml:"id" json:"id"`
	DisplayName string   `yaml:"display_name" json:"displayName"`
	Members     []string `yaml:"members" json:"members"`
}

// groupState is a group as the emulator holds it; guarded by Emulator.mu.
type groupState struct {
	group   Group  // Members in lower case, each once
	tenant  string // lower-case tenant id
	members map[string]bool
}

// Bounds on what the directory may hold, so that no admin request grows
// it without limit.
const (
	maxDirectoryObjects = 1_000_000 // users and groups, all tenants
	maxGroupMembers     = 200_000
)

// Graph's paging of directory lists: $top from 1 to 999, 100 by default.
const (
	defaultDirectoryTop = 100
	maxDirectoryTop     = 999
)

// DirectoryPage is a parsed page request of a directory list: how many
// objects to return and the object id the previous page ended with ("" on
// the first page).
type DirectoryPage struct {
	Top   int
	After string
}

// ParseDirectoryPage reads the paging options of GET /users and
// GET /groups/{id}/members: $top (1 to 999, 100 when absent) and
// $skiptoken (opaque to clients; the emulator's own, naming where the
// previous page ended). Each may appear once.
func ParseDirectoryPage(q url.Values) (DirectoryPage, error) {
	p, err := parseDirectoryPage(q)
	if err != nil {
		return p, err
	}
	return p, nil
}

func parseDirectoryPage(q url.Values) (DirectoryPage, *apiError) {
	p := DirectoryPage{Top: defaultDirectoryTop}
	if top, ok := q["$top"]; ok {
		n, err := strconv.Atoi(top[0])
		if err != nil || n < 1 || n > maxDirectoryTop || len(top) > 1 {
			return p, badRequest("Request_BadRequest", "Invalid page size specified: '%s'. Must be between 1 and %d inclusive.", truncate(top[0], 16), maxDirectoryTop)
		}
		p.Top = n
	}
	if skip, ok := q["$skiptoken"]; ok {
		raw, err := base64.RawURLEncoding.DecodeString(skip[0])
		if err != nil || len(skip) > 1 || !isObjectID(string(raw)) {
			return p, badRequest("Directory_InvalidSkipToken", "The specified page token value has expired or is invalid.")
		}
		p.After = strings.ToLower(string(raw))
	}
	return p, nil
}

// skipToken is the $skiptoken of the page after the object id last.
func skipToken(last string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(last)))
}

// page returns the objects of ids (sorted, lower case) that p asks for,
// as indexes, and whether more follow.
func (p DirectoryPage) page(ids []string) (from, to int, more bool) {
	from, _ = slices.BinarySearch(ids, p.After)
	if from < len(ids) && p.After != "" && ids[from] == p.After {
		from++
	}
	to = min(from+p.Top, len(ids))
	return from, to, to < len(ids)
}

// nextLink is the URL of the page after last: the request's own URL (on
// the host it was sent to, so that any client can follow it) with a new
// $skiptoken.
func nextLink(r *http.Request, last string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	q := r.URL.Query()
	q.Set("$skiptoken", skipToken(last))
	u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}
	return u.String()
}

// groupProperties are the group properties the members list shows.
var groupProperties = []string{"id", "displayName", "mail"}

// memberProperties are what $select may name on the members list: a user's
// properties (a group's are among them).
var memberProperties = userProperties

// groupMemberRead is what lists a group's members.
var groupMemberRead = permission{
	app:       []string{"GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"},
	delegated: []string{"GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All", "Directory.AccessAsUser.All"},
}

// listGroupMembers serves GET /groups/{id}/members (users and groups,
// each with @odata.type) and GET /groups/{id}/members/microsoft.graph.user
// (users only), $top at a time with an @odata.nextLink, honouring $select.
// Members are the direct ones, ordered by object id.
func (e *Emulator) listGroupMembers(w http.ResponseWriter, r *http.Request) {
	c, err := e.authorized(r, groupMemberRead, false)
	if err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	selected, err := selectFields(q.Get("$select"), "directoryObject", memberProperties)
	var p DirectoryPage
	if err == nil {
		p, err = parseDirectoryPage(q)
	}
	id := r.PathValue("id")
	if err == nil && !isObjectID(id) {
		err = badRequest("Request_BadRequest", "Invalid object identifier '%s'.", truncate(id, 64))
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	usersOnly := strings.HasSuffix(r.URL.Path, "/microsoft.graph.user")
	var value []map[string]any
	last := ""
	e.mu.Lock()
	g := e.groups[strings.ToLower(id)]
	if g == nil || g.tenant != strings.ToLower(c.TenantID) {
		e.mu.Unlock()
		writeError(w, r, notFound("Request_ResourceNotFound", "Resource '"+id+"' does not exist or one of its queried reference-property objects are not present."))
		return
	}
	ids := make([]string, 0, len(g.group.Members))
	for _, m := range g.group.Members {
		if _, isUser := e.users[m]; isUser || !usersOnly {
			ids = append(ids, m)
		}
	}
	slices.Sort(ids)
	from, to, more := p.page(ids)
	for _, m := range ids[from:to] {
		last = m
		if u, ok := e.users[m]; ok {
			out := project(userResource(u.user), orDefault(selected, userProperties[:11]))
			out["@odata.type"] = "#microsoft.graph.user"
			value = append(value, out)
		} else if sub, ok := e.groups[m]; ok {
			full := map[string]any{"id": sub.group.ID, "displayName": nilIfEmpty(sub.group.DisplayName), "mail": nil}
			keep := groupProperties
			if selected != nil {
				keep = slices.DeleteFunc(slices.Clone(selected), func(s string) bool { return !slices.Contains(groupProperties, s) })
			}
			out := project(full, keep)
			out["@odata.type"] = "#microsoft.graph.group"
			value = append(value, out)
		}
	}
	e.mu.Unlock()
	out := map[string]any{"@odata.context": metadata(r, "directoryObjects"), "value": nonNil(value)}
	if usersOnly {
		out["@odata.context"] = metadata(r, "users")
	}
	if more {
		out["@odata.nextLink"] = nextLink(r, last)
	}
	writeJSON(w, http.StatusOK, out)
}

func orDefault(selected, def []string) []string {
	if selected == nil {
		return def
	}
	return selected
}

func nonNil(v []map[string]any) []map[string]any {
	if v == nil {
		return []map[string]any{}
	}
	return v
}

// AddUser adds a user to a configured tenant, as if created in Entra: it
// is listed, resolvable and has a presence (Offline). Reset removes it.
func (e *Emulator) AddUser(tenant string, u User) error {
	if err := checkUser(u); err != nil {
		return err
	}
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	t := strings.ToLower(tenant)
	id, upn := strings.ToLower(u.ID), strings.ToLower(u.UserPrincipalName)
	switch {
	case !e.tenants[t]:
		return fmt.Errorf("add user: no tenant %q", tenant)
	case e.users[id] != nil || e.groups[id] != nil:
		return fmt.Errorf("add user: object id %s exists", u.ID)
	case e.upns[upn] != "" || (u.Mail != "" && e.upns[strings.ToLower(u.Mail)] != ""):
		return fmt.Errorf("add user: %s exists", u.UserPrincipalName)
	case len(e.users)+len(e.groups) >= maxDirectoryObjects:
		return fmt.Errorf("add user: the directory holds %d objects already", maxDirectoryObjects)
	}
	e.users[id] = newUserState(u, t, &e.seq, now)
	e.upns[upn] = id
	if u.Mail != "" {
		e.upns[strings.ToLower(u.Mail)] = id
	}
	return nil
}

// checkUser checks a user as Config.Validate does.
func checkUser(u User) error {
	switch {
	case !guidPattern.MatchString(u.ID):
		return fmt.Errorf("user id %q: must be an object id (a GUID)", u.ID)
	case !strings.Contains(u.UserPrincipalName, "@"):
		return fmt.Errorf("user %s: user_principal_name %q must look like name@domain", u.ID, u.UserPrincipalName)
	}
	for name := range u.ExtensionAttributes {
		if !extensionAttributePattern.MatchString(name) {
			return fmt.Errorf("user %s: %q is not extensionAttribute1 to extensionAttribute15", u.ID, name)
		}
	}
	return nil
}

// RemoveUser deletes a user (object id or UPN) from the directory and
// from every group, as if deleted in Entra. Reset brings a configured user
// back.
func (e *Emulator) RemoveUser(idOrUPN string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.lookup(idOrUPN)
	if u == nil {
		return errNoUser(idOrUPN)
	}
	id := strings.ToLower(u.user.ID)
	delete(e.users, id)
	for k, v := range e.upns {
		if v == id {
			delete(e.upns, k)
		}
	}
	for _, g := range e.groups {
		g.remove(id)
	}
	return nil
}

// SetGroup creates or replaces a group of a configured tenant with its
// direct members (object ids of users or groups of that tenant). Reset
// brings back the configured groups only.
func (e *Emulator) SetGroup(tenant string, g Group) error {
	if !guidPattern.MatchString(g.ID) {
		return fmt.Errorf("group id %q: must be an object id (a GUID)", g.ID)
	}
	if len(g.Members) > maxGroupMembers {
		return fmt.Errorf("group %s: more than %d members", g.ID, maxGroupMembers)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t := strings.ToLower(tenant)
	id := strings.ToLower(g.ID)
	switch {
	case !e.tenants[t]:
		return fmt.Errorf("group %s: no tenant %q", g.ID, tenant)
	case e.users[id] != nil:
		return fmt.Errorf("group %s: a user has that object id", g.ID)
	case e.groups[id] == nil && len(e.users)+len(e.groups) >= maxDirectoryObjects:
		return fmt.Errorf("group %s: the directory holds %d objects already", g.ID, maxDirectoryObjects)
	}
	gs := &groupState{group: Group{ID: g.ID, DisplayName: g.DisplayName}, tenant: t, members: map[string]bool{}}
	for _, m := range g.Members {
		if err := e.checkMember(gs, m); err != nil {
			return err
		}
		gs.add(strings.ToLower(m))
	}
	e.groups[id] = gs
	return nil
}

// checkMember tells whether m may be a member of g: a user or another
// group of g's tenant; the caller holds e.mu.
func (e *Emulator) checkMember(g *groupState, m string) error {
	id := strings.ToLower(m)
	if u := e.users[id]; u != nil && u.tenant == g.tenant {
		return nil
	}
	if sub := e.groups[id]; sub != nil && sub.tenant == g.tenant && !strings.EqualFold(id, g.group.ID) {
		return nil
	}
	return fmt.Errorf("group %s: member %q is no user or other group of tenant %s", g.group.ID, m, g.tenant)
}

// DeleteGroup removes a group, and it from every group it was a member
// of; it reports whether there was one.
func (e *Emulator) DeleteGroup(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := strings.ToLower(id)
	_, found := e.groups[key]
	delete(e.groups, key)
	for _, g := range e.groups {
		g.remove(key)
	}
	return found
}

// AddGroupMember adds a user or group (object id, or a user's UPN) to a
// group's direct members; adding a member twice changes nothing.
func (e *Emulator) AddGroupMember(groupID, member string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.groups[strings.ToLower(groupID)]
	if g == nil {
		return fmt.Errorf("no group %q", groupID)
	}
	if u := e.lookup(member); u != nil {
		member = u.user.ID
	}
	if err := e.checkMember(g, member); err != nil {
		return err
	}
	if !g.members[strings.ToLower(member)] && len(g.group.Members) >= maxGroupMembers {
		return fmt.Errorf("group %s: more than %d members", g.group.ID, maxGroupMembers)
	}
	g.add(strings.ToLower(member))
	return nil
}

// RemoveGroupMember removes a direct member (object id, or a user's UPN)
// from a group; it reports whether it was one.
func (e *Emulator) RemoveGroupMember(groupID, member string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.groups[strings.ToLower(groupID)]
	if g == nil {
		return false, fmt.Errorf("no group %q", groupID)
	}
	if u := e.lookup(member); u != nil {
		member = u.user.ID
	}
	return g.remove(strings.ToLower(member)), nil
}

// Groups returns every group with its direct members (lower-case object
// ids), ordered by id.
func (e *Emulator) Groups() []Group {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Group, 0, len(e.groups))
	for _, g := range e.groups {
		c := g.group
		c.Members = slices.Clone(c.Members)
		slices.Sort(c.Members)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Group) int { return strings.Compare(strings.ToLower(a.ID), strings.ToLower(b.ID)) })
	return out
}

func (g *groupState) add(id string) {
	if !g.members[id] {
		g.members[id] = true
		g.group.Members = append(g.group.Members, id)
	}
}

func (g *groupState) remove(id string) bool {
	if !g.members[id] {
		return false
	}
	delete(g.members, id)
	g.group.Members = slices.DeleteFunc(g.group.Members, func(m string) bool { return m == id })
	return true
}

// The admin API of the directory.

func (e *Emulator) adminGroups(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"value": e.Groups()})
}

// adminAddUser is POST /_emulator/users:
// {"tenant","id","userPrincipalName","displayName","mail"}.
func (e *Emulator) adminAddUser(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Tenant            string `json:"tenant"`
		ID                string `json:"id"`
		UserPrincipalName string `json:"userPrincipalName"`
		DisplayName       string `json:"displayName"`
		Mail              string `json:"mail"`
	}
	if err := decodeAdmin(r, &body); err != nil {
		writeError(w, r, err)
		return
	}
	e.answerChange(w, r, e.AddUser(body.Tenant, User{ID: body.ID, UserPrincipalName: body.UserPrincipalName, DisplayName: body.DisplayName, Mail: body.Mail}))
}

func (e *Emulator) adminRemoveUser(w http.ResponseWriter, r *http.Request) {
	e.answerChange(w, r, e.RemoveUser(r.PathValue("user")))
}

// adminSetGroup is POST /_emulator/groups:
// {"tenant","id","displayName","members":[…]}, creating or replacing.
func (e *Emulator) adminSetGroup(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Tenant string `json:"tenant"`
		Group
	}
	if err := decodeAdmin(r, &body); err != nil {
		writeError(w, r, err)
		return
	}
	e.answerChange(w, r, e.SetGroup(body.Tenant, body.Group))
}

func (e *Emulator) adminDeleteGroup(w http.ResponseWriter, r *http.Request) {
	if !e.DeleteGroup(r.PathValue("id")) {
		writeError(w, r, notFound("itemNotFound", "No group '"+r.PathValue("id")+"'."))
		return
	}
	ok(w)
}

// adminAddMember is POST /_emulator/groups/{id}/members: {"id"} (a user's
// or group's object id, or a user's UPN).
func (e *Emulator) adminAddMember(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ID string `json:"id"`
	}
	if err := decodeAdmin(r, &body); err != nil {
		writeError(w, r, err)
		return
	}
	e.answerChange(w, r, e.AddGroupMember(r.PathValue("id"), body.ID))
}

func (e *Emulator) adminRemoveMember(w http.ResponseWriter, r *http.Request) {
	found, err := e.RemoveGroupMember(r.PathValue("id"), r.PathValue("member"))
	if err == nil && !found {
		writeError(w, r, notFound("itemNotFound", "'"+r.PathValue("member")+"' is not a member of '"+r.PathValue("id")+"'."))
		return
	}
	e.answerChange(w, r, err)
}
