package graphclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// User is a directory user.
type User struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
	Mail              string `json:"mail"`
	DisplayName       string `json:"displayName"`
}

// GetUser looks a user up by object id or user principal name (needs
// User.Read.All). An unknown user is an *Error with StatusCode 404.
func (c *Client) GetUser(ctx context.Context, idOrUPN string) (User, error) {
	op := "get user " + idOrUPN
	path, err := userPath(op, idOrUPN)
	if err != nil {
		return User{}, err
	}
	var u User
	r := request{op: op, method: http.MethodGet, path: path + "?$select=id,userPrincipalName,mail,displayName"}
	if err := c.do(ctx, r, &u); err != nil {
		return User{}, err
	}
	return u, nil
}

// CalendarEvent is the part of a calendar event that makes a meeting.
type CalendarEvent struct {
	ID         string
	Start, End time.Time // in UTC
	// ShowAs is free, tentative, busy, oof, workingElsewhere or unknown.
	ShowAs      string
	IsCancelled bool
}

// GetEvent reads a calendar event's window and free/busy status (needs
// Calendars.Read), asking Graph for UTC times.
func (c *Client) GetEvent(ctx context.Context, userID, eventID string) (CalendarEvent, error) {
	op := "get event " + eventID + " of " + userID
	path, err := userPath(op, userID)
	if err != nil {
		return CalendarEvent{}, err
	}
	if strings.TrimSpace(eventID) == "" {
		return CalendarEvent{}, fmt.Errorf("%s: %w: empty event id", op, ErrInvalidArgument)
	}
	var raw struct {
		ID          string           `json:"id"`
		Start       DateTimeTimeZone `json:"start"`
		End         DateTimeTimeZone `json:"end"`
		ShowAs      string           `json:"showAs"`
		IsCancelled bool             `json:"isCancelled"`
	}
	r := request{
		op:     op,
		method: http.MethodGet,
		path:   path + "/events/" + url.PathEscape(eventID) + "?$select=start,end,showAs,isCancelled",
		header: http.Header{"Prefer": {`outlook.timezone="UTC"`}},
	}
	if err := c.do(ctx, r, &raw); err != nil {
		return CalendarEvent{}, err
	}
	start, err1 := raw.Start.Time()
	end, err2 := raw.End.Time()
	if err := errors.Join(err1, err2); err != nil {
		return CalendarEvent{}, fmt.Errorf("%s: %w", op, err)
	}
	id := raw.ID
	if id == "" {
		id = eventID
	}
	return CalendarEvent{ID: id, Start: start, End: end, ShowAs: raw.ShowAs, IsCancelled: raw.IsCancelled}, nil
}

// DateTimeTimeZone is Graph's local date and time with its time zone.
type DateTimeTimeZone struct {
	// DateTime is such as "2026-11-23T10:00:00.0000000", without an offset.
	DateTime string `json:"dateTime"`
	// TimeZone is "UTC", an IANA name, or a Windows name such as
	// "Pacific Standard Time".
	TimeZone string `json:"timeZone"`
}

// Time returns the instant in UTC. It knows "UTC" (also empty) and IANA
// zone names; a Windows zone name is an error, which is why requests ask
// Graph for UTC.
func (d DateTimeTimeZone) Time() (time.Time, error) {
	loc := time.UTC
	switch tz := strings.TrimSpace(d.TimeZone); tz {
	case "", "UTC", "utc", "Etc/UTC", "tzone://Microsoft/Utc":
	default:
		l, err := time.LoadLocation(tz)
		if err != nil {
			return time.Time{}, fmt.Errorf("time zone %q of %q is not UTC or an IANA name", d.TimeZone, d.DateTime)
		}
		loc = l
	}
	if t, err := time.Parse(time.RFC3339Nano, d.DateTime); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, d.DateTime, loc); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unreadable dateTime %q", d.DateTime)
}
