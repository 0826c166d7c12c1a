package emulator

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// CalendarEvent is a seeded calendar event of a user, for calendar-driven
// presence: its window, free/busy status and whether it was cancelled.
type CalendarEvent struct {
	ID          string    `json:"id"`
	User        string    `json:"user"` // object id or UPN; stored as the object id
	Subject     string    `json:"subject"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	ShowAs      string    `json:"showAs"` // free, tentative, busy (default), oof, workingElsewhere, unknown
	IsCancelled bool      `json:"isCancelled"`
}

// showAsValues are Graph's freeBusyStatus values.
var showAsValues = []string{"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"}

// eventProperties are the event properties the emulator knows, for $select.
var eventProperties = []string{"id", "subject", "start", "end", "showAs", "isCancelled"}

// SetEvent creates or replaces a calendar event of ev.User.
func (e *Emulator) SetEvent(ev CalendarEvent) error {
	if ev.ID == "" || len(ev.ID) > 512 {
		return errors.New("event: id is required (at most 512 characters)")
	}
	if !ev.End.After(ev.Start) {
		return errors.New("event: end must be after start")
	}
	if ev.ShowAs == "" {
		ev.ShowAs = "busy"
	}
	if !slices.Contains(showAsValues, ev.ShowAs) {
		return fmt.Errorf("event: showAs %q is not one of %s", ev.ShowAs, strings.Join(showAsValues, ", "))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.lookup(ev.User)
	if u == nil {
		return fmt.Errorf("event: %w", errNoUser(ev.User))
	}
	ev.User = u.user.ID
	ev.Start, ev.End = ev.Start.UTC(), ev.End.UTC()
	change := "updated"
	if _, ok := u.events[ev.ID]; !ok {
		change = "created"
	}
	u.events[ev.ID] = ev
	e.notifyEvent(ev.User, ev.ID, change, e.clock.Now())
	return nil
}

// DeleteEvent removes a calendar event; it reports whether there was one.
func (e *Emulator) DeleteEvent(user, id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.lookup(user)
	if u == nil {
		return false
	}
	_, ok := u.events[id]
	delete(u.events, id)
	if ok {
		e.notifyEvent(u.user.ID, id, "deleted", e.clock.Now())
	}
	return ok
}

// Events returns every seeded event, ordered by user and id.
func (e *Emulator) Events() []CalendarEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []CalendarEvent
	for _, u := range e.users {
		for _, ev := range u.events {
			out = append(out, ev)
		}
	}
	slices.SortFunc(out, func(a, b CalendarEvent) int {
		return strings.Compare(a.User+"\x00"+a.ID, b.User+"\x00"+b.ID)
	})
	return out
}

// eventResource is the event resource as Graph returns it, times in UTC.
func eventResource(ev CalendarEvent) map[string]any {
	dt := func(t time.Time) map[string]string {
		return map[string]string{"dateTime": t.UTC().Format("2006-01-02T15:04:05.0000000"), "timeZone": "UTC"}
	}
	return map[string]any{
		"@odata.etag": fmt.Sprintf("W/\"%x\"", ev.Start.Unix()^ev.End.Unix()),
		"id":          ev.ID, "subject": ev.Subject, "start": dt(ev.Start), "end": dt(ev.End),
		"showAs": ev.ShowAs, "isCancelled": ev.IsCancelled,
	}
}

// getEvent serves GET /users/{id}/events/{eventId}, times in UTC (as with
// Prefer: outlook.timezone="UTC"), honouring $select. It needs
// Calendars.ReadBasic, Calendars.Read or Calendars.ReadWrite and is not
// throttled with presence.
func (e *Emulator) getEvent(w http.ResponseWriter, r *http.Request) {
	c, err := e.authorized(r, calendarRead, false)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := e.admitEventRead(r); err != nil {
		writeError(w, r, err)
		return
	}
	selected, err := selectFields(r.URL.Query().Get("$select"), "event", eventProperties)
	if err != nil {
		writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	var ev CalendarEvent
	err = e.withUser(c, id, calendarRead, errUserNotFound(id), func(u *userState) *apiError {
		var found bool
		if ev, found = u.events[r.PathValue("eventId")]; !found {
			return notFound("ErrorItemNotFound", "The specified object was not found in the store.")
		}
		return nil
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := project(eventResource(ev), selected, "@odata.etag", "id")
	out["@odata.context"] = metadata(r, "users('"+ev.User+"')/events/$entity")
	writeJSON(w, http.StatusOK, out)
}
