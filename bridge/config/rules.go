package config

import (
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// Rules turns the presence configuration into the rules user states are
// derived by.
func (c *Config) Rules() (state.Rules, error) {
	m := c.Presence.Mapping
	rules := state.Rules{
		MeetingShowAs:   m.MeetingShowAs,
		Priority:        c.Presence.Priority,
		MaxCallDuration: c.Presence.MaxCallDuration,
		MaxClaims:       c.Presence.MaxClaims,
		SourceLapse:     map[string]time.Duration{},
	}
	for _, s := range c.Sources {
		if s.Lapse > 0 {
			rules.SourceLapse[s.Name] = s.Lapse
		}
	}
	for _, entry := range []struct {
		value string
		into  **adapters.Pair
	}{{m.Call, &rules.Call}, {m.ConferenceCall, &rules.ConferenceCall}, {m.Ringing, &rules.Ringing}, {m.Meeting, &rules.Meeting}} {
		if entry.value == "" {
			continue
		}
		p, err := ParsePair(entry.value)
		if err != nil {
			return rules, err
		}
		*entry.into = &p
	}
	return rules, nil
}
