// Package outputs holds what every output of Teams presence shares: the
// presence view the watcher keeps per person, the change it publishes when
// a view changes, the contract an output implements, and the rule that
// keeps a source's own claims from being echoed back to it. One package
// per output type lives beside it (outputs/nats, ...), as adapters/<type>
// do for sources.
package outputs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The origins of a change.
const (
	// OriginBridge is a presence that the bridge's own session explains:
	// the bridge holds a session for the person whose pair is Graph's
	// aggregate.
	OriginBridge = "bridge"
	// OriginTeams is anything else: a Teams call or meeting, a status the
	// person set, another application.
	OriginTeams = "teams"
)

// ChangeType is the type of every published change (CloudEvents type,
// Standard Webhooks type).
const ChangeType = "presence.teams.changed"

// View is a person's Teams presence as the watcher last saw it; the
// lookup API answers with it and every change carries it.
type View struct {
	// User is how the bridge knows the person: their UPN when known, else
	// their object id.
	User string `json:"user"`
	// ID is the person's Entra object id.
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	// Availability and Activity are Graph's aggregate pair.
	Availability string `json:"availability"`
	Activity     string `json:"activity"`
	// Origin is OriginBridge or OriginTeams.
	Origin string `json:"origin"`
	// Sources are, for OriginBridge, the sources whose claims made the
	// bridge's session; empty otherwise.
	Sources []string `json:"sources,omitempty"`
	// Since is when the watcher first saw this pair; SeenAt when it last
	// read it.
	Since  time.Time `json:"since"`
	SeenAt time.Time `json:"seenAt"`
	// SequenceNumber is Graph's version of the presence; it sorts as a
	// string.
	SequenceNumber string `json:"sequenceNumber"`
}

// Pair is an availability and activity.
type Pair struct {
	Availability string `json:"availability"`
	Activity     string `json:"activity"`
}

// Change is one observed change of a person's view.
type Change struct {
	// ID is stable per change (the same change observed twice, by one
	// bridge or after a takeover, has the same id), so that receivers can
	// de-duplicate.
	ID string `json:"-"`
	View
	// Previous is the pair seen before, or nil for the first sighting.
	Previous *Pair `json:"previous,omitempty"`
}

// ChangeID returns the stable id of the change of the person id in tenant
// to the presence with sequenceNumber.
func ChangeID(tenant, id, sequenceNumber string) string {
	return tenant + "/" + id + "/" + sequenceNumber
}

// MaxField is the longest text a change may carry in any one field
// (user, id, tenant, availability, activity, a source, sequenceNumber).
const MaxField = 1024

