package graphclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/presence-bridge/presence-bridge/graphclient/graphlimits"
)

// Pair is a presence availability and activity, such as Busy and InACall.
// Graph's setPresence takes Available/Available, Busy/InACall,
// Busy/InAConferenceCall, Away/Away and DoNotDisturb/Presenting, and
// answers 400 to any other pair.
type Pair struct {
	Availability string `json:"availability"`
	Activity     string `json:"activity"`
}

// Presence is a user's aggregated presence as Graph reports it.
type Presence struct {
	// ID is the user's object id.
	ID           string `json:"id"`
	Availability string `json:"availability"`
	Activity     string `json:"activity"`
	// SequenceNumber is a version stamp that sorts as a string.
	SequenceNumber      string               `json:"sequenceNumber,omitempty"`
	StatusMessage       *StatusMessage       `json:"statusMessage,omitempty"`
	OutOfOfficeSettings *OutOfOfficeSettings `json:"outOfOfficeSettings,omitempty"`
	WorkLocation        *WorkLocation        `json:"workLocation,omitempty"`
}

// UnmarshalJSON reads a presence leniently: Graph's schema types
// availability and activity as open strings, and Microsoft has moved
// values between them (the September 2025 changelog lists InACall,
// InAMeeting, Presenting and Focusing as availabilities), so any value is
// kept as it came and never an error. A list of strings (as old pages
// describe the fields) is kept joined with commas; any other JSON value is
// kept as its JSON text, at most 128 bytes.
func (p *Presence) UnmarshalJSON(b []byte) error {
	var w wirePresence
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*p = w.presence()
	return nil
}

// plainPresence is a Presence without its UnmarshalJSON.
type plainPresence Presence

// wirePresence is a presence as Graph sends it, availability and activity
// as they came.
type wirePresence struct {
	plainPresence
	Availability json.RawMessage `json:"availability"`
	Activity     json.RawMessage `json:"activity"`
}

func (w *wirePresence) presence() Presence {
	p := Presence(w.plainPresence)
	p.Availability, p.Activity = openString(w.Availability, knownAvailabilities), openString(w.Activity, knownActivities)
	return p
}

// maxOpenValue bounds a value openString keeps that was not a string.
const maxOpenValue = 128

// openString keeps a JSON value as a string: a string as is, null as "",
// a list of strings joined with commas, anything else as its JSON text.
// A value in known is that string of known, not a copy.
func openString(raw json.RawMessage, known []string) string {
	raw = bytes.TrimSpace(raw)
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		inner := raw[1 : n-1]
		if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			for _, k := range known {
				if string(inner) == k {
					return k
				}
			}
			return string(inner) // nothing to unescape
		}
	}
	var s string
	if len(raw) == 0 || string(raw) == "null" || json.Unmarshal(raw, &s) == nil {
		return s
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, ",")
	}
	if len(raw) > maxOpenValue {
		raw = raw[:maxOpenValue]
	}
	return strings.ToValidUTF8(string(raw), "\uFFFD")
}

// The availability and activity values Graph's v1.0 pages document.
var (
	knownAvailabilities = []string{"Available", "AvailableIdle", "Away", "BeRightBack", "Busy", "BusyIdle", "DoNotDisturb", "Offline", "PresenceUnknown"}
	knownActivities     = []string{"Available", "AvailableInactive", "Away", "BeRightBack", "Busy", "DoNotDisturb", "InACall", "InAConferenceCall", "Inactive", "InAMeeting", "Offline", "OffWork", "OutOfOffice", "PresenceUnknown", "Presenting", "UrgentInterruptionsOnly"}
)

// Unknown lists the presence's values Graph's v1.0 pages do not document,
// such as "availability=Focusing", so that a caller can log them; the
// values themselves are kept in the Presence.
func (p Presence) Unknown() []string {
	var out []string
	if p.Availability != "" && !slices.Contains(knownAvailabilities, p.Availability) {
		out = append(out, "availability="+p.Availability)
	}
	if p.Activity != "" && !slices.Contains(knownActivities, p.Activity) {
		out = append(out, "activity="+p.Activity)
	}
	return out
}

// StatusText returns the content of the presence's status message, or ""
// when there is none.
func (p Presence) StatusText() string {
	if p.StatusMessage == nil {
		return ""
	}
	return p.StatusMessage.Message.Content
}

