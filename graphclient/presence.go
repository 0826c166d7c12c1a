package graphclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Pair is a presence availability and activity.
type Pair struct {
	Availability string `json:"availability"`
	Activity     string `json:"activity"`
}

// Presence is a user's aggregated presence as Graph reports it.
type Presence struct {
	ID             string `json:"id"`
	Availability   string `json:"availability"`
	Activity       string `json:"activity"`
	SequenceNumber string `json:"sequenceNumber,omitempty"`
}

// ErrInvalidExpiration is an expiration outside Graph's PT5M to PT4H.
var ErrInvalidExpiration = errors.New("expiration must be between 5m and 4h")

// Graph's limits.
const (
	MinExpiration   = 5 * time.Minute
	MaxExpiration   = 4 * time.Hour
	MaxIDsPerLookup = 650
)

// SetPresence sets the application's presence session for a user; the
// session id is always the application's client id. A zero expiration
// means Graph's default of five minutes.
func (c *Client) SetPresence(ctx context.Context, userID string, p Pair, expiration time.Duration) error {
	if expiration == 0 {
		expiration = MinExpiration
	}
	if expiration < MinExpiration || expiration > MaxExpiration {
		return fmt.Errorf("set presence of %s: %w (got %s)", userID, ErrInvalidExpiration, expiration)
	}
	body := map[string]string{
		"sessionId":          c.cfg.ClientID,
		"availability":       p.Availability,
		"activity":           p.Activity,
		"expirationDuration": FormatDuration(expiration),
	}
	return c.do(ctx, "set presence of "+userID, http.MethodPost, "/users/"+url.PathEscape(userID)+"/presence/setPresence", body, nil, nil)
}

// ClearPresence removes the application's presence session for a user. A
// session that does not exist (404) counts as cleared.
func (c *Client) ClearPresence(ctx context.Context, userID string) error {
	err := c.do(ctx, "clear presence of "+userID, http.MethodPost, "/users/"+url.PathEscape(userID)+"/presence/clearPresence",
		map[string]string{"sessionId": c.cfg.ClientID}, nil, nil)
	var gerr *Error
	if errors.As(err, &gerr) && gerr.StatusCode == http.StatusNotFound {
		return nil
	}
	return err
}

// GetPresence returns a user's aggregated presence.
func (c *Client) GetPresence(ctx context.Context, userID string) (Presence, error) {
	var p Presence
	err := c.do(ctx, "get presence of "+userID, http.MethodGet, "/users/"+url.PathEscape(userID)+"/presence", nil, &p, nil)
	return p, err
}

// GetPresencesByUserID returns the presence of many users, asking Graph
// for at most 650 at a time.
func (c *Client) GetPresencesByUserID(ctx context.Context, ids []string) ([]Presence, error) {
	var all []Presence
	for start := 0; start < len(ids); start += MaxIDsPerLookup {
		chunk := ids[start:min(start+MaxIDsPerLookup, len(ids))]
		var out struct {
			Value []Presence `json:"value"`
		}
		if err := c.do(ctx, "get presences", http.MethodPost, "/communications/getPresencesByUserId", map[string][]string{"ids": chunk}, &out, nil); err != nil {
			return all, err
		}
		all = append(all, out.Value...)
	}
	return all, nil
}

// User is a directory user.
type User struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
	Mail              string `json:"mail"`
	DisplayName       string `json:"displayName"`
}

// GetUser looks a user up by object id or UPN.
func (c *Client) GetUser(ctx context.Context, idOrUPN string) (User, error) {
	var u User
	err := c.do(ctx, "get user "+idOrUPN, http.MethodGet, "/users/"+url.PathEscape(idOrUPN)+"?$select=id,userPrincipalName,mail,displayName", nil, &u, nil)
	return u, err
}

// CalendarEvent is the part of a calendar event that makes a meeting.
type CalendarEvent struct {
	ID          string
	Start, End  time.Time
	ShowAs      string
	IsCancelled bool
}

// GetEvent reads a calendar event's window and free/busy status, in UTC.
func (c *Client) GetEvent(ctx context.Context, userID, eventID string) (CalendarEvent, error) {
	var raw struct {
		ID          string   `json:"id"`
		Start       dateTime `json:"start"`
		End         dateTime `json:"end"`
		ShowAs      string   `json:"showAs"`
		IsCancelled bool     `json:"isCancelled"`
	}
	op := "get event " + eventID + " of " + userID
	err := c.do(ctx, op, http.MethodGet, "/users/"+url.PathEscape(userID)+"/events/"+url.PathEscape(eventID)+"?$select=start,end,showAs,isCancelled",
		nil, &raw, http.Header{"Prefer": {`outlook.timezone="UTC"`}})
	if err != nil {
		return CalendarEvent{}, err
	}
	start, err1 := raw.Start.utc()
	end, err2 := raw.End.utc()
	if err := errors.Join(err1, err2); err != nil {
		return CalendarEvent{}, fmt.Errorf("%s: %w", op, err)
	}
	return CalendarEvent{ID: raw.ID, Start: start, End: end, ShowAs: raw.ShowAs, IsCancelled: raw.IsCancelled}, nil
}

// dateTime is Graph's dateTimeTimeZone.
type dateTime struct {
	DateTime string `json:"dateTime"`
	TimeZone string `json:"timeZone"`
}

func (d dateTime) utc() (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05.9999999", time.RFC3339Nano} {
		if t, err := time.Parse(layout, d.DateTime); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unreadable dateTime %q", d.DateTime)
}
