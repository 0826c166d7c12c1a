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
	"github.com/presence-bridge/presence-bridge/bridge/internal/logthrottle"
)

// Applier makes events take effect, in order, for a resolved user.
type Applier interface {
	Apply(ctx context.Context, tenant, userID string, events ...adapters.Event) error
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
}

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
	w.finish(ctx, msg, w.process(ctx, msg.Subject(), d))
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
		events []adapters.Event
		msgs   []jetstream.Msg
	}
	var groups []*group
	byUser := map[target]*group{}
	for _, h := range hs {
		t, ev, err := w.prepare(ctx, h.msg.Subject(), h.decoded)
		if err != nil {
			w.finish(ctx, h.msg, err)
			continue
		}
		g := byUser[t]
		if g == nil {
			g = &group{target: t}
			byUser[t] = g
			groups = append(groups, g)
		}
		g.events = append(g.events, ev)
		g.msgs = append(g.msgs, h.msg)
	}
	for _, g := range groups {
		err := w.opts.Applier.Apply(ctx, g.target.tenant, g.target.userID, g.events...)
		if class, _ := fault.Of(err); err != nil && len(g.msgs) > 1 && (class == fault.Permanent || class == fault.Refused) {
			for i, msg := range g.msgs {
				w.finish(ctx, msg, w.opts.Applier.Apply(ctx, g.target.tenant, g.target.userID, g.events[i]))
			}
			continue
		}
		for _, msg := range g.msgs {
			w.finish(ctx, msg, err)
		}
	}
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

func (w *Worker) process(ctx context.Context, subject string, d decoded) error {
	t, ev, err := w.prepare(ctx, subject, d)
	if err != nil {
		return err
	}
	return w.opts.Applier.Apply(ctx, t.tenant, t.userID, ev)
}

// prepare checks a decoded message and resolves whom its event is about.
func (w *Worker) prepare(ctx context.Context, subject string, d decoded) (target, adapters.Event, error) {
	events, err := d.events, d.err
	if err != nil {
		return target{}, adapters.Event{}, fault.Permanently("invalid event", err)
	}
	if len(events) != 1 {
		return target{}, adapters.Event{}, fault.Permanently("invalid event", fmt.Errorf("a bus message carries one event, not %d", len(events)))
	}
	if err := adapters.CheckFuture(events, time.Now(), w.opts.MaxFutureSkew); err != nil {
		return target{}, adapters.Event{}, fault.Permanently("occurredAt in the future", err)
	}
	ev := events[0]
	source := w.sourceOf(subject)
	if ev.Source != source {
		return target{}, adapters.Event{}, fault.Permanently("source mismatch", fmt.Errorf("event source %q published on subject of source %q", ev.Source, source))
	}
	tenant, known := w.opts.Tenants[ev.Source]
	if !known {
		return target{}, adapters.Event{}, fault.Permanently("unknown source", fmt.Errorf("source %q is not configured", ev.Source))
	}
	userID, err := w.opts.Resolver.Resolve(ctx, tenant, w.opts.Identity[ev.Source].Apply(ev.User))
	if err != nil {
		return target{}, adapters.Event{}, err
	}
	t := target{tenant: tenant, userID: userID}
	ev, err = w.readCalendar(ctx, t, ev)
	return t, ev, err
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
