package writer

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// Status messages (Options.StatusMessages): while a kind of claim sets a
// user's session, the writer shows that kind's message under the user's
// name, and removes it when the session no longer comes from that kind.
//
// A message is set only once Graph holds the session the user should
// have, and each time after reading the user's presence first: a text
// other than the writer's own is a message the user wrote, recorded in
// the user's state and left alone, neither overwritten nor removed, until
// the user's session ends or the aggregate reads (ObserveAggregate, called
// by the Teams watcher) see it gone.
// The read and the write each spend a token of the tenant's budget.
//
// When the claim ends the writer removes its message at once rather than
// letting it expire: "On a call" shown for an hour after the call would
// mislead. Every message still carries an expiry (StatusExpiry) and is
// set again before it runs out while the claim lasts, so that a message
// outlives the bridge, or a removal that failed, by one expiry at most.

// statusGraph is a Graph the writers can keep status messages with.
type statusGraph interface {
	PresenceReader
	StatusMessenger
}

// statusKindMark marks the labels activeKind puts in place of pairs; no
// Graph availability looks like it.
const statusKindMark = "\x00kind"

// activeKind names the kind of claim that sets the session st should have
// at now: "call", "conference_call", "ringing" or "meeting", "" when
// none does (no session, or an explicit presence claim). It asks Desired
// itself, with each kind's pair replaced by a label, so it follows
// Desired's choice.
func activeKind(st state.UserState, r state.Rules, now time.Time) string {
	for _, k := range []struct {
		pair **adapters.Pair
		kind string
	}{{&r.Call, "call"}, {&r.ConferenceCall, "conference_call"}, {&r.Ringing, "ringing"}, {&r.Meeting, "meeting"}} {
		if *k.pair != nil {
			*k.pair = &adapters.Pair{Availability: statusKindMark, Activity: k.kind}
		}
	}
	want, _ := st.Desired(r, now)
	if want == nil || want.Availability != statusKindMark {
		return ""
	}
	return want.Activity
}

// statusDue reports whether st's status message needs a call at now
// while want is the session the user should have, and the text to show
// ("" to remove the writer's message); when no call is needed, at is when
// one will be (zero: not by itself). Nothing is due before Graph holds
// want.
func (w *writer) statusDue(st state.UserState, want *adapters.Pair, now time.Time) (text string, due bool, at time.Time) {
	if len(w.e.opts.StatusMessages) == 0 || st.Pending != nil || !adapters.SamePair(toldPair(st.Told), want) {
		return "", false, time.Time{}
	}
	if want != nil {
		text = w.e.opts.StatusMessages[activeKind(st, w.e.rules, now)]
	}
	s := st.Status
	switch {
	case s == nil:
		return text, text != "", time.Time{}
	case s.UserText != "": // the user's own, left alone
		return text, false, time.Time{}
	case s.Text == "": // nothing of the writer's shows
		return text, text != "" && text != s.Refused, time.Time{}
	case s.Text != text:
		return text, true, time.Time{}
	}
	renew := s.At.Add(s.Expires.Sub(s.At) * 5 / 6)
	if now.Before(renew) {
		return text, false, renew
	}
	return text, true, time.Time{}
}

// statusNeed reports whether a queued user needs a status message call at
// now, and the text to show.
func (w *writer) statusNeed(userID string, now time.Time) (string, bool) {
	t := w.users[userID]
	if len(w.e.opts.StatusMessages) == 0 || t == nil || t.inFlight || t.forgetting || t.retryAt.After(now) {
		return "", false
	}
	want, _ := t.state.Desired(w.e.rules, now)
	text, due, _ := w.statusDue(t.state, want, now)
	return text, due
}

