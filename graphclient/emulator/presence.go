package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// maxBatchIDs is getPresencesByUserId's limit.
const maxBatchIDs = 650

// presenceProperties are the presence resource's properties, for $select.
var presenceProperties = []string{"id", "availability", "activity", "statusMessage", "outOfOfficeSettings", "sequenceNumber"}

// presenceResource is the presence resource as Graph returns it.
func presenceResource(v PresenceView) map[string]any {
	return map[string]any{
		"id":                  v.ID,
		"availability":        v.Availability,
		"activity":            v.Activity,
		"statusMessage":       nil,
		"outOfOfficeSettings": map[string]any{"message": nil, "isOutOfOffice": false},
		"sequenceNumber":      v.SequenceNumber,
	}
}

// apiVersion is the Graph version a request named: v1.0 or beta.
func apiVersion(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/beta/") {
		return "beta"
	}
	return "v1.0"
}

// metadata is an @odata.context value.
func metadata(r *http.Request, fragment string) string {
	return "https://graph.microsoft.com/" + apiVersion(r) + "/$metadata#" + fragment
}

// userIn finds the user a path names within the token's tenant; the caller
// holds e.mu.
func (e *Emulator) userIn(c *claims, idOrUPN string) *userState {
	u := e.lookup(idOrUPN)
	if u == nil || u.tenant != strings.ToLower(c.TenantID) {
		return nil
	}
	return u
}

// withUser runs do on the user id names in c's tenant, holding e.mu, when
// c may act on that user with permission p; missing is the answer when
// the tenant has no such user.
func (e *Emulator) withUser(c *claims, id string, p permission, missing *apiError, do func(u *userState) *apiError) *apiError {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.userIn(c, id)
	switch {
	case u == nil:
		return missing
	case !c.allows(p, u.user.ID):
		return errForbidden
	}
	return do(u)
}

// errUserNotFound is the answer for a user the tenant does not have.
func errUserNotFound(id string) *apiError {
	return notFound("itemNotFound", "The requested user '"+id+"' is invalid.")
}

