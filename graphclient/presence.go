package graphclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// MaxIDsPerLookup is how many user ids getPresencesByUserId takes at once.
const MaxIDsPerLookup = 650

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
}

// OutOfOffice reports whether the user's mailbox says they are out of
// office.
func (p Presence) OutOfOffice() bool {
	return p.OutOfOfficeSettings != nil && p.OutOfOfficeSettings.IsOutOfOffice
}

// StatusMessage is the note a user set in Teams.
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
// for at most MaxIDsPerLookup ids per request and concatenating the
// answers. Graph leaves unknown ids out. It stops at the first failing
// request and returns its error, naming the ids it covered.
func (c *Client) GetPresencesByUserID(ctx context.Context, ids []string) ([]Presence, error) {
	if c.noPresence {
		return nil, fmt.Errorf("get presences: %w (cloud %s)", ErrPresenceUnavailable, c.cloud.Name)
	}
	var all []Presence
	for start := 0; start < len(ids); start += MaxIDsPerLookup {
		end := min(start+MaxIDsPerLookup, len(ids))
		var out struct {
			Value []Presence `json:"value"`
		}
		r := request{
			op:     fmt.Sprintf("get presences (ids %d to %d of %d)", start+1, end, len(ids)),
			method: http.MethodPost,
			path:   "/communications/getPresencesByUserId",
			body:   map[string][]string{"ids": ids[start:end]},
		}
		if err := c.do(ctx, r, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Value...)
	}
	return all, nil
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