// callStatus reads the user's status message, then shows text (removes
// the writer's message when text is ""), unless the message showing is
// one the user wrote, and records the outcome. The read spends the token
// dispatch took; the write waits for a token of its own. A message is
// the writer's when it is the one on record (was) or reads as text.
func (w *writer) callStatus(ctx context.Context, userID, text string, was *state.StatusMessage) {
	r := result{userID: userID}
	defer func() { w.results <- r }() // buffered for every call in flight
	g := w.e.opts.Graph.(statusGraph)
	var seen string
	err := w.graphCall(ctx, &r, func(ctx context.Context) error {
		got, err := g.GetPresences(ctx, w.tenant.ID, []string{userID})
		seen = strings.TrimSpace(got[userID].StatusText)
		return err
	})
	var record *state.StatusMessage
	now := w.e.opts.Clock.Now()
	ours := seen == "" || sameText(seen, text) || (was != nil && was.Text != "" && sameText(seen, was.Text))
	switch {
	case err != nil:
	case !ours:
		record = &state.StatusMessage{UserText: seen, At: now}
		w.log.Debug("a status message the user wrote shows; left alone", "user", userID)
	case text == "" && seen == "": // nothing to remove
	default:
		if err = w.awaitToken(ctx); err != nil {
			r.err, r.class = err, fault.Retry
			return
		}
		now = w.e.opts.Clock.Now()
		expires := now.Add(w.e.opts.StatusExpiry)
		err = w.graphCall(ctx, &r, func(ctx context.Context) error {
			if text == "" {
				return g.ClearStatusMessage(ctx, w.tenant.ID, userID)
			}
			return g.SetStatusMessage(ctx, w.tenant.ID, userID, text, expires)
		})
		if text != "" {
			record = &state.StatusMessage{Text: text, At: now, Expires: expires}
		}
	}
	if r.rejected {
		return
	}
	if err != nil {
		r.err = err
		r.class, r.after = fault.Of(err)
		if r.class != fault.Permanent {
			return
		}
		w.log.Warn("graph refused the status message; not sent again until the text changes", "user", userID, "err", err)
		record = &state.StatusMessage{Refused: text, At: now}
	}
	// Record the outcome even while shutting down: Graph has acted.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	st, rev, uerr := w.e.store.Update(recordCtx, w.tenant.ID, userID, func(s *state.UserState) bool {
		s.Status = record
		return true
	})
	if uerr != nil {
		r.err, r.class = uerr, fault.Retry
		return
	}
	r.updated, r.rev = &st, rev
}

// awaitToken waits until the tenant's budget gives a token, checking
// every tick, and fails once ctx ends or the lease may have passed on.
func (w *writer) awaitToken(ctx context.Context) error {
	for !w.budget.allow(w.e.opts.Clock.Now()) {
		if w.fenced() {
			return errors.New("status message: the lease ran out waiting for the budget")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(w.e.opts.Tick):
		}
	}
	return nil
}

// compareStatus tells what the status text Graph shows says of the
// status message on record: the record to keep, and whether it differs.
// The text on record showing changes nothing; another text is a message
// the user wrote; no text where one was on record means it expired or
// was removed, and the record goes (the writer then sets its message
// again while the claim lasts).
func compareStatus(rec *state.StatusMessage, text string, at time.Time) (*state.StatusMessage, bool) {
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		if rec == nil || (rec.Text == "" && rec.UserText == "") {
			return rec, false
		}
		return nil, true
	case rec != nil && (sameText(text, rec.Text) || sameText(text, rec.UserText)):
		return rec, false
	}
	return &state.StatusMessage{UserText: text, At: at}, true
}

// sameStatus reports whether two records of a status message are equal.
func sameStatus(a, b *state.StatusMessage) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Text == b.Text && a.UserText == b.UserText && a.Refused == b.Refused && a.At.Equal(b.At) && a.Expires.Equal(b.Expires)
}

// sameText compares status texts as Teams shows them, without the spaces
// around them.
func sameText(a, b string) bool { return strings.TrimSpace(a) == strings.TrimSpace(b) }
