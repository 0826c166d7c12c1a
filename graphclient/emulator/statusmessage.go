package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // zone names resolve the same on every host
)

// StatusMessageUser is the SetBy of a status message the user wrote
// themself (SetStatusMessage, the admin API or a delegated token); an
// application's message names its client id.
const StatusMessageUser = "user"

// DateTimeTimeZone is Graph's dateTimeTimeZone: a local date and time
// without an offset, and the time zone it is in (UTC, an IANA name or a
// Windows name such as "Pacific Standard Time").
type DateTimeTimeZone struct {
	DateTime string `json:"dateTime"`
	TimeZone string `json:"timeZone"`
}

// StatusMessageView is a user's status message as the admin API and
// Presence show it.
type StatusMessageView struct {
	Content     string `json:"content"`
	ContentType string `json:"contentType"`
	// ExpiryDateTime is the expiry as it was given, nil for none; ExpiresAt
	// is the same instant.
	ExpiryDateTime *DateTimeTimeZone `json:"expiryDateTime,omitempty"`
	ExpiresAt      *time.Time        `json:"expiresAt,omitempty"`
	PublishedAt    time.Time         `json:"publishedAt"`
	// SetBy is the client id of the application that set the message, or
	// StatusMessageUser.
	SetBy string `json:"setBy"`
}

// statusMessageState is a user's status message.
type statusMessageState struct {
	content, contentType string
	expiry               *DateTimeTimeZone
	expiresAt            time.Time // zero: never
	published            time.Time
	setBy                string
}

// view is the message at now, nil when there is none or it has expired.
func (s *statusMessageState) view(now time.Time) *StatusMessageView {
	if s == nil || (!s.expiresAt.IsZero() && !now.Before(s.expiresAt)) {
		return nil
	}
	v := &StatusMessageView{Content: s.content, ContentType: s.contentType, PublishedAt: s.published, SetBy: s.setBy}
	if s.expiry != nil {
		expiry, at := *s.expiry, s.expiresAt
		v.ExpiryDateTime, v.ExpiresAt = &expiry, &at
	}
	return v
}

// decodeComplex reads a JSON object of a complex type strictly: each known
// property into its target, @odata annotations allowed, any other property
// Graph's 400.
func decodeComplex(raw json.RawMessage, typeName string, targets map[string]any) *apiError {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return badRequest("BadRequest", "Cannot convert the literal '%s' to the expected type 'microsoft.graph.%s'.", truncate(string(raw), 64), typeName)
	}
	for name, value := range fields {
		if strings.HasPrefix(name, "@odata.") {
			continue
		}
		target, known := targets[name]
		if !known {
			return badRequest("BadRequest", "The property '%s' does not exist on type 'microsoft.graph.%s'. Make sure to only use property names that are defined by the type.", truncate(name, 64), typeName)
		}
		if string(value) == "null" || target == nil {
			continue
		}
		if err := json.Unmarshal(value, target); err != nil {
			return badRequest("BadRequest", "Cannot convert the literal '%s' to the expected type of property '%s'.", truncate(string(value), 64), name)
		}
	}
	return nil
}

