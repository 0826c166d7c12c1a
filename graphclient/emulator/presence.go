package emulator

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient/graphlimits"
)

// presenceProperties are the presence resource's properties, for $select.
var presenceProperties = []string{"id", "availability", "activity", "statusMessage", "outOfOfficeSettings", "sequenceNumber", "workLocation"}

// presenceResource is the presence resource as Graph returns it. self is
// set when the reader is the user themself: only they see when their
// status message expires and when it was published.
func presenceResource(v PresenceView, self bool) map[string]any {
	var status any
	if m := v.StatusMessage; m != nil {
		sm := map[string]any{"message": map[string]any{"content": m.Content, "contentType": m.ContentType}}
		if self {
			sm["publishedDateTime"] = m.PublishedAt.UTC().Format(time.RFC3339Nano)
			sm["expiryDateTime"] = nil
			if m.ExpiryDateTime != nil {
				sm["expiryDateTime"] = map[string]any{"dateTime": m.ExpiryDateTime.DateTime, "timeZone": m.ExpiryDateTime.TimeZone}
			}
		}
		status = sm
	}
	return map[string]any{
		"id":                  v.ID,
		"availability":        v.Availability,
		"activity":            v.Activity,
		"statusMessage":       status,
		"outOfOfficeSettings": map[string]any{"message": nil, "isOutOfOffice": false},
		"sequenceNumber":      v.SequenceNumber,
		"workLocation": map[string]any{
			"placeId": nilIfEmpty(v.WorkLocation.PlaceID), "source": v.WorkLocation.Source, "workLocationType": v.WorkLocation.WorkLocationType,
		},
	}
}

// isSelf tells whether token c is the user id's own (delegated) token.
func isSelf(c *claims, id string) bool {
	return c.delegated() && strings.EqualFold(c.ObjectID, id)
}

// onlyObjectIDs tells whether a request's path names a presence by its
// key, which Graph resolves from the user's object id only (not a UPN or
// mail address, which /users/{id} also takes).
func onlyObjectIDs(r *http.Request) bool {
	return strings.Contains(r.URL.Path, "/communications/")
}

// isObjectID tells whether id is shaped like an Entra object id (a GUID).
func isObjectID(id string) bool { return guidPattern.MatchString(strings.TrimSpace(id)) }

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

// errMeAppOnly is Graph's answer to /me with an app-only token.
var errMeAppOnly = &apiError{status: http.StatusForbidden, code: "Forbidden", message: "/me request is only valid with delegated authentication flow."}

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
	if onlyObjectIDs(r) && !isObjectID(id) {
		err = errUserNotFound(id) // a UPN or mail names no presence here
	} else {
		err = e.withUser(c, id, presenceRead, errUserNotFound(id), func(u *userState) *apiError {
			v = u.view(meta(r).now)
			return nil
		})
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := project(presenceResource(v, isSelf(c, v.ID)), selected, "id")
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
		err = errMeAppOnly
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
	out := project(presenceResource(v, true), selected, "id")
	out["@odata.context"] = metadata(r, "users('"+v.ID+"')/presence/$entity")
	writeJSON(w, http.StatusOK, out)
}

// listPresences serves GET /communications/presences: every user of the
// tenant, or those a $filter=id in ('a','b') names (unknown ids, UPNs and
// mail addresses are left out), $top at a time with an @odata.nextLink to
// the rest, and @odata.count with $count=true.
func (e *Emulator) listPresences(w http.ResponseWriter, r *http.Request) {
	c, err := e.authorized(r, presenceRead, true)
	if err == nil && !c.allows(presenceRead, "") {
		err = errForbidden
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	selected, err := selectFields(q.Get("$select"), "presence", presenceProperties)
	if err == nil {
		err = checkPaging(q)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	var ids []string
	all := true
	if f := q.Get("$filter"); strings.TrimSpace(f) != "" {
		parsed, perr := ParseIDFilter(f)
		if perr != nil {
			writeError(w, r, badRequest("BadRequest", "Invalid filter clause: %v. Supported: id in ('...') and id eq '...'.", perr))
			return
		}
		ids, all = parsed, false
	}
	value := e.presences(r, c, ids, all, selected)
	out := map[string]any{"@odata.context": metadata(r, "communications/presences")}
	if q.Get("$count") == "true" {
		out["@odata.count"] = len(value)
	}
	skip, _ := strconv.Atoi(q.Get("$skiptoken"))
	skip = min(skip, len(value))
	value = value[skip:]
	if top := q.Get("$top"); top != "" {
		n, _ := strconv.Atoi(top)
		if n < len(value) {
			value = value[:n]
			next := *r.URL
			nq := next.Query()
			nq.Set("$skiptoken", strconv.Itoa(skip+n))
			next.RawQuery = nq.Encode()
			out["@odata.nextLink"] = "https://graph.microsoft.com" + next.RequestURI()
		}
	}
	out["value"] = value
	writeJSON(w, http.StatusOK, out)
}

// maxTop bounds $top.
const maxTop = 1000

// checkPaging checks the list's paging options: $top a whole number from
// 0 to 1000, $count true or false, $skiptoken one this emulator wrote.
func checkPaging(q url.Values) *apiError {
	if top, ok := q["$top"]; ok {
		if n, err := strconv.Atoi(top[0]); err != nil || n < 0 || n > maxTop || len(top) > 1 {
			return badRequest("BadRequest", "Invalid $top value '%s': a whole number from 0 to %d is required.", truncate(top[0], 32), maxTop)
		}
	}
	if count, ok := q["$count"]; ok && (len(count) > 1 || (count[0] != "true" && count[0] != "false")) {
		return badRequest("BadRequest", "Invalid $count value '%s': true or false is required.", truncate(count[0], 32))
	}
	if skip, ok := q["$skiptoken"]; ok {
		if n, err := strconv.Atoi(skip[0]); err != nil || n < 0 || len(skip) > 1 {
			return badRequest("BadRequest", "Invalid $skiptoken value.")
		}
	}
	return nil
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
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": metadata(r, "Collection(microsoft.graph.presence)"),
		"value":          e.presences(r, c, ids, false, nil),
	})
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
	case len(ids) > graphlimits.MaxIDsPerLookup:
		return nil, badRequest("BadRequest", "The number of user ids (%d) exceeds the maximum of %d per request.", len(ids), graphlimits.MaxIDsPerLookup)
	}
	return ids, nil
}

// presences returns the presence resources of ids, or of every user of
// the token's tenant when all is set. Ids are object ids: anything else
// (a UPN, a mail address) names nobody and is left out, as are unknown
// ids; each user appears once.
func (e *Emulator) presences(r *http.Request, c *claims, ids []string, all bool, selected []string) []map[string]any {
	now := meta(r).now
	tenant := strings.ToLower(c.TenantID)
	e.mu.Lock()
	defer e.mu.Unlock()
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
		if !isObjectID(id) {
			continue
		}
		if u := e.userIn(c, id); u != nil && !seen[u] {
			seen[u] = true
			users = append(users, u)
		}
	}
	value := make([]map[string]any, 0, len(users))
	for _, u := range users {
		value = append(value, project(presenceResource(u.view(now), isSelf(c, u.user.ID)), selected, "id"))
	}
	return value
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