// WorkLocation is where the user works today, Graph's userWorkLocation:
// Source is none, manual, scheduled or automatic; WorkLocationType is
// unspecified, office, remote or timeOff (both open: other values are
// kept).
type WorkLocation struct {
	PlaceID          string `json:"placeId,omitempty"`
	Source           string `json:"source"`
	WorkLocationType string `json:"workLocationType"`
}

// OutOfOffice reports whether the user's mailbox says they are out of
// office.
func (p Presence) OutOfOffice() bool {
	return p.OutOfOfficeSettings != nil && p.OutOfOfficeSettings.IsOutOfOffice
}

// StatusMessage is the note shown under a user's name in Teams. Graph
// shows ExpiryDateTime and PublishedDateTime only to the user themself:
// an application reading another user's presence gets the message alone.
type StatusMessage struct {
	Message        ItemBody          `json:"message"`
	ExpiryDateTime *DateTimeTimeZone `json:"expiryDateTime,omitempty"`
	// PublishedDateTime is an RFC 3339 time, as Graph wrote it.
	PublishedDateTime string `json:"publishedDateTime,omitempty"`
}

// ItemBody is a text or HTML content.
type ItemBody struct {
	Content     string `json:"content"`
	ContentType string `json:"contentType,omitempty"`
}

// OutOfOfficeSettings is the out-of-office part of a presence.
type OutOfOfficeSettings struct {
	Message       string `json:"message,omitempty"`
	IsOutOfOffice bool   `json:"isOutOfOffice"`
}

// SetPresence sets the application's presence session for a user, with
// the application's client id as the session id, for expiration (0 is
// Graph's default of five minutes). An expiration outside 5m..4h, an empty
// user id or an empty pair fails before any request with an error wrapping
// ErrInvalidArgument.
func (c *Client) SetPresence(ctx context.Context, userID string, p Pair, expiration time.Duration) error {
	op := "set presence for " + userID
	path, err := c.presencePath(op, userID)
	if err != nil {
		return err
	}
	if p.Availability == "" || p.Activity == "" {
		return fmt.Errorf("%s: %w: availability and activity are both required (got %q/%q)", op, ErrInvalidArgument, p.Availability, p.Activity)
	}
	iso, err := expirationDuration(expiration)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	body := struct {
		SessionID          string `json:"sessionId"`
		Availability       string `json:"availability"`
		Activity           string `json:"activity"`
		ExpirationDuration string `json:"expirationDuration"`
	}{c.clientID, p.Availability, p.Activity, iso}
	return c.do(ctx, request{op: op, method: http.MethodPost, path: path + "/setPresence", body: body}, nil)
}

// ClearPresence removes the application's presence session for a user. A
// session that does not exist (404) counts as cleared.
func (c *Client) ClearPresence(ctx context.Context, userID string) error {
	op := "clear presence for " + userID
	path, err := c.presencePath(op, userID)
	if err != nil {
		return err
	}
	body := struct {
		SessionID string `json:"sessionId"`
	}{c.clientID}
	err = c.do(ctx, request{op: op, method: http.MethodPost, path: path + "/clearPresence", body: body}, nil)
	var gerr *Error
	if errors.As(err, &gerr) && gerr.StatusCode == http.StatusNotFound {
		return nil
	}
	return err
}

// GetPresence returns a user's aggregated presence.
func (c *Client) GetPresence(ctx context.Context, userID string) (Presence, error) {
	op := "get presence for " + userID
	path, err := c.presencePath(op, userID)
	if err != nil {
		return Presence{}, err
	}
	var p Presence
	if err := c.do(ctx, request{op: op, method: http.MethodGet, path: path}, &p); err != nil {
		return Presence{}, err
	}
	return p, nil
}

// GetPresencesByUserID returns the presence of many users, asking Graph
// for at most graphlimits.MaxIDsPerLookup ids per request and concatenating the
// answers. Graph leaves unknown ids out. It stops at the first failing
// request and returns its error, naming the ids it covered. Each answer
// is decoded as it arrives, one presence at a time, into the result.
func (c *Client) GetPresencesByUserID(ctx context.Context, ids []string) ([]Presence, error) {
	if c.noPresence {
		return nil, fmt.Errorf("get presences: %w (cloud %s)", ErrPresenceUnavailable, c.cloud.Name)
	}
	all := make([]Presence, 0, len(ids))
	for start := 0; start < len(ids); start += graphlimits.MaxIDsPerLookup {
		end := min(start+graphlimits.MaxIDsPerLookup, len(ids))
		r := request{
			op:     fmt.Sprintf("get presences (ids %d to %d of %d)", start+1, end, len(ids)),
			method: http.MethodPost,
			path:   "/communications/getPresencesByUserId",
			body: struct {
				IDs []string `json:"ids"`
			}{ids[start:end]},
			decode: func(dec *json.Decoder) error { return decodePresences(dec, &all) },
		}
		if err := c.do(ctx, r, nil); err != nil {
			return nil, err
		}
	}
	return all, nil
}

