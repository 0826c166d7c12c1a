package writer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// Session is what was known of a user's app session when a read of
// Graph's aggregate began: the session Graph was told, the manual status
// and the status message on record. ObserveAggregate records nothing if
// the user's state moved on from it meanwhile.
type Session struct {
	Told   state.Told
	Manual *adapters.Pair
	Status *state.StatusMessage
}

// SessionOf returns the session st records, and false when Graph holds no
// app session for the user (no Told with a pair, or a call under way).
func SessionOf(st state.UserState) (Session, bool) {
	if st.Told == nil || st.Told.Pair == nil || st.Pending != nil {
		return Session{}, false
	}
	s := Session{Told: *st.Told}
	if st.Manual != nil {
		pair := st.Manual.Pair
		s.Manual = &pair
	}
	if st.Status != nil {
		status := *st.Status
		s.Status = &status
	}
	return s, true
}

// Observe configures ObserveAggregate.
type Observe struct {
	// StatusMessages records status messages users wrote (the writer's
	// Options.StatusMessages is not empty).
	StatusMessages bool
	// History records a manual status seen; nil records nothing.
	History history.Recorder
	Logger  *slog.Logger
}

// ObserveAggregate compares Graph's aggregate got, read at at, with the
// app session was that the user's state held when the read began, and
// records the difference in store: a status set by hand is noted and left
// alone; a session Graph no longer has is forgotten, so that the writer
// sets it again. With status messages on, it also records a status
// message the user wrote (compareStatus), which the writer leaves alone.
// Nothing is written when the session changed since the read began. The
// Teams watcher (package watch) calls it for each person it reads who
// holds an app session: one reader of Teams per tenant.
func ObserveAggregate(ctx context.Context, store *state.Store, tenant, id string, was Session, got Aggregate, at time.Time, opts Observe) error {
	lost, manual := compareAggregate(*was.Told.Pair, got.Pair)
	status, statusChanged := was.Status, false
	if opts.StatusMessages {
		status, statusChanged = compareStatus(was.Status, got.StatusText, at)
	}
	if !lost && adapters.SamePair(manual, was.Manual) && !statusChanged {
		return nil // nothing new to record
	}
	_, _, err := store.Update(ctx, tenant, id, func(s *state.UserState) bool {
		if s.Pending != nil || s.Told == nil || !adapters.SamePair(s.Told.Pair, was.Told.Pair) || !s.Told.At.Equal(was.Told.At) {
			return false // the session changed since the read began
		}
		statusNow := statusChanged && sameStatus(s.Status, was.Status)
		if statusNow {
			s.Status = status
		}
		switch {
		case lost:
			s.Told, s.Manual = nil, nil
		case manual == nil && s.Manual != nil:
			s.Manual = nil
		case manual != nil && (s.Manual == nil || s.Manual.Pair != *manual):
			s.Manual = &state.ManualStatus{Pair: *manual, Since: at}
		default:
			return statusNow
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("record the aggregate of user %s: %w", id, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case lost:
		log.Warn("graph no longer has the app session; the writer sets it again", "tenant", tenant, "user", id)
	case manual != nil:
		log.Debug("a status set by hand shows instead of the app session", "tenant", tenant, "user", id, "manual", manual.String())
		history.Record(opts.History, tenant, id, history.Decision(history.DecisionManual, manual, nil, at))
	}
	return nil
}

// preferredOnly are pairs only a user-preferred presence produces.
var preferredOnly = []adapters.Pair{
	{Availability: "Busy", Activity: "Busy"},
	{Availability: "DoNotDisturb", Activity: "DoNotDisturb"},
	{Availability: "BeRightBack", Activity: "BeRightBack"},
	{Availability: "Offline", Activity: "OffWork"},
}

// sessionRank orders availabilities as Graph aggregates sessions.
var sessionRank = map[string]int{
	"Away": 1, "BeRightBack": 1, "Available": 2, "AvailableIdle": 2, "Busy": 3, "BusyIdle": 3, "DoNotDisturb": 4,
}

// compareAggregate tells what Graph's aggregate got says about an app
// session set to told. Sessions aggregate to the highest of them, so an
// aggregate below told, or a pair only a preferred presence makes, is a
// status the user set by hand (manual). Offline/Offline means Graph has
// no session at all: ours was lost.
func compareAggregate(told, got adapters.Pair) (lost bool, manual *adapters.Pair) {
	if got == told {
		return false, nil
	}
	if got == (adapters.Pair{Availability: "Offline", Activity: "Offline"}) {
		return true, nil
	}
	gotRank, known := sessionRank[got.Availability]
	if slices.Contains(preferredOnly, got) || (known && gotRank < sessionRank[told.Availability]) {
		return false, &got
	}
	return false, nil
}
