package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// The admin API under /_emulator/: reads are always allowed and need no
// token; changes need admin.writes, moving the clock admin.test_clock.

// adminWrite guards a changing admin endpoint behind admin.writes.
func (e *Emulator) adminWrite(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !e.cfg.Admin.Writes {
			writeError(w, r, &apiError{status: http.StatusForbidden, code: "Forbidden", message: "Admin changes are off: set admin.writes: true in the emulator's configuration."})
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h(rec, r)
		e.log.Info("graph emulator admin change", "method", r.Method, "path", r.URL.Path, "status", rec.status)
	}
}

// decodeAdmin reads an admin request's JSON body strictly: unknown fields
// are errors, so that a typo does not pass unnoticed.
func decodeAdmin(r *http.Request, v any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(meta(r).body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("BadRequest", "Invalid admin request body: %v.", err)
	}
	return nil
}

func ok(w http.ResponseWriter) { writeJSON(w, http.StatusOK, map[string]string{"status": "ok"}) }

// jsonDuration is a duration in an admin body: a number of seconds, or a
// string such as "90s", "1m30s" or "PT1M30S".
type jsonDuration time.Duration

// UnmarshalJSON reads seconds or a duration string.
func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var seconds float64
	if err := json.Unmarshal(b, &seconds); err == nil {
		if math.IsNaN(seconds) || math.Abs(seconds) > maxDuration.Seconds() {
			return fmt.Errorf("duration %v out of range", seconds)
		}
		*d = jsonDuration(seconds * float64(time.Second))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("a duration must be a number of seconds or a string such as \"90s\" or \"PT1M30S\"")
	}
	if strings.HasPrefix(s, "P") {
		v, err := ParseDuration(s)
		*d = jsonDuration(v)
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	if v > maxDuration || v < -maxDuration {
		return fmt.Errorf("duration %q out of range", s)
	}
	*d = jsonDuration(v)
	return nil
}

func (e *Emulator) adminPresences(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"value": e.Presences()})
}

func (e *Emulator) adminPresence(w http.ResponseWriter, r *http.Request) {
	v, found := e.Presence(r.PathValue("id"))
	if !found {
		writeError(w, r, notFound("itemNotFound", "No user '"+r.PathValue("id")+"'."))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (e *Emulator) adminRequests(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"value": e.Requests()})
}

func (e *Emulator) adminClearRequests(w http.ResponseWriter, _ *http.Request) {
	e.ClearRequests()
	ok(w)
}

// ClearRequests empties the request log and its counts.
func (e *Emulator) ClearRequests() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests, e.counts = nil, nil
}

// adminSessionBody is POST /_emulator/sessions: a simulated Teams client
// session, an app session, or (kind "preferred") a status set by hand.
type adminSessionBody struct {
	User         string        `json:"user"`
	Kind         string        `json:"kind"`
	SessionID    string        `json:"sessionId"`
	AppID        string        `json:"appId"`
	Availability string        `json:"availability"`
	Activity     string        `json:"activity"`
	ExpiresIn    *jsonDuration `json:"expiresIn"`
}

func (e *Emulator) adminSession(w http.ResponseWriter, r *http.Request) {
	var body adminSessionBody
	if err := decodeAdmin(r, &body); err != nil {
		writeError(w, r, err)
		return
	}
	var lifetime time.Duration
	if body.ExpiresIn != nil {
		lifetime = time.Duration(*body.ExpiresIn)
	}
	var err error
	if strings.EqualFold(body.Kind, "preferred") {
		err = e.SetPreferred(body.User, body.Availability, body.Activity, lifetime)
	} else {
		err = e.SetSession(body.User, Session{ID: body.SessionID, Kind: strings.ToLower(body.Kind), AppID: body.AppID,
			Availability: body.Availability, Activity: body.Activity, Lifetime: lifetime})
	}
	e.answerChange(w, r, err)
}

