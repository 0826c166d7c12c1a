// Package history keeps a short, bounded history per user ("why is Alice
// busy?"): each event that touched the user and each decision a writer took
// for them. It lives in a JetStream stream, one subject per tenant and
// user with a per-subject message limit and a maximum age, so every bridge
// reads the same history and nothing grows without bound.
//
// Recording never holds up the pipeline: Record only puts the entry in a
// bounded buffer that one goroutine publishes from, and drops it (counted
// by Dropped) when the buffer is full.
package history

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/graphclient"
)

// Entry is one line of a user's history: an event (Source and ID set), a
// writer's decision (Decision set) or a change of the person's presence in
// Teams the watcher handed over (Origin set).
type Entry struct {
	// At is when the bridge took the event in or took the decision.
	At time.Time `json:"at"`

	// An event's fields, from the canonical event.
	Source     string     `json:"source,omitempty"`
	ID         string     `json:"id,omitempty"`
	Type       string     `json:"type,omitempty"`
	State      string     `json:"state,omitempty"`
	OccurredAt *time.Time `json:"occurredAt,omitempty"`
	// Outcome is what became of the event: one of the Outcome constants.
	Outcome string `json:"outcome,omitempty"`
	// Reason says why an event changed nothing (OutcomeIgnored,
	// OutcomeRefused): one of the Reason constants.
	Reason string `json:"reason,omitempty"`

	// Origin is a Teams change's: "bridge" when the bridge's own session
	// explains it, "teams" otherwise (outputs.Origin*).
	Origin string `json:"origin,omitempty"`
	// Decision is a writer's: one of the Decision constants.
	Decision string `json:"decision,omitempty"`
	// Pair is the session set ("Busy/InACall"), empty for a clear; for a
	// Teams change, the presence Teams shows.
	Pair string `json:"pair,omitempty"`
	// Until is when a waiting call will be tried again (DecisionRetry).
	Until *time.Time `json:"until,omitempty"`
	// Sources are, for a Teams change of origin bridge, the sources whose
	// claims made the session; SequenceNumber is Graph's version of the
	// presence.
	Sources        []string `json:"sources,omitempty"`
	SequenceNumber string   `json:"sequenceNumber,omitempty"`

	// Detail says why, in a few words: the state stage's or Graph's error.
	Detail string `json:"detail,omitempty"`
	// RequestID identifies a Graph call that failed to Microsoft support.
	RequestID string `json:"requestId,omitempty"`
}

// What became of an event (Entry.Outcome).
const (
	OutcomeApplied = "applied" // taken into the user's state
	OutcomeIgnored = "ignored" // changed nothing; Reason says why
	OutcomeRetry   = "retry"   // not stored yet; tried again later (Detail says why)
	OutcomeRefused = "refused" // never applied: dead-lettered (Reason, Detail)
)

// Why an event changed nothing (Entry.Reason).
const (
	ReasonOlder       = "older"        // older than what the state knows of the same call, meeting or source
	ReasonDuplicate   = "duplicate"    // the same claim at the same time and sequence was known
	ReasonSuperseded  = "superseded"   // a later event of the same batch replaced it before it was stored
	ReasonUnknownUser = "unknown_user" // nobody in the directory has that name
	ReasonRefused     = "refused"      // refused for another reason (Detail)
)

// The writer's decisions.
const (
	DecisionSet       = "set"        // setPresence answered
	DecisionClear     = "clear"      // clearPresence answered
	DecisionKeepAlive = "keep_alive" // a session refreshed before it expires
	DecisionCoalesced = "coalesced"  // a queued change no longer needed a call
	DecisionRefused   = "refused"    // Graph refused the change for good (dead letter)
	DecisionRetry     = "retry"      // the call failed and waits until Until
	DecisionManual    = "manual"     // a status set by hand shows; the bridge leaves it
)

// Recorder takes entries for a user's history. Implementations must not
// block.
type Recorder interface {
	Record(tenant, userID string, e Entry)
}

// Record hands e to r, doing nothing when r is nil (history off).
func Record(r Recorder, tenant, userID string, e Entry) {
	if r != nil {
		r.Record(tenant, userID, e)
	}
}