// parseStatusMessage reads a setStatusMessage body:
// {"statusMessage":{"message":{"content","contentType"},"expiryDateTime":{"dateTime","timeZone"}}}.
// The message is required and must be text (Graph supports no other
// content type); the expiry is optional, its dateTime required and
// without an offset, its zone one the emulator knows (UTC by default).
// Empty content clears the message.
func parseStatusMessage(body []byte) (*statusMessageState, *apiError) {
	var raw json.RawMessage
	if err := actionParams(body, "setStatusMessage", map[string]any{"statusMessage": &raw}); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, badRequest("BadRequest", "The statusMessage parameter is required.")
	}
	var message, expiry json.RawMessage
	// publishedDateTime is read-only: Graph sets it, a value sent is ignored.
	if err := decodeComplex(raw, "presenceStatusMessage", map[string]any{"message": &message, "expiryDateTime": &expiry, "publishedDateTime": nil}); err != nil {
		return nil, err
	}
	if len(message) == 0 {
		return nil, badRequest("BadRequest", "The statusMessage.message property is required.")
	}
	s := &statusMessageState{}
	if err := decodeComplex(message, "itemBody", map[string]any{"content": &s.content, "contentType": &s.contentType}); err != nil {
		return nil, err
	}
	switch s.contentType {
	case "":
		s.contentType = "text"
	case "text":
	case "html":
		return nil, badRequest("BadRequest", "The status message content type 'html' is not supported: message.contentType must be 'text'.")
	default:
		return nil, badRequest("BadRequest", "Cannot convert the literal '%s' to the expected type 'microsoft.graph.bodyType'.", truncate(s.contentType, 64))
	}
	if len(expiry) > 0 {
		var dt DateTimeTimeZone
		if err := decodeComplex(expiry, "dateTimeTimeZone", map[string]any{"dateTime": &dt.DateTime, "timeZone": &dt.TimeZone}); err != nil {
			return nil, err
		}
		at, err := dt.instant()
		if err != nil {
			return nil, err
		}
		s.expiry, s.expiresAt = &dt, at
	}
	return s, nil
}

// instant resolves a dateTimeTimeZone to the instant it names.
func (d DateTimeTimeZone) instant() (time.Time, *apiError) {
	if d.DateTime == "" {
		return time.Time{}, badRequest("BadRequest", "The expiryDateTime.dateTime property is required.")
	}
	if _, err := time.Parse(time.RFC3339Nano, d.DateTime); err == nil {
		return time.Time{}, badRequest("BadRequest", "The expiryDateTime.dateTime '%s' must not include a time zone offset: give the zone in timeZone.", truncate(d.DateTime, 64))
	}
	loc, ok := zoneLocation(d.TimeZone)
	if !ok {
		return time.Time{}, badRequest("BadRequest", "The time zone '%s' is not valid.", truncate(d.TimeZone, 64))
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, d.DateTime, loc); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, badRequest("BadRequest", "Cannot convert the literal '%s' to the expected type 'Edm.DateTime'.", truncate(d.DateTime, 64))
}

// windowsZones maps the Windows time zone names the emulator knows to IANA
// names; Graph takes both.
var windowsZones = map[string]string{
	"Pacific Standard Time": "America/Los_Angeles", "Mountain Standard Time": "America/Denver",
	"Central Standard Time": "America/Chicago", "Eastern Standard Time": "America/New_York",
	"GMT Standard Time": "Europe/London", "W. Europe Standard Time": "Europe/Berlin",
	"Romance Standard Time": "Europe/Paris", "Central European Standard Time": "Europe/Warsaw",
	"Russian Standard Time": "Europe/Moscow", "India Standard Time": "Asia/Kolkata",
	"China Standard Time": "Asia/Shanghai", "Tokyo Standard Time": "Asia/Tokyo",
	"AUS Eastern Standard Time": "Australia/Sydney",
}

// zoneLocation resolves a time zone name: empty or UTC, a Windows name the
// emulator knows, or an IANA name.
func zoneLocation(name string) (*time.Location, bool) {
	switch name {
	case "", "UTC", "Etc/UTC", "tzone://Microsoft/Utc":
		return time.UTC, true
	case "Local":
		return nil, false
	}
	if iana, ok := windowsZones[name]; ok {
		name = iana
	}
	loc, err := time.LoadLocation(name)
	return loc, err == nil
}

// setStatusMessage serves POST /users/{id}/presence/setStatusMessage and
// POST /communications/presences/{id}/setStatusMessage.
func (e *Emulator) setStatusMessage(w http.ResponseWriter, r *http.Request) {
	var msg *statusMessageState
	e.presenceAction(w, r, presenceWrite, func(body []byte) *apiError {
		var err *apiError
		msg, err = parseStatusMessage(body)
		return err
	}, func(u *userState, c *claims, now time.Time) *apiError {
		if msg.content == "" {
			u.status = nil
			return nil
		}
		msg.published, msg.setBy = now, c.AppID
		if c.delegated() {
			msg.setBy = StatusMessageUser
		}
		u.status = msg
		return nil
	})
}

