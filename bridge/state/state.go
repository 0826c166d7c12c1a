// Package state is the bridge's per-user state: what every source claims
// about each person and what Graph was last told, kept in a JetStream KV
// bucket, one key per user, and the rules that derive the presence a user
// should have from it.
package state

import (
	"slices"
	"strings"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// UserState is everything the bridge knows about one person: what each
// source claims, and what Graph was last told. It is stored as JSON in the
// KV bucket, one key per user.
type UserState struct {
	Tenant string `json:"tenant"`
	UserID string `json:"userId"`
	// Calls are open (and recently ended) calls by source and call id.
	Calls map[string]*CallClaim `json:"calls,omitempty"`
	// Meetings are meeting claims by source and event id.
	Meetings map[string]*MeetingClaim `json:"meetings,omitempty"`
	// Presence are explicit presence claims by source.
	Presence map[string]*PresenceClaim `json:"presence,omitempty"`
	// SourceSeen is when each source last said anything about the user.
	SourceSeen map[string]time.Time `json:"sourceSeen,omitempty"`
	// Told is what Graph was last told, nil when never.
	Told *Told `json:"told,omitempty"`
	// Pending is a call to Graph under way (or cut short by a crash): what
	// Graph holds is then unknown, and the writer reconciles again.
	Pending *Told `json:"pending,omitempty"`
	// Failed marks a desired state Graph refused for good; it is not sent
	// again until the claims change.
	Failed *Failure `json:"failed,omitempty"`
	// Manual is a status the user set by hand (a user-preferred
	// presence), seen overriding the app session in Graph's aggregate. The
	// bridge records it and never fights it.
	Manual *ManualStatus `json:"manual,omitempty"`
	// Status is the status message the writer keeps for the user (see
	// StatusMessage), nil when it keeps none.
	Status *StatusMessage `json:"status,omitempty"`
	// LastEvent is the newest event applied, kept for dead letters.
	LastEvent *adapters.Event `json:"lastEvent,omitempty"`
	// Waiting are the events taken in since Graph was last told, with
	// when each was accepted, so that the writer can time each one until
	// the call that carries its effect is answered (at most MaxWaiting,
	// the oldest forgotten first).
	Waiting []Waiting `json:"waiting,omitempty"`
}

// Waiting is an event whose effect Graph has not been told yet.
type Waiting struct {
	// Event is the event's source and id (adapters.Event.Key).
	Event string `json:"event"`
	// Accepted is when the bridge accepted it (JetStream stored it).
	Accepted time.Time `json:"accepted"`
}

// MaxWaiting bounds UserState.Waiting: a user whose events keep coming
// while no call is made keeps the newest this many.
const MaxWaiting = 32

// CallClaim is one call of one source.
type CallClaim struct {
	Source     string    `json:"source"`
	State      string    `json:"state"`
	Conference bool      `json:"conference,omitempty"`
	OccurredAt time.Time `json:"occurredAt"`
	Sequence   int64     `json:"sequence,omitempty"`
	// Updated is when the bridge last heard of the call.
	Updated time.Time `json:"updated"`
}

// MeetingClaim is one meeting: a started/ended state or a window.
type MeetingClaim struct {
	Source     string     `json:"source"`
	State      string     `json:"state,omitempty"`
	Start      *time.Time `json:"start,omitempty"`
	End        *time.Time `json:"end,omitempty"`
	ShowAs     string     `json:"showAs,omitempty"`
	OccurredAt time.Time  `json:"occurredAt"`
	Sequence   int64      `json:"sequence,omitempty"`
	// Updated is when the bridge last heard of the meeting.
	Updated time.Time `json:"updated,omitzero"`
}

// PresenceClaim is an explicit presence from one source.
type PresenceClaim struct {
	Pair       *adapters.Pair `json:"pair,omitempty"`
	ExpiresAt  *time.Time     `json:"expiresAt,omitempty"`
	OccurredAt time.Time      `json:"occurredAt"`
	Sequence   int64          `json:"sequence,omitempty"`
	// Updated is when the bridge last heard from the source.
	Updated time.Time `json:"updated,omitzero"`
}

// Told is what Graph was last told for the user.
type Told struct {
	// Pair is the session set, nil when the session was cleared.
	Pair *adapters.Pair `json:"pair,omitempty"`
	At   time.Time      `json:"at"`
	// Expires is when the session set expires, zero (left out) for a
	// clear.
	Expires time.Time `json:"expires,omitzero"`
}

// ManualStatus is what Graph showed instead of the app session.
type ManualStatus struct {
	Pair  adapters.Pair `json:"pair"`
	Since time.Time     `json:"since"`
}

// StatusMessage is what the writer knows of the user's status message:
// the text it set (Text, until Expires), or a message the user wrote
// themself (UserText), which it leaves alone, or a text Graph refused
// (Refused), not sent again until the text wanted changes.
type StatusMessage struct {
	Text     string    `json:"text,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
	UserText string    `json:"userText,omitempty"`
	Refused  string    `json:"refused,omitempty"`
	At       time.Time `json:"at"`
}

// Failure is a desired state Graph refused.
type Failure struct {
	Pair   *adapters.Pair `json:"pair,omitempty"`
	Reason string         `json:"reason"`
	At     time.Time      `json:"at"`
}

// Rules are the derivation's settings.
type Rules struct {
	// Mapping is the pair each kind of claim sets.
	Call, ConferenceCall, Ringing, Meeting *adapters.Pair
	// MeetingShowAs lists the showAs values that make a meeting count.
	MeetingShowAs []string
	// Priority orders kinds: "conference", "call", "meeting", "presence".
	Priority []string
	// MaxCallDuration drops a call claim not updated for this long; zero
	// keeps open calls until they end.
	MaxCallDuration time.Duration
	// MaxClaims caps the claims kept per user (calls, meetings and
	// presence together); zero means no cap. See Evict for what goes
	// first.
	MaxClaims int
	// SourceLapse drops a silent source's claims after its duration.
	SourceLapse map[string]time.Duration
}

// supersedes reports whether an event at (at, seq) in state replaces a
// claim at (thanAt, thanSeq) in thanState: a later time, or at the same
// time a higher sequence. At a full tie (sources with one-second clocks
// send "active" and "ended" in the same second) a different state wins,
// except that nothing reopens what ended: nobody is left "In a call" by a
// tie that arrived out of order.
func supersedes(at time.Time, seq int64, state string, thanAt time.Time, thanSeq int64, thanState string) bool {
	switch {
	case !at.Equal(thanAt):
		return at.After(thanAt)
	case seq != thanSeq:
		return seq > thanSeq
	}
	return state != thanState && !terminal(thanState)
}

func terminal(state string) bool {
	return state == adapters.CallEnded || state == adapters.PresenceClear
}

// Why an event changed nothing, as Store.Take reports it.
const (
	// ReasonOlder: the state holds a newer claim about the same call,
	// meeting or source (occurredAt, then sequence).
	ReasonOlder = "older"
	// ReasonDuplicate: the state holds the same claim at the same time
	// and sequence.
	ReasonDuplicate = "duplicate"
	// ReasonSuperseded: a later event of the same batch replaced the claim
	// before it was stored.
	ReasonSuperseded = "superseded"
)

// Apply records ev in s and reports whether the claims changed. An event
// older than what s holds for the same call, meeting or source (occurredAt,
// then sequence) changes nothing.
func (s *UserState) Apply(ev adapters.Event, received time.Time) bool {
	return s.apply(ev, received) == ""
}

// apply is Apply, answering "" when the claims changed and otherwise
// why not (ReasonOlder or ReasonDuplicate).
func (s *UserState) apply(ev adapters.Event, received time.Time) string {
	if s.SourceSeen == nil {
		s.SourceSeen = map[string]time.Time{}
	}
	s.SourceSeen[ev.Source] = received
	changed := false
	switch ev.Type {
	case adapters.TypeCall:
		if s.Calls == nil {
			s.Calls = map[string]*CallClaim{}
		}
		if ev.CallID == adapters.AllCalls {
			changed = s.endCalls(ev, received)
			break
		}
		key := ev.Source + "/" + ev.CallID
		old := s.Calls[key]
		if old != nil {
			if why := ignored(ev.OccurredAt, ev.Sequence, callState(ev), old.OccurredAt, old.Sequence, old.state()); why != "" {
				return why
			}
		}
		s.Calls[key] = &CallClaim{Source: ev.Source, State: ev.State, Conference: ev.Conference, OccurredAt: ev.OccurredAt, Sequence: ev.Sequence, Updated: received}
		changed = true
	case adapters.TypeMeeting:
		if ev.State == adapters.MeetingResync {
			changed = s.resyncMeetings(ev, received)
			break
		}
		if s.Meetings == nil {
			s.Meetings = map[string]*MeetingClaim{}
		}
		key := ev.Source + "/" + meetingKey(ev)
		old := s.Meetings[key]
		if old != nil {
			if why := ignored(ev.OccurredAt, ev.Sequence, meetingState(ev), old.OccurredAt, old.Sequence, old.state()); why != "" {
				return why
			}
		}
		s.Meetings[key] = &MeetingClaim{Source: ev.Source, State: ev.State, Start: ev.Start, End: ev.End, ShowAs: ev.ShowAs, OccurredAt: ev.OccurredAt, Sequence: ev.Sequence, Updated: received}
		changed = true
	case adapters.TypePresence:
		if s.Presence == nil {
			s.Presence = map[string]*PresenceClaim{}
		}
		old := s.Presence[ev.Source]
		if old != nil {
			if why := ignored(ev.OccurredAt, ev.Sequence, presenceState(ev), old.OccurredAt, old.Sequence, old.state()); why != "" {
				return why
			}
		}
		claim := &PresenceClaim{OccurredAt: ev.OccurredAt, Sequence: ev.Sequence, ExpiresAt: ev.ExpiresAt, Updated: received}
		if ev.State == adapters.PresenceSet {
			claim.Pair = &adapters.Pair{Availability: ev.Availability, Activity: ev.Activity}
		}
		s.Presence[ev.Source] = claim
		changed = true
	}
	if !changed {
		return ReasonOlder // a type the state does not know; validation keeps it out
	}
	e := ev
	s.LastEvent = &e
	s.Failed = nil
	return ""
}

// ignored says why an event at (at, seq) in state does not replace a claim
// at (thanAt, thanSeq) in thanState, "" when it does (supersedes).
func ignored(at time.Time, seq int64, state string, thanAt time.Time, thanSeq int64, thanState string) string {
	switch {
	case supersedes(at, seq, state, thanAt, thanSeq, thanState):
		return ""
	case at.Equal(thanAt) && seq == thanSeq && state == thanState:
		return ReasonDuplicate
	}
	return ReasonOlder
}

// resyncMeetings ends every meeting ev's source claimed before
// ev.OccurredAt (see adapters.MeetingResync) and reports whether any
// ended. An ended claim keeps its own time, so that whatever the source
// said about it since, even if applied later, still counts.
func (s *UserState) resyncMeetings(ev adapters.Event, received time.Time) bool {
	changed := false
	for _, m := range s.Meetings {
		if m.Source != ev.Source || m.State == adapters.MeetingEnded || !m.OccurredAt.Before(ev.OccurredAt) {
			continue
		}
		*m = MeetingClaim{Source: m.Source, State: adapters.MeetingEnded, OccurredAt: m.OccurredAt, Sequence: m.Sequence, Updated: received}
		changed = true
	}
	return changed
}

// endCalls applies an event for adapters.AllCalls: every open call of
// its source but those it excepts ends, unless the call's claim is newer
// than the event.
func (s *UserState) endCalls(ev adapters.Event, received time.Time) bool {
	changed := false
	for key, c := range s.Calls {
		if c.Source != ev.Source || c.State == adapters.CallEnded || slices.Contains(ev.ExceptCalls, strings.TrimPrefix(key, ev.Source+"/")) ||
			!supersedes(ev.OccurredAt, ev.Sequence, adapters.CallEnded, c.OccurredAt, c.Sequence, c.state()) {
			continue
		}
		s.Calls[key] = &CallClaim{Source: ev.Source, State: adapters.CallEnded, OccurredAt: ev.OccurredAt, Sequence: ev.Sequence, Updated: received}
		changed = true
	}
	return changed
}

// The states compared at a tie; they include what else a claim says, so
// that an identical event is recognised as a duplicate.
func callState(ev adapters.Event) string {
	if ev.Conference {
		return ev.State + "+conference"
	}
	return ev.State
}

func (c *CallClaim) state() string {
	if c.Conference {
		return c.State + "+conference"
	}
	return c.State
}

func meetingState(ev adapters.Event) string {
	m := MeetingClaim{State: ev.State, Start: ev.Start, End: ev.End, ShowAs: ev.ShowAs}
	return m.state()
}

func (m *MeetingClaim) state() string {
	if m.State == adapters.MeetingEnded {
		return adapters.CallEnded // ended meetings are terminal too
	}
	window := ""
	if m.Start != nil && m.End != nil {
		window = m.Start.UTC().String() + m.End.UTC().String()
	}
	return m.State + "|" + window + "|" + m.ShowAs
}

func presenceState(ev adapters.Event) string {
	if ev.State != adapters.PresenceSet {
		return adapters.PresenceClear
	}
	return ev.Availability + "/" + ev.Activity
}

func (p *PresenceClaim) state() string {
	if p.Pair == nil {
		return adapters.PresenceClear
	}
	return p.Pair.String()
}

// meetingKey identifies a meeting: calendar adapters give their events ids
// of the form "graph-event:<id>:<version>" or "caldav-event:<id>:<version>"
// (the version holds no ':'),
// so every version of one event (its end included) shares a key; other
// events are keyed by their own id.
func meetingKey(ev adapters.Event) string {
	id := ev.ID
	for _, prefix := range []string{"graph-event:", "caldav-event:"} {
		if rest, ok := strings.CutPrefix(id, prefix); ok {
			if i := strings.LastIndexByte(rest, ':'); i > 0 {
				return rest[:i]
			}
		}
	}
	if ev.Start == nil && ev.State != "" {
		return "state" // started/ended meetings of a source form one claim
	}
	return id
}

// Desired derives the one app session the user should have at now: the
// pair to set, or nil to clear. Next is the earliest later time at which
// the answer may change by itself (a meeting starting or ending, a claim
// lapsing), zero when none.
func (s *UserState) Desired(r Rules, now time.Time) (want *adapters.Pair, next time.Time) {
	best, bestRank := (*adapters.Pair)(nil), len(r.Priority)+1
	next = s.eachActive(r, now, func(kind, _ string, p *adapters.Pair) {
		if rank := slices.Index(r.Priority, kind); rank >= 0 && rank < bestRank {
			best, bestRank = p, rank
		}
	})
	return best, next
}

// SessionSources returns the sources whose claims make the session
// Desired derives at now: those of the winning kind of claim whose pair
// is the session's, sorted; none when there is no session.
func (s *UserState) SessionSources(r Rules, now time.Time) []string {
	bestRank := len(r.Priority) + 1
	s.eachActive(r, now, func(kind, _ string, p *adapters.Pair) {
		if rank := slices.Index(r.Priority, kind); p != nil && rank >= 0 && rank < bestRank {
			bestRank = rank
		}
	})
	want, _ := s.Desired(r, now)
	var sources []string
	s.eachActive(r, now, func(kind, source string, p *adapters.Pair) {
		if p != nil && want != nil && *p == *want && slices.Index(r.Priority, kind) == bestRank && !slices.Contains(sources, source) {
			sources = append(sources, source)
		}
	})
	slices.Sort(sources)
	return sources
}

// eachActive calls visit with the kind, source and pair of every claim
// that counts at now, and returns the earliest later time at which that
// may change by itself, zero when none.
func (s *UserState) eachActive(r Rules, now time.Time, visit func(kind, source string, p *adapters.Pair)) (next time.Time) {
	consider := func(kind, source string, p *adapters.Pair) {
		if p != nil {
			visit(kind, source, p)
		}
	}
	soon := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	lapsed := func(source string) bool {
		lapse, ok := r.SourceLapse[source]
		if !ok || lapse <= 0 {
			return false
		}
		deadline := s.SourceSeen[source].Add(lapse)
		soon(deadline)
		return !now.Before(deadline)
	}
	for _, c := range s.Calls {
		if c.State == adapters.CallEnded || lapsed(c.Source) {
			continue
		}
		if r.MaxCallDuration > 0 {
			deadline := c.Updated.Add(r.MaxCallDuration)
			if !now.Before(deadline) {
				continue
			}
			soon(deadline)
		}
		switch {
		case c.State == adapters.CallRinging:
			consider("call", c.Source, r.Ringing)
		case c.Conference:
			consider("conference", c.Source, r.ConferenceCall)
		default:
			consider("call", c.Source, r.Call)
		}
	}
	for _, m := range s.Meetings {
		if lapsed(m.Source) || (m.ShowAs != "" && !slices.Contains(r.MeetingShowAs, m.ShowAs)) {
			continue
		}
		switch {
		case m.Start != nil && m.End != nil:
			soon(*m.Start)
			soon(*m.End)
			if !now.Before(*m.Start) && now.Before(*m.End) {
				consider("meeting", m.Source, r.Meeting)
			}
		case m.State == adapters.MeetingStarted:
			consider("meeting", m.Source, r.Meeting)
		}
	}
	for source, p := range s.Presence {
		if p.Pair == nil || lapsed(source) {
			continue
		}
		if p.ExpiresAt != nil {
			if !now.Before(*p.ExpiresAt) {
				continue
			}
			soon(*p.ExpiresAt)
		}
		consider("presence", source, p.Pair)
	}
	return next
}

// Prune forgets claims that can no longer matter, so state stays small,
// and returns how many it forgot. A claim is kept for keep (the window in
// which a late event about it could still arrive) after it stopped
// counting: an ended call after its last update, an open call after
// r.MaxCallDuration without news (never, when that is zero), a meeting
// after it ended, a presence claim after it expired.
func (s *UserState) Prune(r Rules, now time.Time, keep time.Duration) int {
	n := 0
	for k, c := range s.Calls {
		idle := now.Sub(c.Updated)
		if (c.State == adapters.CallEnded && idle > keep) || (r.MaxCallDuration > 0 && idle > r.MaxCallDuration+keep) {
			delete(s.Calls, k)
			n++
		}
	}
	for k, m := range s.Meetings {
		if (m.End != nil && now.Sub(*m.End) > keep) || (m.State == adapters.MeetingEnded && now.Sub(m.OccurredAt) > keep) {
			delete(s.Meetings, k)
			n++
		}
	}
	for k, p := range s.Presence {
		if p.ExpiresAt != nil && now.Sub(*p.ExpiresAt) > keep {
			delete(s.Presence, k)
			n++
		}
	}
	return n
}

// Claims returns how many claims s holds.
func (s *UserState) Claims() int { return len(s.Calls) + len(s.Meetings) + len(s.Presence) }

// Evict forgets claims until at most max remain, never the one named
// protect (see claimID), and returns how many it forgot. This bounds what
// a source can make the bridge keep for one person: a hunt group ringing
// an agent thousands of times leaves at most max claims.
//
// The order is chosen so that eviction can never leave anybody "In a
// call" who is not: forgetting a claim only takes away a reason to be
// busy. First go claims that no longer count (ended or timed-out calls,
// ended or past meetings, cleared or expired presence), oldest first;
// they are kept only to ignore late events about them, so evicting one
// gives up that protection, and a late "active" for an evicted ended call
// would open it again until it ends or times out. Then ringing calls,
// which rarely set a presence, then every other claim, least recently
// updated first.
func (s *UserState) Evict(r Rules, now time.Time, max int, protect string) int {
	excess := s.Claims() - max
	if excess <= 0 {
		return 0
	}
	type candidate struct {
		id      string
		rank    int
		updated time.Time
	}
	const (
		done = iota
		ringing
		open
	)
	list := make([]candidate, 0, s.Claims())
	for k, c := range s.Calls {
		rank := open
		switch {
		case c.State == adapters.CallEnded || (r.MaxCallDuration > 0 && !now.Before(c.Updated.Add(r.MaxCallDuration))):
			rank = done
		case c.State == adapters.CallRinging:
			rank = ringing
		}
		list = append(list, candidate{"call/" + k, rank, c.Updated})
	}
	for k, m := range s.Meetings {
		rank := open
		if m.State == adapters.MeetingEnded || (m.End != nil && !now.Before(*m.End)) {
			rank = done
		}
		list = append(list, candidate{"meeting/" + k, rank, m.Updated})
	}
	for k, p := range s.Presence {
		rank := open
		if p.Pair == nil || (p.ExpiresAt != nil && !now.Before(*p.ExpiresAt)) {
			rank = done
		}
		list = append(list, candidate{"presence/" + k, rank, p.Updated})
	}
	slices.SortFunc(list, func(a, b candidate) int {
		if a.rank != b.rank {
			return a.rank - b.rank
		}
		if c := a.updated.Compare(b.updated); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	n := 0
	for _, c := range list {
		if n == excess {
			break
		}
		if c.id == protect {
			continue
		}
		kind, key, _ := strings.Cut(c.id, "/")
		switch kind {
		case "call":
			delete(s.Calls, key)
		case "meeting":
			delete(s.Meetings, key)
		case "presence":
			delete(s.Presence, key)
		}
		n++
	}
	return n
}

// claimID names the claim ev is about, as Evict knows it.
func claimID(ev adapters.Event) string {
	switch ev.Type {
	case adapters.TypeCall:
		return "call/" + ev.Source + "/" + ev.CallID
	case adapters.TypeMeeting:
		if ev.State == adapters.MeetingResync {
			return "" // it makes no claim
		}
		return "meeting/" + ev.Source + "/" + meetingKey(ev)
	case adapters.TypePresence:
		return "presence/" + ev.Source
	}
	return ""
}
