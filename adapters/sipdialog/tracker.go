package sipdialog

import (
	"sort"
	"strings"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/internal/sipua"
)

// change is one dialog of an entity moving to a canonical call state.
type change struct {
	DialogID string
	State    string
	// Round counts the times the bridge ended this dialog itself because
	// the entity could not be watched. It keeps the events of a call seen
	// again afterwards apart from those already published, which the
	// event log would drop as duplicates.
	Round int
}

// tracker is what one entity's subscriptions have said: the version of
// the current subscription's last document and the dialogs still open.
// It is not safe for concurrent use.
type tracker struct {
	version uint64
	seen    bool
	// fresh reports a subscription whose snapshot (its first full
	// document, or an empty body) has not come yet.
	fresh  bool
	open   map[string]string // dialog id → ringing or active
	lapsed map[string]int    // dialog id → rounds ended by lapse
}

// canonical maps an RFC 4235 dialog state to a call state.
func canonical(state string) string {
	switch state {
	case StateTrying, StateProceeding, StateEarly:
		return adapters.CallRinging
	case StateConfirmed:
		return adapters.CallActive
	default:
		return adapters.CallEnded
	}
}

// restart begins a new subscription: its versions start over. The open
// dialogs stay until its snapshot says otherwise.
func (t *tracker) restart() {
	t.version, t.seen, t.fresh = 0, false, true
}

// applied is what one document did.
type applied struct {
	changes []change
	// stale reports a document not newer than the last one; it changed
	// nothing.
	stale bool
	// gap reports a partial document that skips a version: one was lost,
	// and only a new full state can be trusted.
	gap bool
	// dropped counts dialogs left out because MaxDialogs were open.
	dropped int
	// snapshot reports the subscription's snapshot: what it lists is all
	// that is going on for the entity.
	snapshot bool
}

// apply takes one document of the current subscription. Dialogs whose id
// starts with sipua.DialogPrefix are the bridge's own and ignored.
func (t *tracker) apply(doc *DialogInfo) (r applied) {
	if t.seen && doc.Version <= t.version {
		return applied{stale: true}
	}
	r.gap = t.seen && !doc.Full && doc.Version > t.version+1
	t.version, t.seen = doc.Version, true
	if t.open == nil {
		t.open = make(map[string]string)
	}
	listed := make(map[string]bool, len(doc.Dialogs))
	for _, d := range doc.Dialogs {
		if strings.HasPrefix(d.ID, sipua.DialogPrefix) {
			// The bridge published this dialog itself (outputs/sip): a
			// Teams call, not a call of the PBX's.
			continue
		}
		listed[d.ID] = true
		state := canonical(d.State)
		old, isOpen := t.open[d.ID]
		switch {
		case state == adapters.CallEnded:
			if isOpen {
				delete(t.open, d.ID)
				r.changes = append(r.changes, change{d.ID, state, t.lapsed[d.ID]})
				delete(t.lapsed, d.ID)
			}
		case old == state:
		case !isOpen && len(t.open) >= MaxDialogs:
			r.dropped++
		default:
			t.open[d.ID] = state
			r.changes = append(r.changes, change{d.ID, state, t.lapsed[d.ID]})
		}
	}
	if doc.Full {
		r.changes = append(r.changes, t.endUnlisted(listed)...)
		r.snapshot, t.fresh = t.fresh, false
	}
	return r
}

// empty takes a NOTIFY without a body on an active subscription. The
// first one, before any document, is the subscription's snapshot: the PBX
// knows no dialog of the entity (Kamailio's answer after it restarted).
// Later ones, after a document, change nothing.
func (t *tracker) empty() applied {
	if !t.fresh || t.seen {
		return applied{}
	}
	t.fresh = false
	return applied{changes: t.endUnlisted(nil), snapshot: true}
}

// endUnlisted ends the open dialogs not listed.
func (t *tracker) endUnlisted(listed map[string]bool) []change {
	var gone []string
	for id := range t.open {
		if !listed[id] {
			gone = append(gone, id)
		}
	}
	sort.Strings(gone)
	changes := make([]change, 0, len(gone))
	for _, id := range gone {
		delete(t.open, id)
		changes = append(changes, change{id, adapters.CallEnded, t.lapsed[id]})
		delete(t.lapsed, id)
	}
	return changes
}

// openDialogs lists the open dialogs, sorted.
func (t *tracker) openDialogs() []string {
	ids := make([]string, 0, len(t.open))
	for id := range t.open {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// lapse ends every open dialog: the entity can no longer be watched.
func (t *tracker) lapse() []change {
	ids := t.openDialogs()
	changes := make([]change, 0, len(ids))
	for _, id := range ids {
		changes = append(changes, change{id, adapters.CallEnded, t.lapsed[id]})
		if t.lapsed == nil || len(t.lapsed) >= MaxDialogs {
			t.lapsed = make(map[string]int)
		}
		t.lapsed[id]++
	}
	clear(t.open)
	return changes
}
