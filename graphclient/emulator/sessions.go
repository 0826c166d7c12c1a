package emulator

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// DefaultTeamsSessionID is the session id SetTeamsSession uses: the user's
// simulated Teams desktop client.
const DefaultTeamsSessionID = "teams-desktop"

// Session describes a presence session for SetSession.
type Session struct {
	// ID names the session; a Teams session defaults to "teams-desktop",
	// an app session to its AppID.
	ID string `json:"sessionId"`
	// Kind is KindTeams (the default) or KindApp.
	Kind string `json:"kind"`
	// AppID is the application of an app session.
	AppID string `json:"appId"`
	// Availability and Activity: any values Graph shows for a Teams
	// session, one of setPresence's five pairs for an app session.
	Availability string `json:"availability"`
	Activity     string `json:"activity"`
	// Lifetime is how long the session lasts without a refresh; 0 means
	// until it is ended for a Teams session, PT5M for an app session.
	Lifetime time.Duration `json:"-"`
}

// SetTeamsSession simulates the user's Teams desktop client showing
// availability and activity (any values Graph shows, such as
// Busy/InAMeeting) until EndSession(user, DefaultTeamsSessionID) or
// Reset. Teams client sessions do not fade: their client keeps them alive.
func (e *Emulator) SetTeamsSession(user, availability, activity string) error {
	return e.SetSession(user, Session{ID: DefaultTeamsSessionID, Kind: KindTeams, Availability: availability, Activity: activity})
}

// SetSession creates or refreshes a session of user (object id or UPN):
// a simulated Teams client (desktop, mobile, web: give each its own ID) or
// an application session as setPresence would make it.
func (e *Emulator) SetSession(user string, s Session) error {
	if s.Kind == "" {
		s.Kind = KindTeams
	}
	p := Pair{s.Availability, s.Activity}
	switch s.Kind {
	case KindTeams:
		if s.ID == "" {
			s.ID = DefaultTeamsSessionID
		}
		if !slices.Contains(availabilities, p.Availability) || !slices.Contains(activities, p.Activity) {
			return fmt.Errorf("session %s: unknown availability or activity %s", s.ID, p)
		}
	case KindApp:
		if s.ID == "" {
			s.ID = s.AppID
		}
		if s.ID == "" {
			return errors.New("app session: an id or app id is required")
		}
		if !slices.Contains(appPairs, p) {
			return fmt.Errorf("app session %s: %s is not a pair setPresence accepts", s.ID, p)
		}
		if s.Lifetime == 0 {
			s.Lifetime = defaultExpiration
		}
	default:
		return fmt.Errorf("session kind %q: want %q or %q", s.Kind, KindTeams, KindApp)
	}
	if s.Lifetime < 0 || s.Lifetime > maxDuration {
		return fmt.Errorf("session %s: lifetime %s out of range", s.ID, s.Lifetime)
	}
	return e.changeUser(user, func(u *userState, now time.Time) {
		st := &sessionState{id: s.ID, kind: s.Kind, appID: s.AppID, pair: p, refreshed: now}
		if s.Lifetime > 0 {
			st.expires = now.Add(s.Lifetime)
		}
		u.sessions[s.ID] = st
	})
}

// changeUser runs change on user (object id or UPN) at the emulator's
// time, holding e.mu, with the user's state brought up to that time
// before and settled after.
func (e *Emulator) changeUser(user string, change func(u *userState, now time.Time)) error {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.lookup(user)
	if u == nil {
		return errNoUser(user)
	}
	u.advance(now)
	change(u, now)
	u.settle(now)
	return nil
}

// EndSession ends a session of user at once, as a Teams client signing out
// or clearPresence would; it reports whether there was one.
func (e *Emulator) EndSession(user, sessionID string) (bool, error) {
	var ok bool
	err := e.changeUser(user, func(u *userState, _ time.Time) {
		_, ok = u.sessions[sessionID]
		delete(u.sessions, sessionID)
	})
	return ok, err
}

// SetPreferred simulates a status the user picked by hand in Teams (a
// user-preferred presence): one of the six preferred pairs, for lifetime,
// or Graph's default (1 day for Busy and DoNotDisturb, 7 days for the
// others) when lifetime is 0. It shows only while the user has a session.
func (e *Emulator) SetPreferred(user, availability, activity string, lifetime time.Duration) error {
	p := Pair{availability, activity}
	if !slices.Contains(preferredPairs, p) {
		return fmt.Errorf("preferred presence %s is not one of the six preferred pairs", p)
	}
	if lifetime == 0 {
		lifetime = preferredLifetime(p)
	}
	if lifetime < 0 || lifetime > maxDuration {
		return fmt.Errorf("preferred presence: lifetime %s out of range", lifetime)
	}
	return e.changeUser(user, func(u *userState, now time.Time) {
		u.preferred = &preferredState{pair: p, set: now, expires: now.Add(lifetime)}
	})
}

// ClearPreferred removes the user's preferred presence.
func (e *Emulator) ClearPreferred(user string) error {
	return e.changeUser(user, func(u *userState, _ time.Time) { u.preferred = nil })
}