// answerChange answers a Go control's error: 404 for an unknown user, 400
// for anything else.
func (e *Emulator) answerChange(w http.ResponseWriter, r *http.Request, err error) {
	var noUser errNoUser
	switch {
	case err == nil:
		ok(w)
	case errors.As(err, &noUser):
		writeError(w, r, notFound("itemNotFound", err.Error()))
	default:
		writeError(w, r, badRequest("BadRequest", "%s", err.Error()))
	}
}

func (e *Emulator) adminEndSession(w http.ResponseWriter, r *http.Request) {
	found, err := e.EndSession(r.PathValue("user"), r.PathValue("session"))
	if err == nil && !found {
		writeError(w, r, notFound("itemNotFound", "No session '"+r.PathValue("session")+"' for '"+r.PathValue("user")+"'."))
		return
	}
	e.answerChange(w, r, err)
}

// adminPreferred is POST /_emulator/preferred.
func (e *Emulator) adminPreferred(w http.ResponseWriter, r *http.Request) {
	var body struct {
		User         string        `json:"user"`
		Availability string        `json:"availability"`
		Activity     string        `json:"activity"`
		ExpiresIn    *jsonDuration `json:"expiresIn"`
	}
	if err := decodeAdmin(r, &body); err != nil {
		writeError(w, r, err)
		return
	}
	var lifetime time.Duration
	if body.ExpiresIn != nil {
		lifetime = time.Duration(*body.ExpiresIn)
	}
	e.answerChange(w, r, e.SetPreferred(body.User, body.Availability, body.Activity, lifetime))
}

func (e *Emulator) adminClearPreferred(w http.ResponseWriter, r *http.Request) {
	e.answerChange(w, r, e.ClearPreferred(r.PathValue("user")))
}

// adminFaultsBody is POST /_emulator/faults; fields left out keep their
// current setting.
type adminFaultsBody struct {
	Latency        *jsonDuration `json:"latency"`
	Outage         *jsonDuration `json:"outage"`
	FailNext       *int          `json:"failNext"`
	FailStatus     int           `json:"failStatus"`
	FailRate       *float64      `json:"failRate"`
	FailRateStatus int           `json:"failRateStatus"`
	Seed           uint64        `json:"seed"`
	ThrottleNext   *int          `json:"throttleNext"`
	RetryAfter     *jsonDuration `json:"retryAfter"`
	ActionStatus   *int          `json:"actionStatus"`
}

func (e *Emulator) adminFaults(w http.ResponseWriter, r *http.Request) {
	var body adminFaultsBody
	if err := decodeAdmin(r, &body); err != nil {
		writeError(w, r, err)
		return
	}
	if body.FailRate != nil && (*body.FailRate < 0 || *body.FailRate > 1) {
		writeError(w, r, badRequest("BadRequest", "failRate must be between 0 and 1."))
		return
	}
	if body.ActionStatus != nil {
		if err := e.SetActionStatus(*body.ActionStatus); err != nil {
			writeError(w, r, badRequest("BadRequest", "%v.", err))
			return
		}
	}
	if body.Latency != nil {
		e.SetLatency(time.Duration(*body.Latency))
	}
	if body.Outage != nil {
		e.Outage(time.Duration(*body.Outage))
	}
	if body.FailNext != nil {
		e.FailNext(*body.FailNext, body.FailStatus)
	}
	if body.FailRate != nil {
		e.FailRate(*body.FailRate, body.FailRateStatus, body.Seed)
	}
	if body.ThrottleNext != nil {
		var ra time.Duration
		if body.RetryAfter != nil {
			ra = time.Duration(*body.RetryAfter)
		}
		e.ForceThrottle(*body.ThrottleNext, ra)
	}
	writeJSON(w, http.StatusOK, e.Faults())
}

