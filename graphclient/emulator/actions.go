package emulator

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Graph's limits on an application presence session.
const (
	defaultExpiration = 5 * time.Minute
	minExpiration     = 5 * time.Minute
	maxExpiration     = 4 * time.Hour
	maxSessionID      = 256
)

// Default lifetimes of a user-preferred presence.
const (
	preferredBusyLifetime  = 24 * time.Hour     // Busy and DoNotDisturb
	preferredOtherLifetime = 7 * 24 * time.Hour // the others
)

// SetPresenceRequest is a parsed setPresence body.
type SetPresenceRequest struct {
	SessionID  string
	Pair       Pair
	Expiration time.Duration
}

// ParseSetPresence reads and validates a setPresence body as Graph does:
// a JSON object with sessionId (required), availability and activity (one
// of the five settable pairs, exact case) and expirationDuration (ISO 8601,
// PT5M to PT4H, default PT5M). Errors are Graph's 400 answers.
func ParseSetPresence(body []byte) (SetPresenceRequest, error) {
	req, err := parseSetPresence(body)
	if err != nil {
		return req, err
	}
	return req, nil
}

func parseSetPresence(body []byte) (SetPresenceRequest, *apiError) {
	var req SetPresenceRequest
	var expiration string
	if err := actionParams(body, "setPresence", map[string]any{
		"sessionId": &req.SessionID, "availability": &req.Pair.Availability, "activity": &req.Pair.Activity, "expirationDuration": &expiration,
	}); err != nil {
		return req, err
	}
	if req.SessionID == "" || len(req.SessionID) > maxSessionID {
		return req, badRequest("InvalidArgument", "The sessionId parameter is required (the application's id, at most %d characters).", maxSessionID)
	}
	if !slices.Contains(appPairs, req.Pair) {
		return req, badRequest("InvalidArgument", "The availability '%s' and activity '%s' are not a supported combination. Supported: Available/Available, Busy/InACall, Busy/InAConferenceCall, Away/Away, DoNotDisturb/Presenting.", truncate(req.Pair.Availability, 64), truncate(req.Pair.Activity, 64))
	}
	d, err := parseExpiration(expiration, defaultExpiration)
	if err != nil {
		return req, err
	}
	if d < minExpiration || d > maxExpiration {
		return req, errExpirationRange
	}
	req.Expiration = d
	return req, nil
}

// parseExpiration reads an expirationDuration parameter, def when absent.
func parseExpiration(s string, def time.Duration) (time.Duration, *apiError) {
	if s == "" {
		return def, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return 0, badRequest("BadRequest", "Cannot convert the literal '%s' to the expected type 'Edm.Duration'.", truncate(s, 64))
	}
	return d, nil
}

