package emulator

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Graph's presence timing.
const (
	availableTimeout = 5 * time.Minute
	awayTimeout      = 10 * time.Minute
	defaultExpiry    = 5 * time.Minute
	minExpiry        = 5 * time.Minute
	maxExpiry        = 4 * time.Hour
	maxBatchIDs      = 650
)

// appPairs are the pairs setPresence accepts.
var appPairs = [][2]string{
	{"Available", "Available"}, {"Busy", "InACall"}, {"Busy", "InAConferenceCall"},
	{"Away", "Away"}, {"DoNotDisturb", "Presenting"},
}

// preferredPairs are the pairs setUserPreferredPresence accepts.
var preferredPairs = [][2]string{
	{"Available", "Available"}, {"Busy", "Busy"}, {"DoNotDisturb", "DoNotDisturb"},
	{"BeRightBack", "BeRightBack"}, {"Away", "Away"}, {"Offline", "OffWork"},
}

// rank orders session availabilities for aggregation.
var rank = map[string]int{"DoNotDisturb": 4, "Busy": 3, "Available": 2, "Away": 1}

type session struct {
	id           string
	kind         string // "app" or "teams"
	availability string
	activity     string
	refreshed    time.Time
	expires      time.Time
}

type preferred struct {
	availability, activity string
	expires                time.Time
}

type userState struct {
	user      User
	tenant    string
	sessions  map[string]*session
	preferred *preferred
	events    map[string]CalendarEvent
	seq       uint64
	lastPair  string
}

// SessionView is one session as the admin API shows it.
type SessionView struct {
	SessionID       string    `json:"sessionId"`
	Kind            string    `json:"kind"`
	Availability    string    `json:"availability"`
	Activity        string    `json:"activity"`
	ExpiresAt       time.Time `json:"expiresAt"`
	LastRefreshedAt time.Time `json:"lastRefreshedAt"`
}

// PresenceView is a user's aggregated presence and its sessions.
type PresenceView struct {
	ID             string        `json:"id"`
	Availability   string        `json:"availability"`
	Activity       string        `json:"activity"`
	SequenceNumber string        `json:"sequenceNumber"`
	Sessions       []SessionView `json:"sessions"`
	Preferred      *SessionView  `json:"preferred,omitempty"`
}

// effective is a session's pair after Graph's inactivity timeouts.
func (s *session) effective(now time.Time) (string, string) {
	if s.availability != "Available" {
		return s.availability, s.activity
	}
	switch idle := now.Sub(s.refreshed); {
	case idle >= awayTimeout:
		return "Away", "Away"
	case idle >= availableTimeout:
		return "Available", "AvailableInactive"
	}
	return s.availability, s.activity
}

// view aggregates u's presence at now, dropping expired sessions; the
// caller holds e.mu.
func (u *userState) view(now time.Time) PresenceView {
	for id, s := range u.sessions {
		if !now.Before(s.expires) {
			delete(u.sessions, id)
		}
	}
	if u.preferred != nil && !now.Before(u.preferred.expires) {
		u.preferred = nil
	}
	v := PresenceView{ID: u.user.ID, Availability: "Offline", Activity: "Offline", Sessions: []SessionView{}}
	var best *session
	for _, s := range u.sessions {
		a, act := s.effective(now)
		v.Sessions = append(v.Sessions, SessionView{SessionID: s.id, Kind: s.kind, Availability: a, Activity: act, ExpiresAt: s.expires, LastRefreshedAt: s.refreshed})
		if best == nil {
			best = s
			continue
		}
		ba, _ := best.effective(now)
		if rank[a] > rank[ba] || (rank[a] == rank[ba] && s.refreshed.After(best.refreshed)) {
			best = s
		}
	}
	sort.Slice(v.Sessions, func(i, j int) bool { return v.Sessions[i].SessionID < v.Sessions[j].SessionID })
	if best != nil {
		v.Availability, v.Activity = best.effective(now)
		if u.preferred != nil {
			v.Availability, v.Activity = u.preferred.availability, u.preferred.activity
		}
	}
	if u.preferred != nil {
		v.Preferred = &SessionView{Kind: "preferred", Availability: u.preferred.availability, Activity: u.preferred.activity, ExpiresAt: u.preferred.expires}
	}
	if pair := v.Availability + "/" + v.Activity; pair != u.lastPair {
		u.seq++
		u.lastPair = pair
	}
	v.SequenceNumber = fmt.Sprintf("C%020d", u.seq)
	return v
}

