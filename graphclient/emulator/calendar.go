package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// CalendarEvent is a seeded calendar event, for the Graph calendar
// adapter: its window, free/busy status and whether it was cancelled.
type CalendarEvent struct {
	ID          string    `json:"id"`
	User        string    `json:"user"`
	Subject     string    `json:"subject"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	ShowAs      string    `json:"showAs"`
	IsCancelled bool      `json:"isCancelled"`
}

// SetEvent creates or replaces a calendar event of a user.
func (e *Emulator) SetEvent(ev CalendarEvent) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.lookup(ev.User)
	if u == nil {
		return fmt.Errorf("no user %q", ev.User)
	}
	if ev.ID == "" || !ev.End.After(ev.Start) {
		return fmt.Errorf("an event needs an id and an end after its start")
	}
	if u.events == nil {
		u.events = map[string]CalendarEvent{}
	}
	ev.User = u.user.ID
	u.events[ev.ID] = ev
	return nil
}

// DeleteEvent removes a calendar event; it reports whether it existed.
func (e *Emulator) DeleteEvent(user, id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.lookup(user)
	if u == nil {
		return false
	}
	_, ok := u.events[id]
	delete(u.events, id)
	return ok
}

// getEvent serves GET /users/{id}/events/{eventId}, in UTC, honouring
// $select.
func (e *Emulator) getEvent(w http.ResponseWriter, r *http.Request) {
	tok, ok := e.authorize(w, r, "Calendars.Read", "Calendars.ReadWrite")
	if !ok {
		return
	}
	u := e.userFor(w, r, tok)
	if u == nil {
		return
	}
	e.mu.Lock()
	ev, found := u.events[r.PathValue("eventId")]
	e.mu.Unlock()
	if !found {
		writeGraphError(w, r, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.", e.clock.Now())
		return
	}
	dt := func(t time.Time) map[string]string {
		return map[string]string{"dateTime": t.UTC().Format("2006-01-02T15:04:05.0000000"), "timeZone": "UTC"}
	}
	full := map[string]any{
		"id": ev.ID, "subject": ev.Subject, "start": dt(ev.Start), "end": dt(ev.End), "showAs": ev.ShowAs, "isCancelled": ev.IsCancelled,
	}
	out := map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('" + u.user.ID + "')/events/$entity", "id": ev.ID}
	if sel := r.URL.Query().Get("$select"); sel != "" {
		for _, f := range strings.Split(sel, ",") {
			if v, ok := full[strings.TrimSpace(f)]; ok {
				out[strings.TrimSpace(f)] = v
			}
		}
	} else {
		for k, v := range full {
			out[k] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// adminEvent creates or replaces (POST, body a CalendarEvent) or deletes
// (DELETE /_emulator/events/{user}/{id}) a calendar event.
func (e *Emulator) adminEvent(w http.ResponseWriter, r *http.Request) {
	var ev CalendarEvent
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "Invalid event body: "+err.Error(), e.clock.Now())
		return
	}
	if err := e.SetEvent(ev); err != nil {
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", err.Error(), e.clock.Now())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (e *Emulator) adminDeleteEvent(w http.ResponseWriter, r *http.Request) {
	if !e.DeleteEvent(unescape(r.PathValue("user")), r.PathValue("id")) {
		writeGraphError(w, r, http.StatusNotFound, "itemNotFound", "No such event.", e.clock.Now())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "deleted"})
}
