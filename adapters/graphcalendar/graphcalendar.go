// Package graphcalendar turns Microsoft Graph calendar change
// notifications into meeting events: it answers the validationToken
// handshake, checks clientState, and queues for each changed event a
// meeting that names it (Event.CalendarEvent) without reading it: the
// apply stage reads it from Graph later and turns it into a meeting window
// with Scheduled or Ended, so that Graph gets its answer at once. Decoding
// a notification never calls Graph.
package graphcalendar

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// Meeting is the part of a calendar event read from Graph that makes a
// meeting.
type Meeting struct {
	Start, End  time.Time
	ShowAs      string
	IsCancelled bool
}

// Lifecycle is a lifecycle notification about a subscription:
// reauthorizationRequired, subscriptionRemoved or missed.
type Lifecycle struct {
	SubscriptionID string
	Event          string
}

// LifecycleFunc receives the lifecycle notifications of a source (the
// bridge's subscription manager); it must not block.
type LifecycleFunc func(source string, n Lifecycle)

// Adapter decodes Graph calendar notifications.
type Adapter struct {
	cfg       adapters.SourceConfig
	lifecycle LifecycleFunc
}

// OnLifecycle sets where lifecycle notifications go; without it they are
// accepted and dropped.
func (a *Adapter) OnLifecycle(f LifecycleFunc) { a.lifecycle = f }

var (
	_ adapters.Adapter    = (*Adapter)(nil)
	_ adapters.Handshaker = (*Adapter)(nil)
	_ adapters.Responder  = (*Adapter)(nil)
)

// New returns the adapter; cfg.Secret is the subscription's clientState.
func New(cfg adapters.SourceConfig) (*Adapter, error) {
	if cfg.Secret == "" {
		return nil, fmt.Errorf("graphcalendar source %s: needs the clientState as secret", cfg.Name)
	}
	return &Adapter{cfg: cfg}, nil
}

// maxValidationToken bounds the validationToken echoed back; Graph's is a
// sentence of about a hundred characters, without markup.
const maxValidationToken = 512

// Handshake answers Graph's subscription validation: the decoded
// validationToken as text/plain. Graph's validation request carries no
// proof at all (no clientState, no signature: it comes while the
// subscription is being created), so the answer is kept harmless instead:
// it uses no secret, so it signs nothing; it answers only POST, as Graph
// sends it, and only one short printable-ASCII token without '<' or '>'; it is text/plain
// with nosniff, so no browser renders it. Whatever is not answered here
// goes to Decode, which answers 400.
func (a *Adapter) Handshake(w http.ResponseWriter, r *http.Request) bool {
	token, ok := validationToken(r)
	if !ok {
		return false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(token))
	return true
}

// validationToken returns the token of a validation request that may be
// answered.
func validationToken(r *http.Request) (string, bool) {
	tokens := r.URL.Query()["validationToken"]
	if r.Method != http.MethodPost || len(tokens) != 1 || !adapters.Token(tokens[0], maxValidationToken) || strings.ContainsAny(tokens[0], "<>") {
		return "", false
	}
	return tokens[0], true
}

type notifications struct {
	Value []struct {
		SubscriptionID string `json:"subscriptionId"`
		ChangeType     string `json:"changeType"`
		ClientState    string `json:"clientState"`
		Resource       string `json:"resource"`
		ResourceData   struct {
			ID string `json:"id"`
		} `json:"resourceData"`
		LifecycleEvent string `json:"lifecycleEvent"`
	} `json:"value"`
}

