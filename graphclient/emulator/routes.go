package emulator

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
)

// routes registers every endpoint, under /v1.0 and /beta.
func (e *Emulator) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", e.token)
	for _, v := range []string{"/v1.0", "/beta"} {
		mux.HandleFunc("GET "+v+"/users/{id}/presence", e.getPresence)
		mux.HandleFunc("GET "+v+"/communications/presences/{id}", e.getPresence)
		mux.HandleFunc("GET "+v+"/communications/presences", e.listPresences)
		mux.HandleFunc("GET "+v+"/me/presence", e.mePresence)
		mux.HandleFunc("POST "+v+"/communications/getPresencesByUserId", e.presencesByUserID)
		mux.HandleFunc("POST "+v+"/users/{id}/presence/setPresence", e.setPresence)
		mux.HandleFunc("POST "+v+"/users/{id}/presence/clearPresence", e.clearPresence)
		mux.HandleFunc("POST "+v+"/users/{id}/presence/setUserPreferredPresence", e.setPreferred)
		mux.HandleFunc("POST "+v+"/users/{id}/presence/clearUserPreferredPresence", e.clearPreferred)
		mux.HandleFunc("GET "+v+"/users/{id}", e.getUser)
		mux.HandleFunc("GET "+v+"/users/{id}/events/{eventId}", e.getEvent)
	}
	mux.HandleFunc("GET /_emulator/presences", e.adminPresences)
	mux.HandleFunc("GET /_emulator/presences/{id}", e.adminPresence)
	mux.HandleFunc("GET /_emulator/requests", e.adminRequests)
	mux.HandleFunc("POST /_emulator/faults", e.adminWrite(e.adminFaults))
	mux.HandleFunc("POST /_emulator/sessions", e.adminWrite(e.adminSession))
	mux.HandleFunc("POST /_emulator/reset", e.adminWrite(func(w http.ResponseWriter, _ *http.Request) {
		e.reset()
		writeJSON(w, http.StatusOK, map[string]string{"status": "reset"})
	}))
	mux.HandleFunc("POST /_emulator/clock/advance", e.adminClock)
	mux.HandleFunc("POST /_emulator/events", e.adminWrite(e.adminEvent))
	mux.HandleFunc("DELETE /_emulator/events/{user}/{id}", e.adminWrite(e.adminDeleteEvent))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeGraphError(w, r, http.StatusNotFound, "UnknownError", "Resource not found for the segment '"+r.URL.Path+"'.", e.clock.Now())
	})
	e.mux = mux
}

func (e *Emulator) adminPresences(w http.ResponseWriter, _ *http.Request) {
	now := e.clock.Now()
	e.mu.Lock()
	views := make([]PresenceView, 0, len(e.users))
	for _, u := range e.users {
		views = append(views, u.view(now))
	}
	e.mu.Unlock()
	sort.Slice(views, func(i, j int) bool { return views[i].ID < views[j].ID })
	writeJSON(w, http.StatusOK, map[string]any{"value": views})
}

func (e *Emulator) adminPresence(w http.ResponseWriter, r *http.Request) {
	v, ok := e.Presence(unescape(r.PathValue("id")))
	if !ok {
		writeGraphError(w, r, http.StatusNotFound, "itemNotFound", "No such user.", e.clock.Now())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (e *Emulator) adminRequests(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"value": e.Requests()})
}

// adminWrite guards a mutating admin endpoint behind admin.writes.
func (e *Emulator) adminWrite(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !e.cfg.Admin.Writes {
			writeJSON(w, http.StatusForbidden, map[string]any{"error": map[string]string{"code": "Forbidden", "message": "admin writes are off (admin.writes)"}})
			return
		}
		h(w, r)
	}
}

// adminFaults sets injected faults: {"failNext":N,"failStatus":503,
// "throttleNext":N,"retryAfterSeconds":S,"outageSeconds":S,"latencyMs":MS}.
func (e *Emulator) adminFaults(w http.ResponseWriter, r *http.Request) {
	var body struct {
		FailNext          int     `json:"failNext"`
		FailStatus        int     `json:"failStatus"`
		ThrottleNext      int     `json:"throttleNext"`
		RetryAfterSeconds float64 `json:"retryAfterSeconds"`
		OutageSeconds     float64 `json:"outageSeconds"`
		LatencyMs         int     `json:"latencyMs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "Invalid faults body: "+err.Error(), e.clock.Now())
		return
	}
	if body.FailNext > 0 {
		if body.FailStatus < 400 || body.FailStatus > 599 {
			body.FailStatus = http.StatusServiceUnavailable
		}
		e.FailNext(body.FailNext, body.FailStatus)
	}
	if body.ThrottleNext > 0 {
		e.ForceThrottle(body.ThrottleNext, time.Duration(body.RetryAfterSeconds*float64(time.Second)))
	}
	if body.OutageSeconds > 0 {
		e.Outage(time.Duration(body.OutageSeconds * float64(time.Second)))
	}
	e.SetLatency(time.Duration(body.LatencyMs) * time.Millisecond)
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// adminSession simulates a Teams client session or a status the user set
// by hand: {"user":"...","kind":"teams"|"preferred","availability":"...",
// "activity":"...","expiresInSeconds":N}.
func (e *Emulator) adminSession(w http.ResponseWriter, r *http.Request) {
	var body struct {
		User             string  `json:"user"`
		Kind             string  `json:"kind"`
		Availability     string  `json:"availability"`
		Activity         string  `json:"activity"`
		ExpiresInSeconds float64 `json:"expiresInSeconds"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "Invalid session body: "+err.Error(), e.clock.Now())
		return
	}
	expires := time.Duration(body.ExpiresInSeconds * float64(time.Second))
	var err error
	switch strings.ToLower(body.Kind) {
	case "teams", "":
		err = e.SetTeamsSession(body.User, body.Availability, body.Activity, expires)
	case "preferred":
		err = e.SetPreferred(body.User, body.Availability, body.Activity, expires)
	default:
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "kind must be teams or preferred", e.clock.Now())
		return
	}
	if err != nil {
		writeGraphError(w, r, http.StatusNotFound, "itemNotFound", err.Error(), e.clock.Now())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (e *Emulator) adminClock(w http.ResponseWriter, r *http.Request) {
	fake, ok := e.clock.(*FakeClock)
	if !e.cfg.Admin.TestClock || !ok {
		writeJSON(w, http.StatusForbidden, map[string]any{"error": map[string]string{"code": "Forbidden", "message": "the clock can move only in test mode (admin.test_clock)"}})
		return
	}
	var body struct {
		Seconds float64 `json:"seconds"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Seconds < 0 {
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "body must be {\"seconds\": N} with N >= 0", e.clock.Now())
		return
	}
	fake.Advance(time.Duration(body.Seconds * float64(time.Second)))
	writeJSON(w, http.StatusOK, map[string]any{"now": fake.Now()})
}