// authorized authenticates the request and checks that its token could
// hold permission p at all; it also applies throttling and injected faults
// when throttled is set.
func (e *Emulator) authorized(r *http.Request, p permission, throttled bool) (*claims, *apiError) {
	c, err := e.authenticate(r)
	if err != nil {
		return nil, err
	}
	if !c.mayAtAll(p) {
		return nil, errForbidden
	}
	if throttled {
		if err := e.admit(r, c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// getPresence serves GET /users/{id}/presence and
// GET /communications/presences/{id}.
func (e *Emulator) getPresence(w http.ResponseWriter, r *http.Request) {
	c, err := e.authorized(r, presenceRead, true)
	if err != nil {
		writeError(w, r, err)
		return
	}
	selected, err := selectFields(r.URL.Query().Get("$select"), "presence", presenceProperties)
	if err != nil {
		writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	var v PresenceView
	err = e.withUser(c, id, presenceRead, errUserNotFound(id), func(u *userState) *apiError {
		v = u.view(meta(r).now)
		return nil
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := project(presenceResource(v), selected, "id")
	if strings.Contains(r.URL.Path, "/communications/") {
		out["@odata.context"] = metadata(r, "communications/presences/$entity")
	} else {
		out["@odata.context"] = metadata(r, "users('"+v.ID+"')/presence/$entity")
	}
	writeJSON(w, http.StatusOK, out)
}

// mePresence serves GET /me/presence: only a delegated token has a "me";
// an app-only token gets 403.
func (e *Emulator) mePresence(w http.ResponseWriter, r *http.Request) {
	c, err := e.authenticate(r)
	switch {
	case err != nil:
	case !c.delegated():
		err = &apiError{status: http.StatusForbidden, code: "Forbidden", message: "/me request is only valid with delegated authentication flow."}
	case !c.allows(presenceRead, c.ObjectID):
		err = errForbidden
	default:
		err = e.admit(r, c)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	selected, err := selectFields(r.URL.Query().Get("$select"), "presence", presenceProperties)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var v PresenceView
	err = e.withUser(c, c.ObjectID, presenceRead, errUserNotFound(c.ObjectID), func(u *userState) *apiError {
		v = u.view(meta(r).now)
		return nil
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := project(presenceResource(v), selected, "id")
	out["@odata.context"] = metadata(r, "users('"+v.ID+"')/presence/$entity")
	writeJSON(w, http.StatusOK, out)
}

// listPresences serves GET /communications/presences: every user of the
// tenant, or those a $filter=id in ('a','b') names (unknown ids are left
// out).
func (e *Emulator) listPresences(w http.ResponseWriter, r *http.Request) {
	c, err := e.authorized(r, presenceRead, true)
	if err == nil && !c.allows(presenceRead, "") {
		err = errForbidden
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	selected, err := selectFields(r.URL.Query().Get("$select"), "presence", presenceProperties)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var ids []string
	all := true
	if f := r.URL.Query().Get("$filter"); strings.TrimSpace(f) != "" {
		parsed, perr := ParseIDFilter(f)
		if perr != nil {
			writeError(w, r, badRequest("BadRequest", "Invalid filter clause: %v. Supported: id in ('...') and id eq '...'.", perr))
			return
		}
		ids, all = parsed, false
	}
	e.writePresences(w, r, c, ids, all, selected, metadata(r, "communications/presences"))
}

// presencesByUserID serves POST /communications/getPresencesByUserId with
// {"ids":[...]}: 1 to 650 ids, else 400. Ids the tenant does not have are
// left out of the answer, and each user appears once.
func (e *Emulator) presencesByUserID(w http.ResponseWriter, r *http.Request) {
	c, err := e.authorized(r, presenceRead, true)
	if err == nil && !c.allows(presenceRead, "") {
		err = errForbidden
	}
	if err == nil {
		err = requireJSON(r)
	}
	var ids []string
	if err == nil {
		ids, err = parseIDs(meta(r).body)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	e.writePresences(w, r, c, ids, false, nil, metadata(r, "Collection(microsoft.graph.presence)"))
}

// parseIDs reads getPresencesByUserId's body.
func parseIDs(body []byte) ([]string, *apiError) {
	var ids []string
	if err := actionParams(body, "getPresencesByUserId", map[string]any{"ids": &ids}); err != nil {
		return nil, err
	}
	switch {
	case len(ids) == 0:
		return nil, badRequest("BadRequest", "The ids parameter is required and must name at least one user.")
	case len(ids) > maxBatchIDs:
		return nil, badRequest("BadRequest", "The number of user ids (%d) exceeds the maximum of %d per request.", len(ids), maxBatchIDs)
	}
	return ids, nil
}

// writePresences answers {"value":[...]} for ids, or for every user of the
// token's tenant when all is set.
func (e *Emulator) writePresences(w http.ResponseWriter, r *http.Request, c *claims, ids []string, all bool, selected []string, context string) {
	now := meta(r).now
	tenant := strings.ToLower(c.TenantID)
	e.mu.Lock()
	var users []*userState
	if all {
		for _, u := range e.users {
			if u.tenant == tenant {
				users = append(users, u)
			}
		}
		slices.SortFunc(users, func(a, b *userState) int { return strings.Compare(a.user.ID, b.user.ID) })
	}
	seen := map[*userState]bool{}
	for _, id := range ids {
		if u := e.userIn(c, id); u != nil && !seen[u] {
			seen[u] = true
			users = append(users, u)
		}
	}
	value := make([]map[string]any, 0, len(users))
	for _, u := range users {
		value = append(value, project(presenceResource(u.view(now)), selected, "id"))
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": context, "value": value})
}

// Presence returns a user's aggregated presence and sessions now, by
// object id, UPN or mail.
func (e *Emulator) Presence(idOrUPN string) (PresenceView, bool) {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.lookup(idOrUPN)
	if u == nil {
		return PresenceView{}, false
	}
	return u.view(now), true
}

// Presences returns every user's presence, ordered by object id.
func (e *Emulator) Presences() []PresenceView {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	views := make([]PresenceView, 0, len(e.users))
	for _, u := range e.users {
		views = append(views, u.view(now))
	}
	slices.SortFunc(views, func(a, b PresenceView) int { return strings.Compare(a.ID, b.ID) })
	return views
}

// String describes a view briefly, for test failures.
func (v PresenceView) String() string {
	return fmt.Sprintf("%s %s/%s (%d sessions, seq %s)", v.ID, v.Availability, v.Activity, len(v.Sessions), v.SequenceNumber)
}