// graphPresence is the presence resource as Graph returns it.
func graphPresence(v PresenceView) map[string]any {
	return map[string]any{
		"@odata.context":      "https://graph.microsoft.com/v1.0/$metadata#users('" + v.ID + "')/presence/$entity",
		"id":                  v.ID,
		"availability":        v.Availability,
		"activity":            v.Activity,
		"sequenceNumber":      v.SequenceNumber,
		"statusMessage":       nil,
		"outOfOfficeSettings": map[string]any{"message": nil, "isOutOfOffice": false},
	}
}

// Presence returns a user's aggregated presence, by object id or UPN.
func (e *Emulator) Presence(idOrUPN string) (PresenceView, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.lookup(idOrUPN)
	if u == nil {
		return PresenceView{}, false
	}
	return u.view(e.clock.Now()), true
}

// lookup finds a user by object id, UPN or mail; the caller holds e.mu.
func (e *Emulator) lookup(idOrUPN string) *userState {
	key := strings.ToLower(idOrUPN)
	if u, ok := e.users[key]; ok {
		return u
	}
	if id, ok := e.upns[key]; ok {
		return e.users[id]
	}
	return nil
}

// userFor finds the user named in the path within the token's tenant,
// answering 404 itself when there is none.
func (e *Emulator) userFor(w http.ResponseWriter, r *http.Request, tok tokenInfo) *userState {
	id := r.PathValue("id")
	e.mu.Lock()
	u := e.lookup(id)
	e.mu.Unlock()
	if u == nil || u.tenant != tok.tenant {
		writeGraphError(w, r, http.StatusNotFound, "itemNotFound", "The requested user '"+id+"' is invalid.", e.clock.Now())
		return nil
	}
	return u
}

var readRoles = []string{"Presence.Read.All", "Presence.ReadWrite.All"}

func (e *Emulator) getPresence(w http.ResponseWriter, r *http.Request) {
	tok, ok := e.authorize(w, r, readRoles...)
	if !ok || !e.admit(w, r, tok) {
		return
	}
	u := e.userFor(w, r, tok)
	if u == nil {
		return
	}
	e.mu.Lock()
	v := u.view(e.clock.Now())
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, graphPresence(v))
}

func (e *Emulator) mePresence(w http.ResponseWriter, r *http.Request) {
	if _, ok := e.authorize(w, r, readRoles...); !ok {
		return
	}
	writeGraphError(w, r, http.StatusForbidden, "Forbidden", "/me request is only valid with delegated authentication flow.", e.clock.Now())
}

var filterIDs = regexp.MustCompile(`^id in \(((?:'[^']*'\s*,?\s*)*)\)$`)

func (e *Emulator) listPresences(w http.ResponseWriter, r *http.Request) {
	tok, ok := e.authorize(w, r, readRoles...)
	if !ok || !e.admit(w, r, tok) {
		return
	}
	var ids []string
	if f := strings.TrimSpace(r.URL.Query().Get("$filter")); f != "" {
		m := filterIDs.FindStringSubmatch(f)
		if m == nil {
			writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "Invalid filter clause: only id in ('...') is supported.", e.clock.Now())
			return
		}
		for _, part := range strings.Split(m[1], ",") {
			if id := strings.Trim(strings.TrimSpace(part), "'"); id != "" {
				ids = append(ids, id)
			}
		}
	}
	e.writePresences(w, tok, ids, ids == nil)
}

