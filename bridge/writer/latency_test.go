package writer

import (
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// TestEachWaitingEventReportedOnce: an event is reported once, timed when
// a call carried it and not settled before, whatever order the call's
// recorded state and its result come back in.
func TestEachWaitingEventReportedOnce(t *testing.T) {
	accepted := time.Now().Add(-time.Second)
	ringing := state.Waiting{Event: "pbx:ring", Accepted: accepted}
	active := state.Waiting{Event: "pbx:answer", Accepted: accepted.Add(-time.Millisecond)}
	for _, recordFirst := range []bool{false, true} {
		var timed []time.Duration
		outcomes := map[string]int{}
		w := &writer{e: &Pool{opts: Options{
			EventToGraph: func(d time.Duration) { timed = append(timed, d) },
			EventOutcome: func(o string) { outcomes[o]++ },
		}}}
		tr := &tracked{}
		// The ringing event needed no call.
		tr.state.Waiting = []state.Waiting{ringing}
		w.noCall(tr)
		w.noCall(tr) // evaluated again: not counted twice
		// The answer does; the call carries both.
		tr.state.Waiting = []state.Waiting{ringing, active}
		tr.inFlight = true
		r := result{graph: true, waits: tr.state.Waiting}
		if recordFirst {
			// The state the call recorded, without the events it carried,
			// comes in through the watch before the result.
			tr.state.Waiting = nil
			w.settleWaits(tr, false)
		}
		tr.inFlight = false
		w.reportWaits(tr, r)
		tr.state.Waiting = nil
		w.settleWaits(tr, false)
		if len(timed) != 1 || timed[0] < time.Second || outcomes[OutcomeGraph] != 1 || outcomes[OutcomeNoCall] != 1 || len(tr.settled) != 0 {
			t.Errorf("record first %v: timed %v, outcomes %v, %d settled left; want the answer timed once (>= 1s), the ringing once as no call, none left",
				recordFirst, timed, outcomes, len(tr.settled))
		}
	}
}