// Decode checks clientState and queues a meeting event for every changed
// calendar event: ended for a deleted one, else one naming the event to
// read (CalendarEvent).
func (a *Adapter) Decode(r *http.Request) ([]adapters.Event, error) {
	body, err := adapters.ReadBody(r, a.cfg.BodyLimit)
	if err != nil {
		return nil, err
	}
	if r.URL.Query().Has("validationToken") {
		// A validation request Handshake would not answer.
		return nil, adapters.BadRequest("validationToken must be one value of 1 to %d printable ASCII characters other than '<' and '>', sent with POST", maxValidationToken)
	}
	if err := adapters.CheckMediaType(r, "application/json"); err != nil {
		return nil, err
	}
	var n notifications
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, adapters.BadRequest("body is not a Graph notification: %v", err)
	}
	if len(n.Value) == 0 {
		return nil, adapters.Unauthorized("clientState missing or wrong")
	}
	for _, v := range n.Value {
		if !adapters.Equal(v.ClientState, a.cfg.Secret) {
			return nil, adapters.Unauthorized("clientState missing or wrong")
		}
	}
	if err := adapters.CheckJSONText(body); err != nil {
		return nil, err
	}
	now := a.cfg.Clock().UTC()
	var events []adapters.Event
	for i, v := range n.Value {
		if v.LifecycleEvent != "" {
			if !adapters.Token(v.LifecycleEvent, 64) || !adapters.Token(v.SubscriptionID, 128) {
				return nil, adapters.BadRequest("value[%d] is a lifecycle notification without a readable lifecycleEvent and subscriptionId", i)
			}
			if a.lifecycle != nil {
				a.lifecycle(a.cfg.Name, Lifecycle{SubscriptionID: v.SubscriptionID, Event: v.LifecycleEvent})
			}
			continue
		}
		userID, eventID, ok := parseResource(v.Resource)
		if !ok {
			return nil, adapters.BadRequest("value[%d].resource %q is not Users/{id}/Events/{id}", i, v.Resource)
		}
		if v.ResourceData.ID != "" {
			eventID = v.ResourceData.ID
		}
		events = append(events, a.event(userID, eventID, v.ChangeType, now))
	}
	return a.cfg.Valid(events)
}

// event is the meeting event a change notification stands for. Its id is
// unique per notification received (the time it came), so that a change
// back to an earlier version is queued too; the apply stage reads the
// event as it is then.
func (a *Adapter) event(userID, eventID, changeType string, now time.Time) adapters.Event {
	if changeType == "deleted" {
		return Ended(adapters.Event{Source: a.cfg.Name, User: userID, OccurredAt: now, CalendarEvent: eventID})
	}
	return adapters.Event{
		ID: "graph-event:" + eventID + ":read-" + strconv.FormatInt(now.UnixNano(), 36), Source: a.cfg.Name, Type: adapters.TypeMeeting,
		User: userID, OccurredAt: now, CalendarEvent: eventID,
	}
}

// Ended is the end of the meeting ref names (ref.CalendarEvent): for a
// calendar event deleted, cancelled or gone from Graph.
func Ended(ref adapters.Event) adapters.Event {
	return adapters.Event{
		ID: "graph-event:" + ref.CalendarEvent + ":ended", Source: ref.Source, Type: adapters.TypeMeeting,
		User: ref.User, OccurredAt: ref.OccurredAt, Sequence: ref.Sequence, State: adapters.MeetingEnded,
	}
}

// Scheduled is the meeting ref names (ref.CalendarEvent) as m, the
// calendar event read from Graph, shows it: its window and free/busy
// status, or its end when it was cancelled. The id changes with the
// window, so each reschedule is a new event and a repeated read of the
// same version is a duplicate.
func Scheduled(ref adapters.Event, m Meeting) (adapters.Event, error) {
	if m.IsCancelled {
		return Ended(ref), nil
	}
	if !m.End.After(m.Start) {
		return adapters.Event{}, fmt.Errorf("calendar event %s ends before it starts", ref.CalendarEvent)
	}
	start, end := m.Start.UTC(), m.End.UTC()
	version := sha256.Sum256([]byte(start.String() + end.String() + m.ShowAs))
	return adapters.Event{
		ID: "graph-event:" + ref.CalendarEvent + ":" + hex.EncodeToString(version[:8]), Source: ref.Source, Type: adapters.TypeMeeting,
		User: ref.User, OccurredAt: ref.OccurredAt, Sequence: ref.Sequence, Start: &start, End: &end, ShowAs: showAs(m.ShowAs),
	}, nil
}

// showAs keeps Graph's free/busy values and maps anything else to unknown.
func showAs(s string) string {
	switch s {
	case "free", "tentative", "busy", "oof", "workingElsewhere":
		return s
	}
	return "unknown"
}

// parseResource reads "Users/{id}/Events/{id}" in any letter case.
func parseResource(resource string) (user, event string, ok bool) {
	parts := strings.Split(strings.Trim(resource, "/"), "/")
	if len(parts) != 4 || !strings.EqualFold(parts[0], "users") || !strings.EqualFold(parts[2], "events") || parts[1] == "" || parts[3] == "" {
		return "", "", false
	}
	return parts[1], parts[3], true
}

// Respond answers 202, as Graph expects.
func (a *Adapter) Respond(w http.ResponseWriter, _ int) {
	w.WriteHeader(http.StatusAccepted)
}