func (e *Emulator) presencesByUserID(w http.ResponseWriter, r *http.Request) {
	tok, ok := e.authorize(w, r, readRoles...)
	if !ok || !e.admit(w, r, tok) {
		return
	}
	var body struct {
		IDs []string `json:"ids"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "Invalid request body.", e.clock.Now())
		return
	}
	if len(body.IDs) == 0 || len(body.IDs) > maxBatchIDs {
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", fmt.Sprintf("The number of ids must be between 1 and %d.", maxBatchIDs), e.clock.Now())
		return
	}
	e.writePresences(w, tok, body.IDs, false)
}

// writePresences answers {"value":[...]} for ids (every user in the
// tenant when all); unknown ids are left out, as Graph does.
func (e *Emulator) writePresences(w http.ResponseWriter, tok tokenInfo, ids []string, all bool) {
	now := e.clock.Now()
	e.mu.Lock()
	var users []*userState
	if all {
		for _, u := range e.users {
			if u.tenant == tok.tenant {
				users = append(users, u)
			}
		}
		sort.Slice(users, func(i, j int) bool { return users[i].user.ID < users[j].user.ID })
	}
	for _, id := range ids {
		if u := e.lookup(id); u != nil && u.tenant == tok.tenant {
			users = append(users, u)
		}
	}
	value := make([]map[string]any, 0, len(users))
	for _, u := range users {
		p := graphPresence(u.view(now))
		delete(p, "@odata.context")
		value = append(value, p)
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.presence)", "value": value})
}

// decodeJSON reads a JSON request body into v, answering 400 or 415
// itself.
func (e *Emulator) decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeGraphError(w, r, http.StatusUnsupportedMediaType, "BadRequest", "Content-Type must be application/json.", e.clock.Now())
		return false
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "Invalid request body: "+err.Error(), e.clock.Now())
		return false
	}
	return true
}

func (e *Emulator) setPresence(w http.ResponseWriter, r *http.Request) {
	tok, ok := e.authorize(w, r, "Presence.ReadWrite.All")
	if !ok || !e.admit(w, r, tok) {
		return
	}
	var body struct {
		SessionID          string `json:"sessionId"`
		Availability       string `json:"availability"`
		Activity           string `json:"activity"`
		ExpirationDuration string `json:"expirationDuration"`
	}
	if !e.decodeJSON(w, r, &body) {
		return
	}
	now := e.clock.Now()
	expiry := defaultExpiry
	if body.ExpirationDuration != "" {
		d, err := ParseDuration(body.ExpirationDuration)
		if err != nil || d < minExpiry || d > maxExpiry {
			writeGraphError(w, r, http.StatusBadRequest, "InvalidArgument", "The provided [ExpirationDuration] is out of range.", now)
			return
		}
		expiry = d
	}
	switch {
	case body.SessionID == "":
		writeGraphError(w, r, http.StatusBadRequest, "InvalidArgument", "The sessionId is required.", now)
		return
	case !slices.Contains(appPairs, [2]string{body.Availability, body.Activity}):
		writeGraphError(w, r, http.StatusBadRequest, "InvalidArgument", "The availability and activity pair "+body.Availability+"/"+body.Activity+" is not supported.", now)
		return
	}
	u := e.userFor(w, r, tok)
	if u == nil {
		return
	}
	e.mu.Lock()
	u.sessions[body.SessionID] = &session{id: body.SessionID, kind: "app", availability: body.Availability, activity: body.Activity, refreshed: now, expires: now.Add(expiry)}
	u.view(now)
	e.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (e *Emulator) clearPresence(w http.ResponseWriter, r *http.Request) {
	tok, ok := e.authorize(w, r, "Presence.ReadWrite.All")
	if !ok || !e.admit(w, r, tok) {
		return
	}
	var body struct {
		SessionID string `json:"sessionId"`
	}
	if !e.decodeJSON(w, r, &body) {
		return
	}
	if body.SessionID == "" {
		writeGraphError(w, r, http.StatusBadRequest, "InvalidArgument", "The sessionId is required.", e.clock.Now())
		return
	}
	u := e.userFor(w, r, tok)
	if u == nil {
		return
	}
	now := e.clock.Now()
	e.mu.Lock()
	u.view(now) // drop expired sessions first
	_, exists := u.sessions[body.SessionID]
	delete(u.sessions, body.SessionID)
	u.view(now)
	e.mu.Unlock()
	if !exists {
		writeGraphError(w, r, http.StatusNotFound, "NotFound", "The presence session "+body.SessionID+" was not found.", now)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (e *Emulator) setPreferred(w http.ResponseWriter, r *http.Request) {
	tok, ok := e.authorize(w, r, "Presence.ReadWrite.All")
	if !ok || !e.admit(w, r, tok) {
		return
	}
	var body struct {
		Availability       string `json:"availability"`
		Activity           string `json:"activity"`
		ExpirationDuration string `json:"expirationDuration"`
	}
	if !e.decodeJSON(w, r, &body) {
		return
	}
	now := e.clock.Now()
	if !slices.Contains(preferredPairs, [2]string{body.Availability, body.Activity}) {
		writeGraphError(w, r, http.StatusBadRequest, "InvalidArgument", "The availability and activity pair "+body.Availability+"/"+body.Activity+" is not supported.", now)
		return
	}
	expiry := 7 * 24 * time.Hour
	if body.Availability == "DoNotDisturb" || body.Availability == "Busy" {
		expiry = 24 * time.Hour
	}
	if body.ExpirationDuration != "" {
		d, err := ParseDuration(body.ExpirationDuration)
		if err != nil || d <= 0 {
			writeGraphError(w, r, http.StatusBadRequest, "InvalidArgument", "The provided [ExpirationDuration] is out of range.", now)
			return
		}
		expiry = d
	}
	u := e.userFor(w, r, tok)
	if u == nil {
		return
	}
	e.mu.Lock()
	u.preferred = &preferred{availability: body.Availability, activity: body.Activity, expires: now.Add(expiry)}
	u.view(now)
	e.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (e *Emulator) clearPreferred(w http.ResponseWriter, r *http.Request) {
	tok, ok := e.authorize(w, r, "Presence.ReadWrite.All")
	if !ok || !e.admit(w, r, tok) {
		return
	}
	u := e.userFor(w, r, tok)
	if u == nil {
		return
	}
	e.mu.Lock()
	u.preferred = nil
	u.view(e.clock.Now())
	e.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (e *Emulator) getUser(w http.ResponseWriter, r *http.Request) {
	tok, ok := e.authorize(w, r, "User.Read.All", "User.ReadBasic.All", "Directory.Read.All")
	if !ok {
		return
	}
	u := e.userFor(w, r, tok)
	if u == nil {
		return
	}
	full := map[string]any{
		"id": u.user.ID, "userPrincipalName": u.user.UserPrincipalName, "displayName": u.user.DisplayName, "mail": nilIfEmpty(u.user.Mail),
	}
	out := map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity"}
	if sel := r.URL.Query().Get("$select"); sel != "" {
		for _, f := range strings.Split(sel, ",") {
			if v, ok := full[strings.TrimSpace(f)]; ok {
				out[strings.TrimSpace(f)] = v
			}
		}
	} else {
		for k, v := range full {
			out[k] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

var isoDuration = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

// ParseDuration reads an ISO 8601 duration such as PT15M or P1DT2H.
func ParseDuration(s string) (time.Duration, error) {
	m := isoDuration.FindStringSubmatch(s)
	if m == nil || s == "P" || strings.HasSuffix(s, "T") {
		return 0, fmt.Errorf("not an ISO 8601 duration: %q", s)
	}
	// Sum in float seconds and bound the total, so that no input can
	// overflow time.Duration.
	const maxSeconds = 10 * 366 * 24 * 3600
	total := 0.0
	for i, unit := range []float64{24 * 3600, 3600, 60, 1} {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.ParseFloat(m[i+1], 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		total += n * unit
	}
	if !(total <= maxSeconds) {
		return 0, fmt.Errorf("duration %q: longer than ten years", s)
	}
	return time.Duration(total * float64(time.Second)), nil
}

// unescape is used for ids in admin paths.
func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