// Decision returns the entry of a writer's decision about pair at at; a
// non-nil err fills Detail and, for Graph's errors, RequestID.
func Decision(decision string, pair *adapters.Pair, err error, at time.Time) Entry {
	e := Entry{At: at.UTC(), Decision: decision}
	if pair != nil {
		e.Pair = pair.String()
	}
	if err != nil {
		e.Detail = err.Error()
		var gerr *graphclient.Error
		if errors.As(err, &gerr) {
			e.RequestID = gerr.RequestID
			if e.RequestID == "" {
				e.RequestID = gerr.ClientRequestID
			}
		}
	}
	return e
}

// Sent returns the entry of a session set to pair, or cleared when pair is
// nil, at at.
func Sent(pair *adapters.Pair, at time.Time) Entry {
	if pair == nil {
		return Decision(DecisionClear, nil, nil, at)
	}
	return Decision(DecisionSet, pair, nil, at)
}

// Retry returns the entry of a Graph call that failed at at and waits
// until until (a retry delay, a 429's pause, an open breaker, a refused
// tenant's next probe).
func Retry(until time.Time, err error, at time.Time) Entry {
	e := Decision(DecisionRetry, nil, err, at)
	until = until.UTC()
	e.Until = &until
	return e
}

// TeamsChange returns the entry of a change of the person's Teams
// presence to pair, seen at at, with its origin, sources and Graph's
// sequenceNumber.
func TeamsChange(origin string, pair adapters.Pair, sources []string, sequence string, at time.Time) Entry {
	return Entry{At: at.UTC(), Origin: origin, Pair: pair.String(), Sources: slices.Clone(sources), SequenceNumber: sequence}
}

// maxSources bounds the sources an entry keeps.
const maxSources = 16

// Defaults of Options.
const (
	DefaultStream     = "PRESENCE_HISTORY"
	DefaultMaxPerUser = 50
	DefaultMaxAge     = 24 * time.Hour
	DefaultMaxTotal   = 100_000
	DefaultBuffer     = 4096
	DefaultMaxRate    = 500
)

// Options configure a Store.
type Options struct {
	Stream   string // default DefaultStream
	Replicas int
	// MaxPerUser is how many entries are kept per user, MaxAge for how
	// long.
	MaxPerUser int
	MaxAge     time.Duration
	// MaxTotal caps the entries of all users together, the oldest going
	// first, so that the stream stays small beside the events and states
	// sharing the JetStream store (entries are at most 4 KiB, most a few
	// hundred bytes).
	MaxTotal int64
	// Buffer is how many entries may wait to be published before new
	// ones are dropped.
	Buffer int
	// MaxRate caps the entries recorded per second (DefaultMaxRate when
	// zero); more are dropped and counted, so that history never costs
	// the event path more than this many writes per second.
	MaxRate int
	Log     *slog.Logger
}

// Store is a Recorder keeping histories in a JetStream stream.
type Store struct {
	js      jetstream.JetStream
	opts    Options
	rate    *rate.Limiter
	entries chan published
	dropped atomic.Uint64
	done    chan struct{}
	close   sync.Once
}

type published struct {
	subject string
	data    []byte
}

var _ Recorder = (*Store)(nil)

// subjectPrefix begins every history subject.
const subjectPrefix = "presence.history."