// adminStatusMessage is POST /_emulator/statusMessage: a status message
// the user wrote, {"user","content","expiresIn"}; empty content clears it.
func (e *Emulator) adminStatusMessage(w http.ResponseWriter, r *http.Request) {
	var body struct {
		User      string        `json:"user"`
		Content   string        `json:"content"`
		ExpiresIn *jsonDuration `json:"expiresIn"`
	}
	if err := decodeAdmin(r, &body); err != nil {
		writeError(w, r, err)
		return
	}
	var expires time.Time
	if body.ExpiresIn != nil {
		if *body.ExpiresIn <= 0 {
			writeError(w, r, badRequest("BadRequest", "expiresIn must be positive."))
			return
		}
		expires = e.clock.Now().Add(time.Duration(*body.ExpiresIn))
	}
	e.answerChange(w, r, e.SetStatusMessage(body.User, body.Content, expires))
}

func (e *Emulator) adminGetFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, e.Faults())
}

func (e *Emulator) adminClearFaults(w http.ResponseWriter, _ *http.Request) {
	e.ClearFaults()
	writeJSON(w, http.StatusOK, e.Faults())
}

func (e *Emulator) adminEvents(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"value": e.Events()})
}

func (e *Emulator) adminSetEvent(w http.ResponseWriter, r *http.Request) {
	var ev CalendarEvent
	if err := decodeAdmin(r, &ev); err != nil {
		writeError(w, r, err)
		return
	}
	e.answerChange(w, r, e.SetEvent(ev))
}

func (e *Emulator) adminDeleteEvent(w http.ResponseWriter, r *http.Request) {
	if !e.DeleteEvent(r.PathValue("user"), r.PathValue("id")) {
		writeError(w, r, notFound("itemNotFound", "No event '"+r.PathValue("id")+"' for '"+r.PathValue("user")+"'."))
		return
	}
	ok(w)
}

// adminToken is POST /_emulator/tokens: a delegated token for a user, to
// reach /me/presence (the emulator has no sign-in flow).
func (e *Emulator) adminToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		User   string   `json:"user"`
		Scopes []string `json:"scopes"`
	}
	if err := decodeAdmin(r, &body); err != nil {
		writeError(w, r, err)
		return
	}
	tok, err := e.DelegatedToken(body.User, body.Scopes...)
	if err != nil {
		e.answerChange(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": int(tokenLifetime.Seconds()), "access_token": tok})
}

func (e *Emulator) adminReset(w http.ResponseWriter, _ *http.Request) {
	e.Reset()
	ok(w)
}

func (e *Emulator) adminClock(w http.ResponseWriter, _ *http.Request) {
	_, movable := e.clock.(advancer)
	writeJSON(w, http.StatusOK, map[string]any{"now": e.clock.Now(), "advanceable": movable && e.cfg.Admin.TestClock})
}

// adminAdvance is POST /_emulator/clock/advance with {"seconds":N} or
// {"duration":"5m"} (or "PT5M"); only with admin.test_clock.
func (e *Emulator) adminAdvance(w http.ResponseWriter, r *http.Request) {
	clock, movable := e.clock.(advancer)
	if !e.cfg.Admin.TestClock || !movable {
		writeError(w, r, &apiError{status: http.StatusForbidden, code: "Forbidden", message: "The clock moves only in test mode: set admin.test_clock: true in the emulator's configuration."})
		return
	}
	var body struct {
		Seconds  *float64      `json:"seconds"`
		Duration *jsonDuration `json:"duration"`
	}
	if err := decodeAdmin(r, &body); err != nil {
		writeError(w, r, err)
		return
	}
	var d time.Duration
	switch {
	case body.Seconds != nil && body.Duration == nil:
		s := *body.Seconds
		if math.IsNaN(s) || s < 0 || s > maxDuration.Seconds() {
			writeError(w, r, badRequest("BadRequest", "seconds must be between 0 and ten years."))
			return
		}
		d = time.Duration(s * float64(time.Second))
	case body.Duration != nil && body.Seconds == nil && *body.Duration >= 0:
		d = time.Duration(*body.Duration)
	default:
		writeError(w, r, badRequest("BadRequest", "Give either seconds (a number) or duration (such as \"5m\" or \"PT5M\"), not negative."))
		return
	}
	clock.Advance(d)
	e.log.Info("graph emulator clock advanced", "by", d, "now", clock.Now())
	writeJSON(w, http.StatusOK, map[string]any{"now": clock.Now()})
}
