package emulator

import (
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// GET /users?$filter= for the forms a bridge uses to find a person by a
// phone number or an extension:
//
//	businessPhones/any(p:p eq '+15551234567')
//	mobilePhone eq '+15551234567'
//	onPremisesExtensionAttributes/extensionAttribute3 eq '1001'
//
// The lambda on businessPhones works as a plain query; mobilePhone and the
// extension attributes are advanced queries, which Graph serves only with
// the ConsistencyLevel: eventual header and $count=true (otherwise 400
// Request_UnsupportedQuery). Values compare case-insensitively. Other
// filters are refused the same way.

var (
	extensionAttributePattern = regexp.MustCompile(`^extensionAttribute([1-9]|1[0-5])$`)
	quoted                    = `'((?:[^']|'')*)'`
	anyPhoneFilter            = regexp.MustCompile(`^businessPhones/any\((\w+):\s*(\w+)\s+eq\s+` + quoted + `\)$`)
	mobilePhoneFilter         = regexp.MustCompile(`^mobilePhone\s+eq\s+` + quoted + `$`)
	extensionFilter           = regexp.MustCompile(`^onPremisesExtensionAttributes/(extensionAttribute(?:1[0-5]|[1-9]))\s+eq\s+` + quoted + `$`)
)

// maxUserFilter bounds the $filter the emulator reads.
const maxUserFilter = 2048

// userFilter is a parsed $filter: the property (businessPhones,
// mobilePhone or an extensionAttributeN) and the value, and whether it is
// an advanced query.
type userFilter struct {
	property, value string
	advanced        bool
}

// parseUserFilter reads one of the supported forms.
func parseUserFilter(s string) (userFilter, *apiError) {
	s = strings.TrimSpace(s)
	unquote := func(v string) string { return strings.ReplaceAll(v, "''", "'") }
	if len(s) <= maxUserFilter {
		if m := anyPhoneFilter.FindStringSubmatch(s); m != nil && m[1] == m[2] {
			return userFilter{property: "businessPhones", value: unquote(m[3])}, nil
		}
		if m := mobilePhoneFilter.FindStringSubmatch(s); m != nil {
			return userFilter{property: "mobilePhone", value: unquote(m[1]), advanced: true}, nil
		}
		if m := extensionFilter.FindStringSubmatch(s); m != nil {
			return userFilter{property: m[1], value: unquote(m[2]), advanced: true}, nil
		}
	}
	property, _, _ := strings.Cut(s, " ")
	property, _, _ = strings.Cut(property, "/")
	return userFilter{}, badRequest("Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified for property '%s' of resource 'User'.", truncate(property, 64))
}

// matches tells whether u satisfies f.
func (f userFilter) matches(u User) bool {
	switch f.property {
	case "businessPhones":
		for _, p := range u.BusinessPhones {
			if strings.EqualFold(p, f.value) {
				return true
			}
		}
		return false
	case "mobilePhone":
		return u.MobilePhone != "" && strings.EqualFold(u.MobilePhone, f.value)
	}
	v := u.ExtensionAttributes[f.property]
	return v != "" && strings.EqualFold(v, f.value)
}

// listUsers serves GET /users (needs User.Read.All or the like): every
// user of the token's tenant, or those one of the supported $filter forms
// matches, ordered by object id, $top at a time (1 to 999, 100 by
// default) with an @odata.nextLink to the rest, honouring $select and
// $count.
func (e *Emulator) listUsers(w http.ResponseWriter, r *http.Request) {
	c, err := e.authorized(r, userRead, false)
	if err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	selected, err := selectFields(q.Get("$select"), "user", userProperties)
	var p DirectoryPage
	if err == nil {
		p, err = parseDirectoryPage(q)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	counted := q.Get("$count") == "true"
	var f *userFilter
	if q.Has("$filter") {
		parsed, err := parseUserFilter(q.Get("$filter"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		eventual := strings.EqualFold(r.Header.Get("ConsistencyLevel"), "eventual")
		if parsed.advanced && !(counted && eventual) {
			writeError(w, r, badRequest("Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified for property '%s' of resource 'User'.", parsed.property))
			return
		}
		f = &parsed
	}
	byID := map[string]User{}
	var ids []string
	e.mu.Lock()
	for id, u := range e.users {
		if u.tenant == strings.ToLower(c.TenantID) && c.allows(userRead, u.user.ID) && (f == nil || f.matches(u.user)) {
			ids = append(ids, id)
			byID[id] = u.user
		}
	}
	e.mu.Unlock()
	sort.Strings(ids)
	if selected == nil {
		selected = userProperties[:11]
	}
	out := map[string]any{"@odata.context": metadata(r, "users("+strings.Join(selected, ",")+")")}
	if counted {
		out["@odata.count"] = len(ids)
	}
	from, to, more := p.page(ids)
	value := make([]map[string]any, 0, to-from)
	for _, id := range ids[from:to] {
		value = append(value, project(userResource(byID[id]), selected))
	}
	out["value"] = value
	if more {
		out["@odata.nextLink"] = nextLink(r, ids[to-1])
	}
	writeJSON(w, http.StatusOK, out)
}
