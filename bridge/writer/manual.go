package writer

import (
	"context"
	"slices"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/graphclient/graphlimits"
)

// readResult is the outcome of one aggregate read.
type readResult struct{ err error }

// startRead reads Graph's aggregate for the next chunk of users that hold
// an app session, one budget token per chunk and only while no state
// change is waiting. A round over all such users starts every
// ObserveEvery.
func (w *writer) startRead(ctx context.Context, now time.Time) {
	reader, ok := w.e.opts.Graph.(PresenceReader)
	if !ok || w.e.opts.ObserveEvery <= 0 || w.reading || w.fenced() {
		return
	}
	if len(w.toRead) == 0 {
		if now.Before(w.nextRead) {
			return
		}
		w.nextRead = now.Add(w.e.opts.ObserveEvery)
		for id, t := range w.users {
			if t.state.Told != nil && t.state.Told.Pair != nil {
				w.toRead = append(w.toRead, id)
			}
		}
		slices.Sort(w.toRead)
	}
	if len(w.toRead) == 0 || w.changes.len() > 0 || w.inFlight >= maxInFlight ||
		!w.mayCall(now) || w.breaker.State() != gobreaker.StateClosed {
		return
	}
	if !w.budget.allow(now) {
		return
	}
	n := min(len(w.toRead), graphlimits.MaxIDsPerLookup)
	told := map[string]readSnapshot{}
	for _, id := range w.toRead[:n] {
		if t := w.users[id]; t != nil && t.state.Told != nil && t.state.Told.Pair != nil && !t.inFlight {
			snap := readSnapshot{told: *t.state.Told}
			if t.state.Manual != nil {
				snap.manual = &t.state.Manual.Pair
			}
			if t.state.Status != nil {
				status := *t.state.Status
				snap.status = &status
			}
			told[id] = snap
		}
	}
	w.toRead = w.toRead[n:]
	if len(told) == 0 {
		return
	}
	w.reading = true
	go func() { w.readDone <- readResult{err: w.read(ctx, reader, told, now)} }()
}

// readSnapshot is what the writer knew of a user when a read began: the
// session Graph was told, the manual status and the status message on
// record.
type readSnapshot struct {
	told   state.Told
	manual *adapters.Pair
	status *state.StatusMessage
}

// read compares Graph's aggregate with what each user's app session was
// told and records the difference: a status set by hand is noted and
// left alone; a session Graph no longer has is forgotten, so the writer
// sets it again. With status messages on, it also records a status
// message the user wrote (compareStatus), which the writer leaves alone.
func (w *writer) read(ctx context.Context, reader PresenceReader, told map[string]readSnapshot, at time.Time) error {
	ids := make([]string, 0, len(told))
	for id := range told {
		ids = append(ids, id)
	}
	// Like a write, a read may not outlive the lease (lease.go).
	readCtx, cancel := context.WithTimeout(ctx, min(callTimeout, w.leaseLeft()))
	seen, err := reader.GetPresences(readCtx, w.tenant.ID, ids)
	cancel()
	if err != nil {
		return err
	}
	for id, snap := range told {
		got, ok := seen[id]
		if !ok {
			continue
		}
		was := snap.told
		lost, manual := compareAggregate(*was.Pair, got.Pair)
		status, statusChanged := snap.status, false
		if len(w.e.opts.StatusMessages) > 0 {
			status, statusChanged = compareStatus(snap.status, got.StatusText, at)
		}
		if !lost && adapters.SamePair(manual, snap.manual) && !statusChanged {
			continue // nothing new to record
		}
		_, _, err := w.e.store.Update(ctx, w.tenant.ID, id, func(s *state.UserState) bool {
			if s.Pending != nil || s.Told == nil || !adapters.SamePair(s.Told.Pair, was.Pair) || !s.Told.At.Equal(was.At) {
				return false // the session changed since the read began
			}
			statusNow := statusChanged && sameStatus(s.Status, snap.status)
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
		switch {
		case err != nil:
			return err
		case lost:
			w.log.Warn("graph no longer has the app session; setting it again", "user", id)
		case manual != nil:
			w.log.Debug("a status set by hand shows instead of the app session", "user", id, "manual", manual.String())
			history.Record(w.e.opts.History, w.tenant.ID, id, history.Decision(history.DecisionManual, manual, nil, at))
		}
	}
	return nil
}

// finishRead takes a read's outcome back into the loop; a throttled read
// pauses the tenant like a throttled write.
func (w *writer) finishRead(r readResult, now time.Time) {
	w.reading = false
	if r.err == nil {
		return
	}
	class, after := fault.Of(r.err)
	if class == fault.Throttled {
		w.pause(now.Add(max(after, time.Second)), "aggregate read throttled by graph")
		w.budget.throttled(now, now)
	}
	w.log.Warn("read graph presence", "err", r.err)
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