// presenceAction runs the parts every presence action shares: the token,
// permission p, throttling, a JSON body, the user (the signed-in user's
// under /me, an object id only under /communications/presences). change
// then alters the user's state at now, holding e.mu; a non-nil answer from
// it is sent instead of success. Success is 200 with no body, or the
// status SetActionStatus chose.
func (e *Emulator) presenceAction(w http.ResponseWriter, r *http.Request, p permission, parse func([]byte) *apiError, change func(u *userState, c *claims, now time.Time) *apiError) {
	c, err := e.authorized(r, p, true)
	if err == nil && len(bytes.TrimSpace(meta(r).body)) > 0 {
		err = requireJSON(r) // a body must be JSON; no body is {}
	}
	if err == nil {
		err = parse(meta(r).body)
	}
	id, now := r.PathValue("id"), meta(r).now
	switch {
	case err != nil:
	case strings.Contains(r.URL.Path, "/me/"):
		if !c.delegated() {
			err = errMeAppOnly
		}
		id = c.ObjectID
	case onlyObjectIDs(r) && !isObjectID(id):
		err = errUserNotFound(id)
	}
	if err == nil {
		err = e.withUser(c, id, p, errUserNotFound(id), func(u *userState) *apiError {
			u.advance(now)
			defer u.settle(now)
			return change(u, c, now)
		})
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	status := e.actionStatus()
	if status != http.StatusNoContent {
		w.Header().Set("Content-Length", "0")
	}
	w.WriteHeader(status)
}

// setPresence serves POST /users/{id}/presence/setPresence: it creates or
// refreshes the application session sessionId.
func (e *Emulator) setPresence(w http.ResponseWriter, r *http.Request) {
	var req SetPresenceRequest
	e.presenceAction(w, r, presenceWrite, func(body []byte) *apiError {
		var err *apiError
		req, err = parseSetPresence(body)
		return err
	}, func(u *userState, c *claims, now time.Time) *apiError {
		u.sessions[req.SessionID] = &sessionState{
			id: req.SessionID, kind: KindApp, appID: c.AppID, pair: req.Pair, refreshed: now, expires: now.Add(req.Expiration),
		}
		return nil
	})
}

// clearPresence serves POST /users/{id}/presence/clearPresence: it ends
// the session sessionId at once, 404 if there is none (an expired session
// is none).
func (e *Emulator) clearPresence(w http.ResponseWriter, r *http.Request) {
	var sessionID string
	e.presenceAction(w, r, presenceWrite, func(body []byte) *apiError {
		if err := actionParams(body, "clearPresence", map[string]any{"sessionId": &sessionID}); err != nil {
			return err
		}
		if sessionID == "" {
			return badRequest("InvalidArgument", "The sessionId parameter is required.")
		}
		return nil
	}, func(u *userState, _ *claims, _ time.Time) *apiError {
		if _, ok := u.sessions[sessionID]; !ok {
			return notFound("NotFound", "The presence session '"+truncate(sessionID, 64)+"' does not exist for this user.")
		}
		delete(u.sessions, sessionID)
		return nil
	})
}

// parsePreferred reads a setUserPreferredPresence body: one of the six
// preferred pairs and an optional positive expirationDuration (by default
// 1 day for Busy and DoNotDisturb, 7 days for the others).
func parsePreferred(body []byte) (Pair, time.Duration, *apiError) {
	var p Pair
	var expiration string
	if err := actionParams(body, "setUserPreferredPresence", map[string]any{
		"availability": &p.Availability, "activity": &p.Activity, "expirationDuration": &expiration,
	}); err != nil {
		return p, 0, err
	}
	if !slices.Contains(preferredPairs, p) {
		return p, 0, badRequest("InvalidArgument", "The availability '%s' and activity '%s' are not a supported combination. Supported: Available/Available, Busy/Busy, DoNotDisturb/DoNotDisturb, BeRightBack/BeRightBack, Away/Away, Offline/OffWork.", truncate(p.Availability, 64), truncate(p.Activity, 64))
	}
	d, err := parseExpiration(expiration, preferredLifetime(p))
	if err != nil {
		return p, 0, err
	}
	if d <= 0 {
		return p, 0, errExpirationRange
	}
	return p, d, nil
}

// preferredLifetime is Graph's default expiration of a preferred presence.
func preferredLifetime(p Pair) time.Duration {
	if p.Availability == "Busy" || p.Availability == "DoNotDisturb" {
		return preferredBusyLifetime
	}
	return preferredOtherLifetime
}

// setPreferred serves POST /users/{id}/presence/setUserPreferredPresence.
func (e *Emulator) setPreferred(w http.ResponseWriter, r *http.Request) {
	var pair Pair
	var lifetime time.Duration
	e.presenceAction(w, r, presenceWrite, func(body []byte) *apiError {
		var err *apiError
		pair, lifetime, err = parsePreferred(body)
		return err
	}, func(u *userState, _ *claims, now time.Time) *apiError {
		u.preferred = &preferredState{pair: pair, set: now, expires: now.Add(lifetime)}
		return nil
	})
}

// clearPreferred serves POST /users/{id}/presence/clearUserPreferredPresence
// (body {}); clearing when none is set is not an error.
func (e *Emulator) clearPreferred(w http.ResponseWriter, r *http.Request) {
	e.presenceAction(w, r, presenceWrite, func(body []byte) *apiError {
		return actionParams(body, "clearUserPreferredPresence", map[string]any{})
	}, func(u *userState, _ *claims, _ time.Time) *apiError {
		u.preferred = nil
		return nil
	})
}