// SetStatusMessage simulates the user writing a status message in Teams,
// text content, until expires (zero: no expiry). Empty content clears it.
func (e *Emulator) SetStatusMessage(user, content string, expires time.Time) error {
	return e.changeUser(user, func(u *userState, now time.Time) {
		if content == "" {
			u.status = nil
			return
		}
		s := &statusMessageState{content: content, contentType: "text", published: now, setBy: StatusMessageUser}
		if !expires.IsZero() {
			s.expiresAt = expires.UTC()
			s.expiry = &DateTimeTimeZone{DateTime: s.expiresAt.Format("2006-01-02T15:04:05.0000000"), TimeZone: "UTC"}
		}
		u.status = s
	})
}

// locationWrite is the work-location actions' permission: delegated
// Presence.ReadWrite on oneself only; Graph grants no application
// permission for them.
var locationWrite = permission{delegatedSelf: []string{"Presence.ReadWrite"}}

// workLocationTypes are the values setManualLocation and
// setAutomaticLocation take.
var workLocationTypes = []string{"unspecified", "office", "remote", "timeOff"}

// locationSignal is one layer of a user's work location.
type locationSignal struct {
	placeID, typ string
}

// workLocationState is a user's manual and automatic work location layers
// (the scheduled layer, from the calendar, is not emulated).
type workLocationState struct {
	manual, automatic *locationSignal
}

// WorkLocationView is the aggregated work location, Graph's
// userWorkLocation.
type WorkLocationView struct {
	PlaceID          string `json:"placeId,omitempty"`
	Source           string `json:"source"`
	WorkLocationType string `json:"workLocationType"`
}

// view aggregates the layers: manual over automatic, else none.
func (l workLocationState) view() WorkLocationView {
	switch {
	case l.manual != nil:
		return WorkLocationView{PlaceID: l.manual.placeID, Source: "manual", WorkLocationType: l.manual.typ}
	case l.automatic != nil:
		return WorkLocationView{PlaceID: l.automatic.placeID, Source: "automatic", WorkLocationType: l.automatic.typ}
	}
	return WorkLocationView{Source: "none", WorkLocationType: "unspecified"}
}

// parseLocation reads a setManualLocation or setAutomaticLocation body:
// workLocationType (required, one of workLocationTypes) and placeId.
func parseLocation(body []byte, action string) (*locationSignal, *apiError) {
	var sig locationSignal
	if err := actionParams(body, action, map[string]any{"placeId": &sig.placeID, "workLocationType": &sig.typ}); err != nil {
		return nil, err
	}
	switch {
	case sig.typ == "":
		return nil, badRequest("BadRequest", "The workLocationType parameter is required.")
	case !slices.Contains(workLocationTypes, sig.typ):
		return nil, badRequest("BadRequest", "Cannot convert the literal '%s' to the expected type 'microsoft.graph.workLocationType'.", truncate(sig.typ, 64))
	}
	return &sig, nil
}

// locationAction serves one of the four work-location actions under
// /me/presence, /users/{id}/presence and (the two setters)
// /communications/presences/{id}.
func (e *Emulator) locationAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var sig *locationSignal
		e.presenceAction(w, r, locationWrite, func(body []byte) *apiError {
			if strings.HasPrefix(action, "set") {
				var err *apiError
				sig, err = parseLocation(body, action)
				return err
			}
			return actionParams(body, action, map[string]any{})
		}, func(u *userState, _ *claims, _ time.Time) *apiError {
			switch action {
			case "setManualLocation":
				u.location.manual = sig
			case "setAutomaticLocation":
				u.location.automatic = sig
			case "clearLocation":
				u.location = workLocationState{}
			case "clearAutomaticLocation":
				u.location.automatic = nil
			default:
				return &apiError{status: http.StatusInternalServerError, code: "generalException", message: fmt.Sprintf("Unknown location action %q.", action)}
			}
			return nil
		})
	}
}
