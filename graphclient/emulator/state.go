package emulator

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// userState is what the emulator holds for one directory user. Every
// field is guarded by Emulator.mu.
type userState struct {
	user      User
	tenant    string // lower-case tenant id
	sessions  map[string]*sessionState
	preferred *preferredState
	events    map[string]CalendarEvent
	status    *statusMessageState
	location  workLocationState

	// shown is the aggregate last evaluated, seq its sequence number, and
	// evaluated the instant it was evaluated for.
	shown     Pair
	seq       uint64
	evaluated time.Time
	counter   *uint64 // the emulator-wide sequence counter
}

func newUserState(u User, tenant string, counter *uint64, now time.Time) *userState {
	*counter++
	return &userState{
		user: u, tenant: tenant, sessions: map[string]*sessionState{}, events: map[string]CalendarEvent{},
		shown: offline, seq: *counter, evaluated: now, counter: counter,
	}
}

// advance brings the user's state to now. Presence is computed lazily, so
// advance walks through every instant since the last evaluation at which
// a session faded or expired, and gives each visible change its own
// sequence number even when nobody looked in between.
func (u *userState) advance(now time.Time) {
	if now.After(u.evaluated) {
		var stops []time.Time
		for _, s := range u.sessions {
			for _, t := range s.fadeTimes() {
				if t.After(u.evaluated) && !t.After(now) {
					stops = append(stops, t)
				}
			}
		}
		if p := u.preferred; p != nil && p.expires.After(u.evaluated) && !p.expires.After(now) {
			stops = append(stops, p.expires)
		}
		slices.SortFunc(stops, func(a, b time.Time) int { return a.Compare(b) })
		for _, t := range stops {
			u.settle(t)
		}
	}
	u.settle(now)
}

// settle drops what has ended by at, re-aggregates and counts a visible
// change.
func (u *userState) settle(at time.Time) {
	for id, s := range u.sessions {
		if s.expired(at) {
			delete(u.sessions, id)
		}
	}
	if u.preferred != nil && !at.Before(u.preferred.expires) {
		u.preferred = nil
	}
	if p := aggregate(u.sessionList(), u.preferred, at); p != u.shown {
		*u.counter++
		u.shown, u.seq = p, *u.counter
	}
	u.evaluated = at
}

func (u *userState) sessionList() []*sessionState {
	list := make([]*sessionState, 0, len(u.sessions))
	for _, s := range u.sessions {
		list = append(list, s)
	}
	return list
}

// sequenceNumber is the presence's version stamp: fixed width, so that
// later stamps sort after earlier ones as strings.
func (u *userState) sequenceNumber() string { return fmt.Sprintf("C%019d", u.seq) }

// SessionView is one presence session as the admin API and Presence show
// it, with the pair it shows now (after fading).
type SessionView struct {
	SessionID       string     `json:"sessionId"`
	Kind            string     `json:"kind"`
	AppID           string     `json:"appId,omitempty"`
	Availability    string     `json:"availability"`
	Activity        string     `json:"activity"`
	ExpiresAt       *time.Time `json:"expiresAt"`
	LastRefreshedAt time.Time  `json:"lastRefreshedAt"`
}

// PreferredView is a user-preferred presence.
type PreferredView struct {
	Availability string    `json:"availability"`
	Activity     string    `json:"activity"`
	SetAt        time.Time `json:"setAt"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

// PresenceView is a user's aggregated presence, its sessions and its
// preferred presence.
type PresenceView struct {
	ID                string         `json:"id"`
	UserPrincipalName string         `json:"userPrincipalName"`
	Availability      string         `json:"availability"`
	Activity          string         `json:"activity"`
	SequenceNumber    string         `json:"sequenceNumber"`
	Sessions          []SessionView  `json:"sessions"`
	Preferred         *PreferredView `json:"preferred,omitempty"`
	// StatusMessage is the user's live status message, nil when there is
	// none or it has expired.
	StatusMessage *StatusMessageView `json:"statusMessage"`
	// WorkLocation is the aggregated work location.
	WorkLocation WorkLocationView `json:"workLocation"`
}

// view returns the user's presence at now; the caller holds Emulator.mu.
func (u *userState) view(now time.Time) PresenceView {
	u.advance(now)
	v := PresenceView{
		ID: u.user.ID, UserPrincipalName: u.user.UserPrincipalName,
		Availability: u.shown.Availability, Activity: u.shown.Activity,
		SequenceNumber: u.sequenceNumber(), Sessions: []SessionView{},
	}
	for _, s := range u.sessions {
		p := s.effective(now)
		sv := SessionView{SessionID: s.id, Kind: s.kind, AppID: s.appID, Availability: p.Availability, Activity: p.Activity, LastRefreshedAt: s.refreshed}
		if !s.expires.IsZero() {
			exp := s.expires
			sv.ExpiresAt = &exp
		}
		v.Sessions = append(v.Sessions, sv)
	}
	sort.Slice(v.Sessions, func(i, j int) bool { return v.Sessions[i].SessionID < v.Sessions[j].SessionID })
	if p := u.preferred; p != nil {
		v.Preferred = &PreferredView{Availability: p.pair.Availability, Activity: p.pair.Activity, SetAt: p.set, ExpiresAt: p.expires}
	}
	v.StatusMessage = u.status.view(now)
	v.WorkLocation = u.location.view()
	return v
}

// lookup finds a user by object id, UPN or mail, case-insensitively; the
// caller holds Emulator.mu.
func (e *Emulator) lookup(idOrUPN string) *userState {
	key := strings.ToLower(strings.TrimSpace(idOrUPN))
	if u, ok := e.users[key]; ok {
		return u
	}
	if id, ok := e.upns[key]; ok {
		return e.users[id]
	}
	return nil
}

// errNoUser is returned by the Go controls for an unknown user.
type errNoUser string

func (e errNoUser) Error() string { return fmt.Sprintf("no user %q", string(e)) }
