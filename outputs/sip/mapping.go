package sip

import (
	"fmt"
	"slices"
	"strings"

	"github.com/presence-bridge/presence-bridge/outputs"
)

// Rule is what one Teams pair becomes in SIP: the PIDF basic status, an
// RPID activity, whether a dialog is published as confirmed, and a note.
type Rule struct {
	// Basic is open or closed.
	Basic string `yaml:"basic"`
	// Activity is an RPID activity (RFC 4480), such as on-the-phone,
	// meeting, busy or away; empty for none.
	Activity string `yaml:"activity"`
	// Dialog publishes one confirmed dialog (Event: dialog) while the
	// pair holds, so that busy-lamp keys light.
	Dialog bool `yaml:"dialog"`
	// Note is the PIDF note; empty means the pair, as "Busy, InACall".
	Note string `yaml:"note"`
}

// DefaultMapping is the table of Teams pairs: a key is an availability
// ("Away", any activity) or availability/activity ("Busy/InACall"), the
// more specific winning. Configuration (`mapping:`) replaces entries.
func DefaultMapping() map[string]Rule {
	return map[string]Rule{
		"Available":               {Basic: "open"},
		"AvailableIdle":           {Basic: "open"},
		"Busy":                    {Basic: "open", Activity: "busy"},
		"BusyIdle":                {Basic: "open", Activity: "busy"},
		"Busy/InACall":            {Basic: "open", Activity: "on-the-phone", Dialog: true},
		"Busy/InAConferenceCall":  {Basic: "open", Activity: "on-the-phone", Dialog: true},
		"Busy/InAMeeting":         {Basic: "open", Activity: "meeting"},
		"DoNotDisturb":            {Basic: "open", Activity: "busy", Note: "Do not disturb"},
		"DoNotDisturb/Presenting": {Basic: "open", Activity: "busy", Dialog: true, Note: "Presenting"},
		"Away":                    {Basic: "open", Activity: "away"},
		"BeRightBack":             {Basic: "open", Activity: "away"},
		"Offline":                 {Basic: "closed"},
		"PresenceUnknown":         {Basic: "closed"},
	}
}

// fallback is the rule of a pair the table does not name.
var fallback = Rule{Basic: "open"}

// availabilities are Graph's availability values, the first part of a key.
var availabilities = []string{"Available", "AvailableIdle", "Away", "BeRightBack", "Busy", "BusyIdle", "DoNotDisturb", "Offline", "PresenceUnknown"}

// activities are the RPID activities of RFC 4480.
var activities = []string{"appointment", "away", "breakfast", "busy", "dinner", "holiday", "in-transit", "looking-for-work",
	"meal", "meeting", "on-the-phone", "performance", "permanent-absence", "playing", "presentation", "shopping", "sleeping",
	"spectator", "steering", "travel", "tv", "unknown", "vacation", "working", "worship"}

// Mapping is the table in use: the defaults with configured entries
// over them.
type Mapping map[string]Rule

// NewMapping returns DefaultMapping with overrides over it.
func NewMapping(overrides map[string]Rule) Mapping {
	m := DefaultMapping()
	for k, r := range overrides {
		m[k] = r
	}
	return m
}

// Rule returns the rule of a pair: availability/activity, else
// availability, else open with no activity.
func (m Mapping) Rule(p outputs.Pair) Rule {
	if r, ok := m[p.Availability+"/"+p.Activity]; ok {
		return r
	}
	if r, ok := m[p.Availability]; ok {
		return r
	}
	return fallback
}

// mappingProblems lists what is wrong with configured entries, each
// starting with its key.
func mappingProblems(overrides map[string]Rule) []string {
	var p []string
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r := overrides[k]
		at := "mapping." + k
		availability, activity, hasActivity := strings.Cut(k, "/")
		switch {
		case !slices.Contains(availabilities, availability):
			p = append(p, fmt.Sprintf("%s: %q is not a Teams availability (one of %s)", at, clipText(availability), strings.Join(availabilities, ", ")))
		case hasActivity && !word(activity):
			p = append(p, fmt.Sprintf("%s: the activity must be a word of letters (got %q)", at, clipText(activity)))
		}
		if r.Basic != "open" && r.Basic != "closed" {
			p = append(p, fmt.Sprintf("%s.basic: must be open or closed (got %q)", at, clipText(r.Basic)))
		}
		if r.Activity != "" && !slices.Contains(activities, r.Activity) {
			p = append(p, fmt.Sprintf("%s.activity: %q is not an RPID activity (RFC 4480)", at, clipText(r.Activity)))
		}
		if len(r.Note) > MaxNote {
			p = append(p, fmt.Sprintf("%s.note: longer than %d bytes", at, MaxNote))
		}
	}
	return p
}

func word(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func clipText(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
