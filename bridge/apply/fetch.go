package apply

import (
	"context"
	"fmt"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
)

// CalendarReader turns ref, a meeting event that names a calendar event
// (ref.CalendarEvent), into the meeting it is: it reads the event of
// userID from Graph in tenant. Its errors are classified by fault.Of like
// any other Graph call: a 5xx or timeout comes back later, a permanent
// failure goes to the dead letters.
type CalendarReader func(ctx context.Context, tenant, userID string, ref adapters.Event) (adapters.Event, error)

// readCalendar returns ev itself, or, when it names a calendar event to
// read, the meeting its source's CalendarReader read. Only sources given a
// reader may name one, so that no other sender can make the bridge read
// calendars.
func (w *Worker) readCalendar(ctx context.Context, t target, ev adapters.Event) (adapters.Event, error) {
	if ev.CalendarEvent == "" {
		return ev, nil
	}
	read := w.opts.CalendarReaders[ev.Source]
	if read == nil {
		return ev, fault.Permanently("invalid event", fmt.Errorf("source %q reads no calendar, but its event names calendar event %q", ev.Source, ev.CalendarEvent))
	}
	meeting, err := read(ctx, t.tenant, t.userID, ev)
	if err != nil {
		return ev, fmt.Errorf("read calendar event %s: %w", ev.CalendarEvent, err)
	}
	if err := meeting.Validate(""); err != nil || meeting.CalendarEvent != "" {
		return ev, fault.Permanently("invalid event", fmt.Errorf("calendar event %s read as %+v: %v", ev.CalendarEvent, meeting, err))
	}
	return meeting, nil
}