// Open creates or updates the history stream and starts publishing.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Store, error) {
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.MaxPerUser <= 0 {
		opts.MaxPerUser = DefaultMaxPerUser
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.MaxTotal <= 0 {
		opts.MaxTotal = DefaultMaxTotal
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.MaxRate <= 0 {
		opts.MaxRate = DefaultMaxRate
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              opts.Stream,
		Description:       "Per-user history: events and writer decisions.",
		Subjects:          []string{subjectPrefix + ">"},
		MaxMsgsPerSubject: int64(opts.MaxPerUser),
		MaxAge:            opts.MaxAge,
		MaxMsgs:           opts.MaxTotal,
		MaxMsgSize:        maxEntrySize,
		Discard:           jetstream.DiscardOld,
		Replicas:          opts.Replicas,
		Storage:           jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("history stream %s: %w", opts.Stream, err)
	}
	s := &Store{js: js, opts: opts, rate: rate.NewLimiter(rate.Limit(opts.MaxRate), opts.MaxRate), entries: make(chan published, opts.Buffer), done: make(chan struct{})}
	go s.publish()
	return s, nil
}

// maxEntrySize bounds one encoded entry; longer details are cut.
const (
	maxEntrySize = 4 << 10
	maxDetail    = 1024
)

// Subject is the subject of a user's history: the tenant (configured, so
// bounded) and a hash of the user's object id, so that no sender-chosen
// string ever becomes a subject token.
func Subject(tenant, userID string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(userID)))
	return subjectPrefix + hex.EncodeToString([]byte(strings.ToLower(tenant))) + "." + hex.EncodeToString(sum[:16])
}

// Record queues e for the user's history, or drops it when entries come
// faster than MaxRate, the buffer is full or the store is closed.
func (s *Store) Record(tenant, userID string, e Entry) {
	if !s.rate.Allow() {
		s.dropped.Add(1)
		return
	}
	data, ok := encode(e)
	if !ok {
		s.dropped.Add(1)
		return
	}
	select {
	case <-s.done:
		s.dropped.Add(1)
		return
	default:
	}
	select {
	case s.entries <- published{subject: Subject(tenant, userID), data: data}:
	default:
		s.dropped.Add(1)
	}
}

// encode returns e as JSON of at most maxEntrySize bytes, cutting long
// strings (and more of them when JSON escaping makes them grow), or false
// when it can not fit.
func encode(e Entry) ([]byte, bool) {
	for _, limit := range []int{maxDetail, maxDetail / 8} {
		fields := []*string{&e.Source, &e.ID, &e.Type, &e.State, &e.Outcome, &e.Reason, &e.Origin, &e.Decision, &e.Pair, &e.SequenceNumber, &e.RequestID}
		if len(e.Sources) > maxSources {
			e.Sources = e.Sources[:maxSources]
		}
		e.Sources = slices.Clone(e.Sources)
		for i := range e.Sources {
			fields = append(fields, &e.Sources[i])
		}
		for _, f := range fields {
			*f = cut(*f, min(limit, 256))
		}
		e.Detail = cut(e.Detail, limit)
		data, err := json.Marshal(e)
		if err == nil && len(data) <= maxEntrySize {
			return data, true
		}
	}
	return nil, false
}

// cut shortens s to at most n bytes, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// Dropped counts the entries dropped because the buffer was full or NATS
// refused them.
func (s *Store) Dropped() uint64 { return s.dropped.Load() }

func (s *Store) publish() {
	var lastErr string
	for {
		select {
		case <-s.done:
			return
		case p := <-s.entries:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := s.js.Publish(ctx, p.subject, p.data)
			cancel()
			if err != nil {
				s.dropped.Add(1)
				if err.Error() != lastErr {
					s.opts.Log.Warn("history entry not stored", "err", err)
					lastErr = err.Error()
				}
			} else {
				lastErr = ""
			}
		}
	}
}

// Close stops publishing; entries still buffered are dropped. It is
// idempotent.
func (s *Store) Close() { s.close.Do(func() { close(s.done) }) }

// List returns the user's history in the order it was recorded, oldest
// first.
func (s *Store) List(ctx context.Context, tenant, userID string) ([]Entry, error) {
	stream, err := s.js.Stream(ctx, s.opts.Stream)
	if err != nil {
		return nil, fmt.Errorf("history stream: %w", err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{Subject(tenant, userID)},
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	var out []Entry
	for len(out) < s.opts.MaxPerUser {
		batch, err := cons.FetchNoWait(s.opts.MaxPerUser - len(out))
		if err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			var e Entry
			if json.Unmarshal(msg.Data(), &e) == nil {
				out = append(out, e)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("read history: %w", err)
		}
		if n == 0 {
			break
		}
	}
	return out, nil
}