// decodePresences reads a getPresencesByUserId answer, {"value": [...]},
// appending each presence to out; other members are skipped. As with
// json.Unmarshal, the member's name is matched without regard to case and
// the last "value" wins. An empty answer appends nothing. On an error out
// may hold part of the answer.
func decodePresences(dec *json.Decoder, out *[]Presence) error {
	base := len(*out)
	tok, err := dec.Token()
	if err == io.EOF {
		return nil // no body
	}
	if err != nil || tok == nil { // an error, or null: nothing
		return err
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("want an object, got %v", tok)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return unexpectedEOF(err)
		}
		if key, _ := tok.(string); !strings.EqualFold(key, "value") {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return unexpectedEOF(err)
			}
			continue
		}
		*out = (*out)[:base]
		if tok, err := dec.Token(); err != nil {
			return unexpectedEOF(err)
		} else if tok == nil {
			continue // "value": null
		} else if tok != json.Delim('[') {
			return fmt.Errorf("value: want a list, got %v", tok)
		}
		for dec.More() {
			var w wirePresence
			if err := dec.Decode(&w); err != nil {
				return unexpectedEOF(err)
			}
			*out = append(*out, w.presence())
		}
		if _, err := dec.Token(); err != nil { // ]
			return unexpectedEOF(err)
		}
	}
	_, err = dec.Token() // }
	return unexpectedEOF(err)
}

// unexpectedEOF turns io.EOF inside an answer into io.ErrUnexpectedEOF.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// statusDateTime is the layout of a dateTimeTimeZone's dateTime.
const statusDateTime = "2006-01-02T15:04:05.0000000"

// SetStatusMessage sets the status message shown under a user's name in
// Teams (setStatusMessage): text, until expires (the zero time: no
// expiry), sent in UTC. Graph replaces whatever message was there, the
// user's own included: read it first (Presence.StatusText) to leave a
// user's message alone. Empty text clears the message (the emulator does
// so; Graph documents no other way to remove one). It needs
// Presence.ReadWrite.All.
func (c *Client) SetStatusMessage(ctx context.Context, userID, text string, expires time.Time) error {
	op := "set status message for " + userID
	path, err := c.presencePath(op, userID)
	if err != nil {
		return err
	}
	type dateTimeTimeZone struct {
		DateTime string `json:"dateTime"`
		TimeZone string `json:"timeZone"`
	}
	type statusMessage struct {
		Message        ItemBody          `json:"message"`
		ExpiryDateTime *dateTimeTimeZone `json:"expiryDateTime,omitempty"`
	}
	msg := statusMessage{Message: ItemBody{Content: text, ContentType: "text"}}
	if !expires.IsZero() {
		msg.ExpiryDateTime = &dateTimeTimeZone{DateTime: expires.UTC().Format(statusDateTime), TimeZone: "UTC"}
	}
	body := struct {
		StatusMessage statusMessage `json:"statusMessage"`
	}{msg}
	return c.do(ctx, request{op: op, method: http.MethodPost, path: path + "/setStatusMessage", body: body}, nil)
}

// ClearStatusMessage removes the user's status message by setting an
// empty one.
func (c *Client) ClearStatusMessage(ctx context.Context, userID string) error {
	return c.SetStatusMessage(ctx, userID, "", time.Time{})
}

// presencePath returns "/users/{id}/presence", or an error when the id is
// empty or the cloud has no presence.
func (c *Client) presencePath(op, userID string) (string, error) {
	if c.noPresence {
		return "", fmt.Errorf("%s: %w (cloud %s)", op, ErrPresenceUnavailable, c.cloud.Name)
	}
	path, err := userPath(op, userID)
	if err != nil {
		return "", err
	}
	return path + "/presence", nil
}
