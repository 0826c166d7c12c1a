// Package apply consumes presence events from JetStream, resolves who they
// are about, hands them to an Applier and settles each message: Ack when
// applied, NakWithDelay when it may work later, Term with a dead-letter
// record when it never will.
//
// Messages are handled in lanes (lanes.go): each user's events in order,
// different users' side by side, so that a storm of events about one user
// does not hold up the others.
package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/identity"
	"github.com/presence-bridge/presence-bridge/bridge/internal/logthrottle"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// Applier makes events take effect, in order, for a resolved user, and
// says for each why it changed nothing ("" when it took effect); the state
// store's Take.
type Applier interface {
	Take(ctx context.Context, tenant, userID string, events ...state.Incoming) ([]string, error)
}

// Resolver turns an event's user (UPN, object id or directory key) into the
// user's object id in a tenant.
type Resolver interface {
	Resolve(ctx context.Context, tenant, user string) (string, error)
}

// DeadLetters stores what can never be applied.
type DeadLetters interface {
	PublishDeadLetter(ctx context.Context, d eventlog.DeadLetter) error
}

// Options configure a Worker.
type Options struct {
	// SubjectPrefix is the events' subject prefix; the next token names the
	// source.
	SubjectPrefix string
	// Tenants maps each configured source name to its tenant.
	Tenants map[string]string
	// Identity holds each source\'s identity hints.
	Identity    map[string]adapters.IdentityHints
	Resolver    Resolver
	Applier     Applier
	DeadLetters DeadLetters
	// CalendarReaders read, by source name, the calendar events that
	// source's events name (fetch.go).
	CalendarReaders map[string]CalendarReader
	// MaxFutureSkew bounds how far ahead of now an event's occurredAt may
	// be; zero means adapters.DefaultMaxFutureSkew.
	MaxFutureSkew time.Duration
	// MinDelay and MaxDelay bound the exponential redelivery backoff.
	MinDelay, MaxDelay time.Duration
	// Lanes is how many users' events are applied side by side (1 when
	// zero); LaneDepth bounds the messages waiting in one lane (1024 when
	// zero), beyond which a message is handed back for later.
	Lanes, LaneDepth int
	// AckWait is the consumer's ack wait: a message that waits in a lane
	// or is being handled for a third of it is marked in progress, so that
	// JetStream does not deliver it a second time meanwhile. Zero turns
	// that off.
	AckWait time.Duration
	Log     *slog.Logger
	// Count, when set, is told the outcome of every message, with the
	// source its subject names.
	Count func(source, outcome string)
	// Untimed, when set, is told of every event that can never reach
	// Graph, with why: state.ReasonOlder, state.ReasonDuplicate,
	// UntimedUnknownUser or UntimedRefused. (The writer reports the fate
	// of the events taken in.)
	Untimed func(outcome string)
	// History, when set, records each event in its user's history, with
	// what became of it and why it changed nothing when it did not.
	History history.Recorder
	// Now tells the time of history entries; nil means time.Now.
	Now func() time.Time
}

// Outcomes reported to Options.Untimed beside the state's reasons.
const (
	UntimedUnknownUser = "unknown_user" // dead-lettered: nobody to apply it to
	UntimedRefused     = "refused"      // dead-lettered for another reason
)

// Worker settles the events stream's messages.
type Worker struct {
	opts Options
	// deadLettered keeps a flood of dead letters for one source and
	// reason (events naming made-up users) to one warning per
	// deadLetterLogEvery.
	deadLettered *logthrottle.Throttle
	lanes        []*lane
	stop         chan struct{}
	done         sync.WaitGroup
	once         sync.Once
}

