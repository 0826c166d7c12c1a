package emulator

import (
	"net/http"
	"strings"
)

// routes registers every endpoint: the token endpoint, Graph's under both
// /v1.0 and /beta, and the admin API.
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
		mux.HandleFunc("POST "+v+"/users/{id}/presence/setStatusMessage", e.setStatusMessage)
		mux.HandleFunc("POST "+v+"/communications/presences/{id}/setStatusMessage", e.setStatusMessage)
		for _, action := range []string{"setManualLocation", "setAutomaticLocation", "clearLocation", "clearAutomaticLocation"} {
			mux.HandleFunc("POST "+v+"/me/presence/"+action, e.locationAction(action))
			mux.HandleFunc("POST "+v+"/users/{id}/presence/"+action, e.locationAction(action))
			if strings.HasPrefix(action, "set") {
				mux.HandleFunc("POST "+v+"/communications/presences/{id}/"+action, e.locationAction(action))
			}
		}
		mux.HandleFunc("GET "+v+"/users/{id}", e.getUser)
		mux.HandleFunc("GET "+v+"/users", e.listUsers)
		mux.HandleFunc("GET "+v+"/groups/{id}/members", e.listGroupMembers)
		mux.HandleFunc("GET "+v+"/groups/{id}/members/microsoft.graph.user", e.listGroupMembers)
		mux.HandleFunc("GET "+v+"/users/{id}/events/{eventId}", e.getEvent)
		mux.HandleFunc("POST "+v+"/subscriptions", e.createSubscription)
		mux.HandleFunc("GET "+v+"/subscriptions", e.listSubscriptions)
		mux.HandleFunc("GET "+v+"/subscriptions/{id}", e.getSubscription)
		mux.HandleFunc("PATCH "+v+"/subscriptions/{id}", e.renewSubscription)
		mux.HandleFunc("DELETE "+v+"/subscriptions/{id}", e.deleteSubscription)
		mux.HandleFunc("POST "+v+"/subscriptions/{id}/reauthorize", e.reauthorizeSubscription)
	}

	mux.HandleFunc("GET /_emulator/presences", e.adminPresences)
	mux.HandleFunc("GET /_emulator/presences/{id}", e.adminPresence)
	mux.HandleFunc("GET /_emulator/requests", e.adminRequests)
	mux.HandleFunc("GET /_emulator/faults", e.adminGetFaults)
	mux.HandleFunc("GET /_emulator/events", e.adminEvents)
	mux.HandleFunc("GET /_emulator/clock", e.adminClock)
	mux.HandleFunc("GET /_emulator/throttle", e.adminThrottle)
	mux.HandleFunc("GET /_emulator/groups", e.adminGroups)
	mux.HandleFunc("POST /_emulator/throttle", e.adminWrite(e.adminSetThrottle))
	mux.HandleFunc("POST /_emulator/users", e.adminWrite(e.adminAddUser))
	mux.HandleFunc("DELETE /_emulator/users/{user}", e.adminWrite(e.adminRemoveUser))
	mux.HandleFunc("POST /_emulator/groups", e.adminWrite(e.adminSetGroup))
	mux.HandleFunc("DELETE /_emulator/groups/{id}", e.adminWrite(e.adminDeleteGroup))
	mux.HandleFunc("POST /_emulator/groups/{id}/members", e.adminWrite(e.adminAddMember))
	mux.HandleFunc("DELETE /_emulator/groups/{id}/members/{member}", e.adminWrite(e.adminRemoveMember))
	mux.HandleFunc("GET /_emulator/subscriptions", e.adminSubscriptions)
	mux.HandleFunc("POST /_emulator/subscriptions/{id}/lifecycle", e.adminWrite(e.adminLifecycle))
	mux.HandleFunc("DELETE /_emulator/subscriptions/{id}", e.adminWrite(e.adminRemoveSubscription))

	mux.HandleFunc("DELETE /_emulator/requests", e.adminWrite(e.adminClearRequests))
	mux.HandleFunc("POST /_emulator/sessions", e.adminWrite(e.adminSession))
	mux.HandleFunc("DELETE /_emulator/sessions/{user}/{session}", e.adminWrite(e.adminEndSession))
	mux.HandleFunc("POST /_emulator/preferred", e.adminWrite(e.adminPreferred))
	mux.HandleFunc("POST /_emulator/statusMessage", e.adminWrite(e.adminStatusMessage))
	mux.HandleFunc("DELETE /_emulator/preferred/{user}", e.adminWrite(e.adminClearPreferred))
	mux.HandleFunc("POST /_emulator/faults", e.adminWrite(e.adminFaults))
	mux.HandleFunc("DELETE /_emulator/faults", e.adminWrite(e.adminClearFaults))
	mux.HandleFunc("POST /_emulator/events", e.adminWrite(e.adminSetEvent))
	mux.HandleFunc("DELETE /_emulator/events/{user}/{id}", e.adminWrite(e.adminDeleteEvent))
	mux.HandleFunc("POST /_emulator/tokens", e.adminWrite(e.adminToken))
	mux.HandleFunc("POST /_emulator/reset", e.adminWrite(e.adminReset))
	mux.HandleFunc("POST /_emulator/clock/advance", e.adminAdvance)

	mux.HandleFunc("/", e.unknown)
	e.mux = mux
}

// unknown answers a request no route took: 405 for a known path with
// another method, Graph's 400 for an unknown Graph segment, 404 otherwise.
func (e *Emulator) unknown(w http.ResponseWriter, r *http.Request) {
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete} {
		if method == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, pattern := e.mux.Handler(probe); pattern != "/" && pattern != "" {
			writeError(w, r, &apiError{status: http.StatusMethodNotAllowed, code: "BadRequest", message: "Specified HTTP method is not allowed for the request target."})
			return
		}
	}
	if isGraphPath(r.URL.Path) {
		writeError(w, r, badRequest("BadRequest", "Resource not found for the segment '%s'.", unknownSegment(r.URL.Path)))
		return
	}
	writeError(w, r, notFound("NotFound", "No such endpoint in the graph emulator: "+r.Method+" "+r.URL.Path+"."))
}

// knownSegments are the path segments the emulated Graph resolves; the
// segment after a collection is a key.
var knownSegments = map[string]bool{
	"users": true, "groups": true, "members": true, "microsoft.graph.user": true, "subscriptions": true, "reauthorize": true, "communications": true, "me": true, "presence": true, "presences": true, "events": true,
	"getPresencesByUserId": true, "setPresence": true, "clearPresence": true,
	"setUserPreferredPresence": true, "clearUserPreferredPresence": true, "setStatusMessage": true,
	"setManualLocation": true, "setAutomaticLocation": true, "clearLocation": true, "clearAutomaticLocation": true,
}

// unknownSegment names the first segment of a Graph path the emulator
// cannot resolve, as Graph's error does.
func unknownSegment(path string) string {
	segments := strings.Split(strings.Trim(path, "/"), "/")[1:]
	for i := 0; i < len(segments); i++ {
		s := segments[i]
		if !knownSegments[s] {
			return s
		}
		if s == "users" || s == "groups" || s == "presences" || s == "events" || s == "subscriptions" {
			i++ // the key
		}
	}
	if len(segments) == 0 {
		return ""
	}
	return segments[len(segments)-1]
}
