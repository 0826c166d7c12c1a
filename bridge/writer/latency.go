package writer

import (
	"strconv"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// The fates of an event taken into a user's state (Options.EventOutcome).
const (
	// OutcomeGraph: Graph answered a call that carried the event's effect;
	// its wait since acceptance is observed by Options.EventToGraph.
	OutcomeGraph = "graph"
	// OutcomeNoCall: the session Graph holds was already right (another
	// claim decides it, or a later event undid the change before a call
	// went out).
	OutcomeNoCall = "no_call"
	// OutcomeGraphRefused: Graph refused the call for good (dead letter).
	OutcomeGraphRefused = "graph_refused"
)

// Latency is measured where users feel it: from the bridge's accepting an
// event (its 202; JetStream's timestamp, which the state stage keeps in
// the user's state as Waiting) to Graph's answer to the call that carried
// its effect. A call carries every event waiting in the state the writer
// held when it started the call, so events coalesced into one call are
// each timed, with their own wait; the call's record of what Graph was
// told takes them out of the state, leaving the ones that came meanwhile
// for the next call. Waiting events that need no call are reported as
// OutcomeNoCall when the writer finds the session right, and remembered as
// settled (in memory; the next call takes them out of the state) so that
// they are not timed later. The events a writer finds on start are
// settled without a report: it can not tell which its predecessor
// reported. The wait is taken on the real clock, as JetStream's
// timestamps are.

// noCall reports t's waiting events that were not reported yet as needing
// no call.
func (w *writer) noCall(t *tracked) {
	if t == nil {
		return
	}
	for _, wt := range t.state.Waiting {
		if !t.settled[waitKey(wt)] && !t.settledBefore(wt) {
			w.settle(t, wt)
			w.outcome(OutcomeNoCall)
		}
	}
}

// reportWaits reports the events a call Graph answered carried: timed
// when Graph accepted it, refused otherwise.
func (w *writer) reportWaits(t *tracked, r result) {
	now := time.Now()
	for _, wt := range r.waits {
		if t.settled[waitKey(wt)] || t.settledBefore(wt) {
			continue
		}
		w.settle(t, wt)
		if r.err != nil {
			w.outcome(OutcomeGraphRefused)
			continue
		}
		w.outcome(OutcomeGraph)
		if w.e.opts.EventToGraph != nil {
			w.e.opts.EventToGraph(max(now.Sub(wt.Accepted), 0))
		}
	}
}

// settleWaits forgets the settled events no longer waiting in t's state,
// so that the set stays as small as Waiting, and with all set settles
// every waiting event (a state found on start). While a call is in flight
// it forgets none: the state its record wrote, without the events it
// carried, may come in before its result, which still needs to know
// which of them were settled.
func (w *writer) settleWaits(t *tracked, all bool) {
	if len(t.settled) > 0 && !t.inFlight {
		keep := make(map[string]bool, len(t.state.Waiting))
		for _, wt := range t.state.Waiting {
			keep[waitKey(wt)] = true
		}
		for k := range t.settled {
			if !keep[k] {
				delete(t.settled, k)
			}
		}
		if len(t.settled) == 0 {
			t.settled = nil // a map keeps its room when emptied
		}
	}
	if all {
		for _, wt := range t.state.Waiting {
			w.settle(t, wt)
		}
	}
}

func (w *writer) settle(t *tracked, wt state.Waiting) {
	if t.settled == nil {
		t.settled = map[string]bool{}
	}
	t.settled[waitKey(wt)] = true
}

// waitKey names a waiting event: its key and acceptance.
func waitKey(wt state.Waiting) string {
	return wt.Event + "\x00" + strconv.FormatInt(wt.Accepted.UnixNano(), 10)
}

func (w *writer) outcome(o string) {
	if w.e.opts.EventOutcome != nil {
		w.e.opts.EventOutcome(o)
	}
}

// carried returns the waiting events less those a call carried, in a new
// slice.
func carried(list, waits []state.Waiting) []state.Waiting {
	var out []state.Waiting
	for _, wt := range list {
		if !waiting(waits, wt) {
			out = append(out, wt)
		}
	}
	return out
}

func waiting(list []state.Waiting, wt state.Waiting) bool {
	for _, x := range list {
		if x.Event == wt.Event && x.Accepted.Equal(wt.Accepted) {
			return true
		}
	}
	return false
}