// New returns a Worker with its lanes running; Dispatch feeds them and
// Stop ends them.
func New(opts Options) *Worker {
	if opts.Count == nil {
		opts.Count = func(string, string) {}
	}
	if opts.Untimed == nil {
		opts.Untimed = func(string) {}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	opts.Lanes = max(opts.Lanes, 1)
	if opts.LaneDepth <= 0 {
		opts.LaneDepth = 1024
	}
	w := &Worker{opts: opts, stop: make(chan struct{}), deadLettered: logthrottle.New(deadLetterLogEvery)}
	w.startLanes()
	return w
}

// deadLetterLogEvery is how often, at most, dead letters of one source and
// reason are logged; the next line counts those left out.
const deadLetterLogEvery = 10 * time.Second

// Outcomes reported to Options.Count.
const (
	OutcomeApplied    = "applied"
	OutcomeRetry      = "retry"
	OutcomeDeadLetter = "dead_letter"
)

// Handle processes and settles one message.
func (w *Worker) Handle(msg jetstream.Msg) { w.handle(msg, decode(msg.Data())) }

// handle processes and settles a message already decoded.
func (w *Worker) handle(msg jetstream.Msg, d decoded) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t, in, err := w.prepare(ctx, msg, d)
	if err == nil {
		err = w.take(ctx, t, []state.Incoming{in})
	} else {
		w.record(t, in, "", err)
	}
	w.finish(ctx, msg, err)
}

// maxBatch bounds the messages a lane takes at once.
const maxBatch = 1024