// Check reports what keeps c from being published: an id, a tenant, the
// person's object id and a sequenceNumber are required, the origin must be
// known, and every text must be valid UTF-8 of at most MaxField bytes.
func (c Change) Check() error {
	for _, f := range []struct{ name, value string }{
		{"id", c.ID}, {"tenant", c.Tenant}, {"user id", c.View.ID}, {"sequenceNumber", c.SequenceNumber},
	} {
		if f.value == "" {
			return fmt.Errorf("change has no %s", f.name)
		}
	}
	if c.Origin != OriginBridge && c.Origin != OriginTeams {
		return fmt.Errorf("change has origin %q, want %s or %s", c.Origin, OriginBridge, OriginTeams)
	}
	texts := []string{c.ID, c.User, c.View.ID, c.Tenant, c.Availability, c.Activity, c.SequenceNumber}
	texts = append(texts, c.Sources...)
	if c.Previous != nil {
		texts = append(texts, c.Previous.Availability, c.Previous.Activity)
	}
	for _, s := range texts {
		if len(s) > MaxField || !utf8.ValidString(s) {
			return fmt.Errorf("change %q has a field that is not valid UTF-8 of at most %d bytes", truncate(c.ID), MaxField)
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// ErrClosed is what Publish returns after Close.
var ErrClosed = errors.New("output is closed")

// Output publishes changes somewhere. Publish is called for one person's
// changes in order, newest last; an error means the change was not taken
// and will be offered again (the newest per person). Implementations must
// be safe for concurrent use across people. Offered the same change
// (same ID) again, an output does not deliver it a second time. After
// Close, which waits for publishes under way, Publish returns an error
// wrapping ErrClosed.
type Output interface {
	Publish(ctx context.Context, c Change) error
	Close() error
}

// Forgetter is an Output that publishes state which stays until removed
// (sip). Forget says the person tenant/id left the watch (removed from
// the directory or group, or no longer named): the output removes what it
// published for them and forgets them, so that a later change publishes
// them from scratch. The publisher calls it in order with the person's
// changes and does not retry it: a failure is the output's to log, and
// what it published lapses on its own.
type Forgetter interface {
	Forget(ctx context.Context, tenant, id string) error
}

// Filter is the part of an output's configuration every output shares.
type Filter struct {
	// Tenants limits the output to these tenants; empty means all.
	Tenants []string
	// SkipSources: a change of origin bridge whose sources include one of
	// these is not published. Nil means skip every bridge change; an empty
	// (non-nil) list publishes every change, echoes included.
	SkipSources []string
	// Pairs limits the pairs the output sends to those matching one of
	// these patterns (see MatchPair); empty sends every pair.
	Pairs []string
	// People limits, per person (their UPN or object id, in lower case),
	// the pairs sent about them, on top of Pairs. An empty list sends
	// nothing at all about the person.
	People map[string][]string
}

// Cleared is the pair an output sends in place of a pair its filter does
// not send, when the pair before it was sent or is unknown: so that no
// receiver is left showing a person busy who no longer is.
var Cleared = Pair{Availability: "Available", Activity: "Available"}

// Skips reports whether f keeps c from its output.
func (f Filter) Skips(c Change) bool {
	_, ok := f.Apply(c)
	return !ok
}

// Apply returns the change the output sends for c, and false when it
// sends none. A change of a tenant not served, or echoing a skipped
// source, is not sent. A change to a pair the output does not send (Pairs,
// People) is sent as Cleared when the previous pair was sent or is
// unknown, and not sent at all when the previous pair was not sent
// either; the change keeps its id and previous pair.
func (f Filter) Apply(c Change) (Change, bool) {
	if len(f.Tenants) > 0 && !slices.Contains(f.Tenants, c.Tenant) {
		return c, false
	}
	if c.Origin == OriginBridge {
		if f.SkipSources == nil {
			return c, false
		}
		for _, s := range c.Sources {
			if slices.Contains(f.SkipSources, s) {
				return c, false
			}
		}
	}
	person, listed := f.People[strings.ToLower(c.User)]
	if !listed {
		person, listed = f.People[strings.ToLower(c.View.ID)]
	}
	if listed && len(person) == 0 {
		return c, false
	}
	sent := func(p Pair) bool {
		return (len(f.Pairs) == 0 || matchAny(f.Pairs, p)) && (!listed || matchAny(person, p))
	}
	if sent(Pair{c.Availability, c.Activity}) {
		return c, true
	}
	if c.Previous != nil && !sent(*c.Previous) {
		return c, false
	}
	c.Availability, c.Activity = Cleared.Availability, Cleared.Activity
	return c, true
}

func matchAny(patterns []string, p Pair) bool {
	for _, pattern := range patterns {
		if MatchPair(pattern, p) {
			return true
		}
	}
	return false
}

// MatchPair reports whether p matches pattern, "Availability/Activity"
// where either half may be "*" for any value (DoNotDisturb/*, Busy/InACall,
// */InAMeeting). Values compare as Graph spells them, case and all.
func MatchPair(pattern string, p Pair) bool {
	a, b, _ := strings.Cut(pattern, "/")
	return (a == "*" || a == p.Availability) && (b == "*" || b == p.Activity)
}

// CheckPairPattern reports what is wrong with a pattern of Filter.Pairs:
// it must be two halves around one "/", each "*" or letters only.
func CheckPairPattern(pattern string) error {
	a, b, ok := strings.Cut(pattern, "/")
	if !ok || !pairHalf(a) || !pairHalf(b) {
		return fmt.Errorf("must be Availability/Activity, either half letters or *, such as DoNotDisturb/* or Busy/InACall (got %q)", truncate(pattern))
	}
	return nil
}

func pairHalf(s string) bool {
	if s == "*" {
		return true
	}
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

// Health is what an output that delivers on its own (with a queue and
// retries of its own, as webhook does) reports beyond what the publisher
// counts.
type Health struct {
	// Deliveries counts tries by outcome (delivered, retried,
	// dead_lettered, dropped).
	Deliveries map[string]uint64
	// Queued is how many people have a change waiting; Oldest how long
	// the one waiting longest has waited.
	Queued int
	Oldest time.Duration
	// Healthy is false from a failed try to the next that succeeds.
	Healthy bool
	// Responses counts the receiver's answers by class, for outputs that
	// report them (sip: 2xx, 4xx, 5xx, 6xx, none); nil for the others.
	Responses map[string]uint64
	// Disabled says the endpoint turned the output off (410 Gone).
	Disabled bool
	// LastError is the last failure, without secrets.
	LastError   string
	LastErrorAt time.Time
}

// Reporter is an Output that reports its Health.
type Reporter interface {
	Health() Health
}
