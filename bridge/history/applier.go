package history

import (
	"context"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
)

// Applier is the state stage's Apply, as the apply stage calls it.
type Applier interface {
	Apply(ctx context.Context, tenant, userID string, events ...adapters.Event) error
}

// Clock tells the time; nil means the real time.
type Clock interface{ Now() time.Time }

// RecordingApplier applies events with Next and records each in the
// user's history with what Next answered. It records "applied" for every
// event the state stored, older and duplicate ones included: telling
// those apart would cost a read of the state before and after each
// apply, which the event path does not pay for. Refused events and
// events to retry are recorded with the reason.
type RecordingApplier struct {
	Next     Applier
	Recorder Recorder
	Clock    Clock
}

var _ Applier = RecordingApplier{}

// Apply implements Applier.
func (a RecordingApplier) Apply(ctx context.Context, tenant, userID string, events ...adapters.Event) error {
	err := a.Next.Apply(ctx, tenant, userID, events...)
	if a.Recorder == nil {
		return err
	}
	now := time.Now()
	if a.Clock != nil {
		now = a.Clock.Now()
	}
	outcome, detail := "applied", ""
	if err != nil {
		detail = err.Error()
		outcome = "retry"
		if class, _ := fault.Of(err); class == fault.Permanent || class == fault.Refused {
			if len(events) > 1 {
				return err // the apply stage applies them again one at a time
			}
			outcome = "refused"
		}
	}
	for _, ev := range events {
		e := Entry{At: now.UTC(), Source: ev.Source, ID: ev.ID, Type: ev.Type, State: eventState(ev), Outcome: outcome, Detail: detail}
		if !ev.OccurredAt.IsZero() {
			at := ev.OccurredAt.UTC()
			e.OccurredAt = &at
		}
		a.Recorder.Record(tenant, userID, e)
	}
	return err
}

// eventState is what an event says: a call's or meeting's state, a
// presence's pair.
func eventState(ev adapters.Event) string {
	if ev.State == "" && ev.Availability != "" {
		return ev.Availability + "/" + ev.Activity
	}
	return ev.State
}