// handleBatch processes and settles a lane's messages, in order: the
// events of one user are applied together, with one compare-and-set of
// the user's state, so that a backlog costs less per event the longer it
// is. When a user's events can not be stored together for good, they are
// tried one at a time, so that only the one at fault is dead-lettered.
func (w *Worker) handleBatch(hs []*held) {
	if len(hs) == 1 {
		w.handle(hs[0].msg, hs[0].decoded)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type group struct {
		target target
		events []state.Incoming
		msgs   []jetstream.Msg
	}
	var groups []*group
	byUser := map[target]*group{}
	for _, h := range hs {
		t, in, err := w.prepare(ctx, h.msg, h.decoded)
		if err != nil {
			w.record(t, in, "", err)
			w.finish(ctx, h.msg, err)
			continue
		}
		g := byUser[t]
		if g == nil {
			g = &group{target: t}
			byUser[t] = g
			groups = append(groups, g)
		}
		g.events = append(g.events, in)
		g.msgs = append(g.msgs, h.msg)
	}
	for _, g := range groups {
		reasons, err := w.opts.Applier.Take(ctx, g.target.tenant, g.target.userID, g.events...)
		if class, _ := fault.Of(err); err != nil && len(g.msgs) > 1 && (class == fault.Permanent || class == fault.Refused) {
			for i, msg := range g.msgs {
				w.finish(ctx, msg, w.take(ctx, g.target, g.events[i:i+1]))
			}
			continue
		}
		w.report(g.target, g.events, reasons, err)
		for _, msg := range g.msgs {
			w.finish(ctx, msg, err)
		}
	}
}

// take applies events for t, records them in the history and reports the
// ones that changed nothing.
func (w *Worker) take(ctx context.Context, t target, events []state.Incoming) error {
	reasons, err := w.opts.Applier.Take(ctx, t.tenant, t.userID, events...)
	w.report(t, events, reasons, err)
	return err
}

// report records what Take did with events in their user's history and
// reports the ones that changed nothing.
func (w *Worker) report(t target, events []state.Incoming, reasons []string, err error) {
	for i, in := range events {
		reason := ""
		if err == nil {
			reason = reasons[i]
			w.untimed(reason)
		}
		w.record(t, in, reason, err)
	}
}

// untimed reports an event the state ignored (reason set) as never to
// be timed; a superseded one is timed with the event that replaced it.
func (w *Worker) untimed(reason string) {
	if reason != "" && reason != state.ReasonSuperseded {
		w.opts.Untimed(reason)
	}
}

// record writes what became of in to its user's history (reason is why
// Take ignored it, err Take's error): taken in,
// changed nothing (and why), to be retried or refused. An event whose
// user could not be resolved is recorded under the user as its source
// named it (after the identity hints); one whose tenant is unknown is not
// recorded.
func (w *Worker) record(t target, in state.Incoming, reason string, err error) {
	if w.opts.History == nil || t.tenant == "" {
		return
	}
	ev := in.Event
	e := history.Entry{At: w.opts.Now().UTC(), Source: ev.Source, ID: ev.ID, Type: ev.Type, State: eventState(ev), Outcome: history.OutcomeApplied}
	if !ev.OccurredAt.IsZero() {
		at := ev.OccurredAt.UTC()
		e.OccurredAt = &at
	}
	switch class, _ := fault.Of(err); {
	case err == nil && reason != "":
		e.Outcome, e.Reason = history.OutcomeIgnored, reason
	case err == nil:
	case class == fault.Permanent || class == fault.Refused:
		e.Outcome, e.Reason, e.Detail = history.OutcomeRefused, history.ReasonRefused, err.Error()
		if errors.Is(err, identity.ErrUnknownUser) {
			e.Reason = history.ReasonUnknownUser
		}
	default:
		e.Outcome, e.Detail = history.OutcomeRetry, err.Error()
	}
	userID := t.userID
	if userID == "" {
		userID = adapters.NormalizeIdentity(w.opts.Identity[ev.Source].Apply(ev.User))
	}
	w.opts.History.Record(t.tenant, userID, e)
}

// eventState is what an event says: a call's or meeting's state, a
// presence's pair.
func eventState(ev adapters.Event) string {
	if ev.State == "" && ev.Availability != "" {
		return ev.Availability + "/" + ev.Activity
	}
	return ev.State
}

// finish settles msg after processing it ended with err: ack when nil,
// dead letter when it can never work, otherwise back to JetStream for
// later.
func (w *Worker) finish(ctx context.Context, msg jetstream.Msg, err error) {
	source := w.sourceOf(msg.Subject())
	log := w.opts.Log.With("subject", msg.Subject(), "source", source, "event_id", eventID(msg))
	if err == nil {
		w.settle(log, "ack", msg.Ack())
		w.opts.Count(source, OutcomeApplied)
		return
	}
	switch class, after := fault.Of(err); class {
	case fault.Permanent, fault.Refused:
		w.deadLetter(ctx, log, msg, err)
	default:
		// Anything not known to be permanent is retried: losing an event is
		// worse than trying it again. A delay asked for is a floor: the
		// backoff still grows with every delivery, up to MaxDelay.
		delay := min(max(w.backoff(msg), after), w.opts.MaxDelay)
		level := slog.LevelWarn
		var ferr *fault.Error
		if errors.As(err, &ferr) && ferr.Quiet {
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "event will be retried", "err", err, "delay", delay)
		w.settle(log, "nak", msg.NakWithDelay(delay))
		w.opts.Count(source, OutcomeRetry)
	}
}

func (w *Worker) deadLetter(ctx context.Context, log *slog.Logger, msg jetstream.Msg, err error) {
	reason, kind := err.Error(), "graph refused the request"
	if ferr := (*fault.Error)(nil); !errors.As(err, &ferr) || ferr.Reason == "" {
		reason = kind + ": " + reason
	} else {
		kind = ferr.Reason
	}
	d := eventlog.DeadLetter{
		Subject:    msg.Subject(),
		Source:     w.sourceOf(msg.Subject()),
		Data:       msg.Data(),
		Reason:     reason,
		GraphError: fault.GraphError(err),
		At:         time.Now().UTC(),
	}
	if err := w.opts.DeadLetters.PublishDeadLetter(ctx, d); err != nil {
		// Keep the event rather than lose it: it comes back later.
		log.Error("dead letter not stored; event kept for retry", "err", err)
		w.settle(log, "nak", msg.NakWithDelay(w.backoff(msg)))
		w.opts.Count(d.Source, OutcomeRetry)
		return
	}
	w.deadLettered.Log(ctx, log, slog.LevelWarn, d.Source+" "+kind, "event dead-lettered", "reason", d.Reason, "graph_error", d.GraphError)
	w.settle(log, "term", msg.TermWithReason(truncate(d.Reason, 200)))
	w.opts.Count(d.Source, OutcomeDeadLetter)
	if errors.Is(err, identity.ErrUnknownUser) {
		w.opts.Untimed(UntimedUnknownUser)
	} else {
		w.opts.Untimed(UntimedRefused)
	}
}

// decoded is a message's events as decoded and validated, or why not.
type decoded struct {
	events []adapters.Event
	err    error
}

func decode(data []byte) decoded {
	events, err := adapters.DecodeEvents(data)
	return decoded{events: events, err: err}
}

// target is the tenant and user an event is about.
type target struct{ tenant, userID string }

// prepare checks a decoded message and resolves whom its event is about.
// On error, the target holds the tenant when it is known.
func (w *Worker) prepare(ctx context.Context, msg jetstream.Msg, d decoded) (target, state.Incoming, error) {
	events, err := d.events, d.err
	if err != nil {
		return target{}, state.Incoming{}, fault.Permanently("invalid event", err)
	}
	if len(events) != 1 {
		return target{}, state.Incoming{}, fault.Permanently("invalid event", fmt.Errorf("a bus message carries one event, not %d", len(events)))
	}
	ev := events[0]
	in := state.Incoming{Event: ev, Accepted: accepted(msg)}
	source := w.sourceOf(msg.Subject())
	if ev.Source != source {
		return target{}, in, fault.Permanently("source mismatch", fmt.Errorf("event source %q published on subject of source %q", ev.Source, source))
	}
	tenant, known := w.opts.Tenants[ev.Source]
	if !known {
		return target{}, in, fault.Permanently("unknown source", fmt.Errorf("source %q is not configured", ev.Source))
	}
	if err := adapters.CheckFuture(events, time.Now(), w.opts.MaxFutureSkew); err != nil {
		return target{tenant: tenant}, in, fault.Permanently("occurredAt in the future", err)
	}
	userID, err := w.opts.Resolver.Resolve(ctx, tenant, w.opts.Identity[ev.Source].Apply(ev.User))
	if err != nil {
		return target{tenant: tenant}, in, err
	}
	t := target{tenant: tenant, userID: userID}
	read, err := w.readCalendar(ctx, t, ev)
	if err != nil {
		return t, in, err
	}
	in.Event = read
	return t, in, nil
}

// accepted is when JetStream stored msg: when the bridge accepted the
// event (answered 202), zero when unknown.
func accepted(msg jetstream.Msg) time.Time {
	md, err := msg.Metadata()
	if err != nil {
		return time.Time{}
	}
	return md.Timestamp
}

func (w *Worker) sourceOf(subject string) string {
	rest, ok := strings.CutPrefix(subject, w.opts.SubjectPrefix+".")
	if !ok {
		return ""
	}
	source, _, _ := strings.Cut(rest, ".")
	return source
}

// backoff doubles the delay with every delivery, from MinDelay to MaxDelay.
func (w *Worker) backoff(msg jetstream.Msg) time.Duration {
	delivered := uint64(1)
	if md, err := msg.Metadata(); err == nil {
		delivered = md.NumDelivered
	}
	delay := w.opts.MinDelay
	for i := uint64(1); i < delivered && delay < w.opts.MaxDelay; i++ {
		delay *= 2
	}
	return min(delay, w.opts.MaxDelay)
}

func (w *Worker) settle(log *slog.Logger, what string, err error) {
	if err != nil {
		log.Warn("settle message", "op", what, "err", err)
	}
}

// eventID is the event's id as published (Nats-Msg-Id is source:id).
func eventID(msg jetstream.Msg) string {
	_, id, _ := strings.Cut(msg.Headers().Get(jetstream.MsgIDHeader), ":")
	return id
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
