// Package adapters defines the canonical presence event that every source is
// turned into, its validation and decoding, and the contract that each
// vendor adapter (one subpackage per source format) implements.
//
// Adapters depend on net/http only: never on Gin, NATS or Graph.
package adapters

import (
	"time"
)

// Event types.
const (
	TypeCall     = "call"
	TypeMeeting  = "meeting"
	TypePresence = "presence"
)

// Call states.
const (
	CallRinging = "ringing"
	CallActive  = "active"
	CallHeld    = "held"
	CallEnded   = "ended"
)

// AllCalls, as the call id of an event with state ended, names every call
// of the event's source for its user except those in ExceptCalls: the
// source's snapshot of what is still going on, which ends the rest. A
// source sends one when it starts watching anew and may not know what it
// (or a bridge before it) claimed earlier.
const AllCalls = "*"

// MaxExceptCalls bounds an AllCalls event's ExceptCalls.
const MaxExceptCalls = 256

// Meeting states.
const (
	MeetingStarted = "started"
	MeetingEnded   = "ended"
	// MeetingResync says the source has read the user's calendars in full
	// since occurredAt and said again everything that still stands: every
	// meeting it claimed for the user before occurredAt has ended. A
	// calendar poller sends it after its first full read, so that what a
	// previous poller claimed (before a restart or a takeover) and is gone
	// now ends. It carries no window and no showAs.
	MeetingResync = "resync"
)

// Presence states.
const (
	PresenceSet   = "set"
	PresenceClear = "clear"
)

// Limits on the canonical event.
const (
	MaxIDLength      = 256
	MaxUserLength    = 256
	MaxSourceLength  = 64
	MaxBatchSize     = 500
	MaxStringLength  = 256
	DefaultBodyLimit = 1 << 20
)

// Event is the canonical presence event: what one source says happened to
// one person. Its JSON form is camelCase like Graph's. Validate checks its
// validate tags by hand first (tagsHold) and asks the validator only when
// one fails: a tag changed here must be changed there too.
type Event struct {
	// ID is the idempotency key of the event at its source.
	ID string `json:"id" validate:"required,max=256,printascii"`
	// Source is the configured source name the event comes from.
	Source string `json:"source" validate:"required,max=64,sourcename"`
	// Type is call, meeting or presence.
	Type string `json:"type" validate:"required,oneof=call meeting presence"`
	// User names the person: UPN or email, Entra object id, or a directory
	// key such as "ext:1001" or "tel:+15551234567".
	User string `json:"user" validate:"required,max=256"`
	// OccurredAt is when it happened at the source.
	OccurredAt time.Time `json:"occurredAt" validate:"required"`
	// Sequence is an optional ordering hint from the source.
	Sequence int64 `json:"sequence,omitempty" validate:"gte=0"`

	// CallID names the call (a user can have several at once).
	CallID string `json:"callId,omitempty" validate:"required_if=Type call,max=256"`
	// State is ringing|active|held|ended for calls, started|ended|resync
	// for meetings and set|clear for presence.
	State string `json:"state,omitempty"`
	// Conference marks a call with more than two parties.
	Conference bool `json:"conference,omitempty"`
	// ExceptCalls, only with CallID AllCalls, are the calls of the source
	// still going on, which the event leaves alone.
	ExceptCalls []string `json:"exceptCalls,omitempty" validate:"max=256,dive,required,max=256"`

	// Start and End give a scheduled meeting window instead of a state.
	Start *time.Time `json:"start,omitempty"`
	End   *time.Time `json:"end,omitempty"`
	// ShowAs is the meeting's free/busy status.
	ShowAs string `json:"showAs,omitempty" validate:"omitempty,oneof=free tentative busy oof workingElsewhere unknown"`

	// Availability and Activity are an explicit settable presence pair.
	Availability string `json:"availability,omitempty"`
	Activity     string `json:"activity,omitempty"`

	// ExpiresAt is when the source's claim lapses unless renewed.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`

	// CalendarEvent, on a meeting event without state or window, names a
	// calendar event of the user that the apply stage reads from Graph
	// to learn the meeting (what a Graph calendar notification carries).
	CalendarEvent string `json:"calendarEvent,omitempty" validate:"omitempty,max=256,printascii"`
}

// Key is the event's idempotency key across sources.
func (e Event) Key() string { return e.Source + ":" + e.ID }

// Pair is a Graph presence pair (availability and activity).
type Pair struct {
	Availability string `json:"availability" yaml:"availability"`
	Activity     string `json:"activity" yaml:"activity"`
}

// String returns the pair as "Availability/Activity".
func (p Pair) String() string { return p.Availability + "/" + p.Activity }

// SamePair reports whether a and b name the same pair, nil meaning none.
func SamePair(a, b *Pair) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// SettablePairs are the pairs Graph's setPresence accepts for an
// application session.
var SettablePairs = []Pair{
	{"Available", "Available"},
	{"Busy", "InACall"},
	{"Busy", "InAConferenceCall"},
	{"Away", "Away"},
	{"DoNotDisturb", "Presenting"},
}

// Settable reports whether Graph's setPresence accepts p.
func (p Pair) Settable() bool {
	for _, s := range SettablePairs {
		if s == p {
			return true
		}
	}
	return false
}
