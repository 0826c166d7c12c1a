package emulator

import (
	"fmt"
	"time"
)

// SetTeamsSession simulates a Teams client session for a user; a zero
// lifetime keeps it for a day.
func (e *Emulator) SetTeamsSession(user, availability, activity string, lifetime time.Duration) error {
	if lifetime <= 0 {
		lifetime = 24 * time.Hour
	}
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.lookup(user)
	if u == nil {
		return fmt.Errorf("no user %q", user)
	}
	u.sessions["teams-client"] = &session{id: "teams-client", kind: "teams", availability: availability, activity: activity, refreshed: now, expires: now.Add(lifetime)}
	u.view(now)
	return nil
}

// SetPreferred simulates a status the user set by hand in Teams; a zero
// lifetime uses Graph's defaults.
func (e *Emulator) SetPreferred(user, availability, activity string, lifetime time.Duration) error {
	if lifetime <= 0 {
		lifetime = 7 * 24 * time.Hour
		if availability == "DoNotDisturb" || availability == "Busy" {
			lifetime = 24 * time.Hour
		}
	}
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.lookup(user)
	if u == nil {
		return fmt.Errorf("no user %q", user)
	}
	u.preferred = &preferred{availability: availability, activity: activity, expires: now.Add(lifetime)}
	u.view(now)
	return nil
}
