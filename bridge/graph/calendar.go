package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/catalog"
	"github.com/presence-bridge/presence-bridge/adapters/graphcalendar"
	"github.com/presence-bridge/presence-bridge/bridge/apply"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/bridge/identity"
	"github.com/presence-bridge/presence-bridge/graphclient"
)

// CalendarReaders gives the apply stage a reader for each source whose
// events name calendar events to read (graphcalendar). The reads go
// behind lookups' breakers, so that user lookups and calendar reads pause
// together while Graph fails.
func (g *Tenants) CalendarReaders(sources []config.Source, lookups *identity.Lookups) map[string]apply.CalendarReader {
	readers := map[string]apply.CalendarReader{}
	r := calendarReader{g: g, lookups: lookups}
	for _, s := range sources {
		if catalog.ReadsCalendar(s.Type) {
			readers[s.Name] = r.read
		}
	}
	return readers
}

type calendarReader struct {
	g       *Tenants
	lookups *identity.Lookups
}

// read is the meeting ref names, read from Graph: its window, or its end
// when the event is cancelled or gone (404).
func (r calendarReader) read(ctx context.Context, tenant, userID string, ref adapters.Event) (adapters.Event, error) {
	m, err := r.fetch(ctx, tenant, userID, ref.CalendarEvent)
	if err != nil && !errors.Is(err, errCalendarEventGone) {
		return adapters.Event{}, err
	}
	meeting, err := catalog.CalendarMeeting(ref, m, err == nil)
	if err != nil {
		return adapters.Event{}, fault.Permanently("invalid calendar event", err)
	}
	return meeting, nil
}

// errCalendarEventGone is what fetch returns for an event Graph no longer
// has. It is permanent, so that the breaker does not count it as Graph
// failing, and it does not wrap Graph's 404, so that the lookups' breaker
// does not take it for an unknown user.
var errCalendarEventGone = &fault.Error{Class: fault.Permanent, Reason: "calendar event gone", Err: errors.New("graph has no such event")}

// fetch is the one place the bridge reads a calendar event from Graph
// (for the apply stage): one GET through the tenant's Graph client,
// behind the tenant's breaker and lookup budget (the user lookups' ones,
// so that both pause together while Graph fails and share one bound on
// reads). A read over the budget is not given up, as an unknown user's
// lookup is: the notification was proven, so its read waits until the
// budget has room.
func (r calendarReader) fetch(ctx context.Context, tenant, userID, eventID string) (graphcalendar.Meeting, error) {
	var m graphcalendar.Meeting
	read := func(ctx context.Context, tenant, eventID string) (string, error) {
		e, err := r.g.GetEvent(ctx, tenant, userID, eventID)
		var gerr *graphclient.Error
		if errors.As(err, &gerr) && gerr.StatusCode == http.StatusNotFound {
			return "", errCalendarEventGone
		}
		if err != nil {
			return "", err
		}
		m = graphcalendar.Meeting{Start: e.Start, End: e.End, ShowAs: e.ShowAs, IsCancelled: e.IsCancelled}
		return e.ID, nil
	}
	if _, err := r.lookups.Through(read)(ctx, tenant, eventID); err != nil {
		if errors.Is(err, errCalendarEventGone) {
			return m, err
		}
		var ferr *fault.Error
		if errors.As(err, &ferr) && ferr.Reason == identity.ReasonLookupBudget {
			return m, fault.Later(ferr.After, fmt.Errorf("read calendar event of %s: %w", userID, err))
		}
		return m, fmt.Errorf("get calendar event of %s: %w", userID, err)
	}
	return m, nil
}
