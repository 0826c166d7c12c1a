// Package publish stands between the Teams watcher and the outputs: it
// owns the configured outputs and hands each of them the changes it
// should get, without ever making the watcher wait.
//
// Per output, a change passes the output's filter (tenants, skip_sources,
// pairs and people, outputs.Filter.Apply: a move to a pair the output does
// not send goes out as Available/Available) and then waits in a queue that keeps the newest change per person:
// while a person's delivery is pending or failing, a newer change
// replaces the queued one, so a receiver never gets an older state after
// a newer one. The queue holds at most MaxQueued people; beyond that the
// person first in line is dropped and counted. A few workers per output
// deliver, and while the output fails (NATS down) they retry with capped
// backoff, so that when it returns the newest change per person is
// published once (changes keep their ids; the nats output de-duplicates).
//
// When a person leaves the watch (Left), each output that removes what it
// published (outputs.Forgetter: sip) gets the removal in the person's
// line: a change queued before it is dropped, one under way is delivered
// first, and a change after it is delivered after it, from scratch.
package publish

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/catalog"
)

// Defaults of Options.
const (
	DefaultWorkers    = 2
	DefaultMaxQueued  = 100_000
	DefaultBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// Options tune a Publisher; zero values take the defaults.
type Options struct {
	// Workers deliver each output's changes, at most one per person at a
	// time.
	Workers int
	// MaxQueued is how many people may wait per output.
	MaxQueued int
	// Backoff is the first pause of a worker after its output failed,
	// doubled on each failure in a row up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Logger logs failures and drops; slog.Default when nil.
	Logger *slog.Logger
	// Now tells the time (for lag); time.Now when nil.
	Now func() time.Time
	// Wait pauses a worker for d or until ctx ends; a timer when nil.
	// Tests give their own to hold a worker in its backoff.
	Wait func(ctx context.Context, d time.Duration)
}

func (o *Options) defaults() {
	if o.Workers < 1 {
		o.Workers = DefaultWorkers
	}
	if o.MaxQueued < 1 {
		o.MaxQueued = DefaultMaxQueued
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff < o.Backoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.Backoff)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Wait == nil {
		o.Wait = func(ctx context.Context, d time.Duration) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}
	}
}

// Target is one output with its name, type and filter.
type Target struct {
	Name, Type string
	Filter     outputs.Filter
	Output     outputs.Output
}

// Publisher delivers the watcher's changes to the outputs.
type Publisher struct {
	opts   Options
	lanes  []*lane
	ctx    context.Context // ends when Close gives up draining
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Open builds every configured output through the catalog and starts a
// Publisher over them. When one can not be built, those built are closed
// again.
//
// deps.JetStream should sit on a connection without a reconnect buffer
// (nats.ReconnectBufSize(-1)): with one, a publish that timed out while
// NATS was away is still sent when it returns, and an older change than
// the one the retry delivers reaches the stream.
func Open(ctx context.Context, configured []config.Output, deps catalog.Deps, opts Options) (*Publisher, error) {
	targets := make([]Target, 0, len(configured))
	for _, o := range configured {
		out, err := catalog.New(ctx, catalog.Config{Name: o.Name, Type: o.Type, Settings: o.Settings()}, deps)
		if err != nil {
			for _, t := range targets {
				_ = t.Output.Close()
			}
			return nil, fmt.Errorf("output %s: %w", o.Name, err)
		}
		targets = append(targets, Target{Name: o.Name, Type: o.Type, Filter: o.Filter(), Output: out})
	}
	return New(targets, opts), nil
}

// New starts a Publisher over outputs already built; it owns them from
// now on and closes them in Close.
func New(targets []Target, opts Options) *Publisher {
	opts.defaults()
	p := &Publisher{opts: opts}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for _, t := range targets {
		l := &lane{Target: t, opts: opts, people: map[string]*entry{}, order: list.New(),
			published: map[string]uint64{}, healthy: true}
		l.cond = sync.NewCond(&l.mu)
		p.lanes = append(p.lanes, l)
		for range opts.Workers {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				l.work(p.ctx)
			}()
		}
	}
	return p
}

// Publish offers c to every output. It never blocks: it only queues.
// A malformed change (outputs.Change.Check) is dropped, counted in every
// output's Dropped and logged, rather than retried for ever. After Close
// it does nothing.
func (p *Publisher) Publish(c outputs.Change) {
	if err := c.Check(); err != nil {
		p.opts.Logger.Warn("dropped a malformed Teams change", "err", err)
		for _, l := range p.lanes {
			l.mu.Lock()
			l.dropped++
			l.mu.Unlock()
		}
		return
	}
	for _, l := range p.lanes {
		l.offer(c)
	}
}

// Left tells every output that removes what it published
// (outputs.Forgetter) that the person id of tenant left the watch: their
// queued change is dropped and the removal queued in its place, after a
// delivery under way. A removal that fails is not retried. After Close it
// does nothing.
func (p *Publisher) Left(tenant, id string) {
	for _, l := range p.lanes {
		if _, ok := l.Output.(outputs.Forgetter); ok {
			l.leave(tenant, id)
		}
	}
}

// Close stops taking changes, delivers what is queued until ctx ends,
// then gives up what is left, waits for the workers and closes the
// outputs. It reports how many changes were left undelivered and any
// error of closing an output.
func (p *Publisher) Close(ctx context.Context) error {
	var errs []error
	p.once.Do(func() {
		for _, l := range p.lanes {
			l.mu.Lock()
			l.closing = true
			l.cond.Broadcast()
			l.mu.Unlock()
		}
		done := make(chan struct{})
		go func() { p.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			p.cancel()
			<-done
		}
		p.cancel()
		for _, l := range p.lanes {
			l.mu.Lock()
			left := l.order.Len()
			l.mu.Unlock()
			if left > 0 {
				errs = append(errs, fmt.Errorf("output %s: %d people's changes left undelivered at close", l.Name, left))
			}
			if err := l.Output.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close output %s: %w", l.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// Stats is one output's figures, for metrics and the status page. Its
// fields match metrics.OutputStatus, so that one converts to the other.
type Stats struct {
	Name, Type string
	// Published counts delivered changes by origin (bridge, teams).
	Published map[string]uint64
	// Skipped counts changes the filter kept from the output; Dropped
	// the changes given up because the queue was full or the change was
	// malformed.
	Skipped, Dropped uint64
	// Failures counts failed deliveries (each retry counts).
	Failures uint64
	// Queued is how many people wait; Lag how long the one waiting
	// longest has waited.
	Queued int
	Lag    time.Duration
	// Healthy is false from a failed delivery to the next one that
	// succeeds; LastError is the last failure (credentials removed).
	Healthy     bool
	LastError   string
	LastErrorAt time.Time
	// Delivery is what an output that delivers on its own (webhook)
	// reports of its deliveries; nil for the others.
	Delivery *outputs.Health
	// Responses counts the answers of the output's receiver by class, for
	// outputs that report them (a sip output's PUBLISHes: 2xx, 4xx, 5xx,
	// none, ...); nil for the others.
	Responses map[string]uint64
}

// Stats returns every output's figures, in configuration order.
func (p *Publisher) Stats() []Stats {
	out := make([]Stats, 0, len(p.lanes))
	for _, l := range p.lanes {
		out = append(out, l.stats())
	}
	return out
}

// lane is one output with its queue and workers.
type lane struct {
	Target
	opts Options

	mu   sync.Mutex
	cond *sync.Cond
	// people holds everyone with a queued change or removal or a
	// delivery under way; order lists those with something queued in the
	// order they are
	// delivered: as they came, a failed delivery again at the end.
	people  map[string]*entry
	peak    int        // the most people held since people was made
	order   *list.List // of *entry
	closing bool
	// failedInARow sets the backoff.
	failedInARow int

	published                  map[string]uint64
	skipped, dropped, failures uint64
	healthy                    bool
	lastError                  string
	lastErrorAt                time.Time
}

// entry is one person in a lane.
type entry struct {
	key string
	// forget is a removal waiting (the person left the watch), delivered
	// before queued; queued is the change waiting, nil when none; since
	// is when the person started waiting; elem is its place in order.
	forget bool
	queued *outputs.Change
	since  time.Time
	elem   *list.Element
	// sending is the sequenceNumber of the delivery under way, "" when
	// none, removal for a removal; sendingSince is when its change
	// started waiting.
	sending      string
	sendingSince time.Time
}

// removal is what sending holds while a removal is under way.
const removal = "\x00removal"

// newer reports whether sequence number a is newer than b. Graph's
// sequenceNumbers sort as strings; a longer one is newer.
func newer(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

func (l *lane) offer(c outputs.Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return
	}
	c, send := l.Filter.Apply(c)
	if !send {
		l.skipped++
		return
	}
	key := c.Tenant + "\x00" + c.View.ID
	e := l.people[key]
	if e == nil {
		e = &entry{key: key}
		l.people[key] = e
		l.peak = max(l.peak, len(l.people))
	}
	switch {
	case e.queued != nil && !newer(c.SequenceNumber, e.queued.SequenceNumber),
		!e.forget && e.sending != "" && e.sending != removal && !newer(c.SequenceNumber, e.sending):
		return // not newer than what is on its way
	case e.elem != nil:
		// Newest wins; the person keeps their place, after a removal
		// waiting, which makes anything before it no reference.
		e.queued = &c
		return
	}
	e.queued = &c
	l.enqueue(e)
}

// leave queues the removal of the person id of tenant in place of their
// queued change.
func (l *lane) leave(tenant, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return
	}
	key := tenant + "\x00" + id
	e := l.people[key]
	if e == nil {
		e = &entry{key: key}
		l.people[key] = e
		l.peak = max(l.peak, len(l.people))
	}
	e.forget, e.queued = true, nil
	if e.elem == nil {
		l.enqueue(e)
	}
}

// enqueue puts e, with something queued, last in line. Called with mu
// held.
func (l *lane) enqueue(e *entry) {
	e.since = l.opts.Now()
	e.elem = l.order.PushBack(e)
	if l.order.Len() > l.opts.MaxQueued {
		l.drop(l.order.Front().Value.(*entry))
	}
	l.cond.Signal()
}

// drop gives up e's queued change. Called with mu held.
func (l *lane) drop(e *entry) {
	l.dropped++
	what := "a removal"
	if e.queued != nil {
		what = e.queued.ID
	}
	l.opts.Logger.Warn("output queue full: dropped the change first in line", "output", l.Name, "change", what, "max_queued", l.opts.MaxQueued)
	l.unqueue(e)
}

// unqueue takes e out of order, and forgets e when nothing is under way
// for it. Called with mu held.
func (l *lane) unqueue(e *entry) {
	l.order.Remove(e.elem)
	e.forget, e.queued, e.elem = false, nil, nil
	if e.sending == "" {
		l.forget(e)
	}
}

// forget drops e from people. A map keeps the room it grew to, so once
// people is empty after holding more than shrinkAbove (the first sighting
// of a whole tenant), it starts again small. Called with mu held.
func (l *lane) forget(e *entry) {
	delete(l.people, e.key)
	if len(l.people) == 0 && l.peak > shrinkAbove {
		l.people, l.peak = map[string]*entry{}, 0
	}
}

// shrinkAbove is the size past which an emptied lane's map of people is
// made again.
const shrinkAbove = 1024

// next waits for a person to deliver to, marks their delivery under way
// and returns it, with forget true for a removal (then c is empty); nil
// when the lane closes and nothing is left.
func (l *lane) next(ctx context.Context) (e *entry, c outputs.Change, forget bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if ctx.Err() != nil {
			return nil, outputs.Change{}, false
		}
		for el := l.order.Front(); el != nil; el = el.Next() {
			e := el.Value.(*entry)
			if e.sending != "" {
				continue // one delivery per person at a time
			}
			if e.forget {
				// A change queued after the removal keeps its place.
				e.forget, e.sending, e.sendingSince = false, removal, e.since
				if e.queued == nil {
					l.order.Remove(el)
					e.elem = nil
				}
				return e, outputs.Change{}, true
			}
			c := *e.queued
			l.order.Remove(el)
			e.queued, e.elem, e.sending, e.sendingSince = nil, nil, c.SequenceNumber, e.since
			return e, c, false
		}
		if l.closing && l.order.Len() == 0 {
			return nil, outputs.Change{}, false
		}
		l.cond.Wait()
	}
}

func (l *lane) work(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	defer stop()
	for {
		e, c, forget := l.next(ctx)
		if e == nil {
			return
		}
		if forget {
			tenant, id, _ := strings.Cut(e.key, "\x00")
			l.forgotten(e, l.Output.(outputs.Forgetter).Forget(ctx, tenant, id))
			continue
		}
		err := l.Output.Publish(ctx, c)
		if pause := l.done(e, c, err); pause > 0 {
			l.opts.Wait(ctx, pause)
		}
	}
}

// forgotten settles a removal: it is not retried, and the output logged
// its failure.
func (l *lane) forgotten(e *entry, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.sending = ""
	defer l.cond.Broadcast()
	if e.elem == nil {
		l.forget(e)
	}
	if err != nil {
		l.failures++
		l.healthy = false
		l.lastError, l.lastErrorAt = clean(err), l.opts.Now()
	}
}

// done settles a delivery and returns the pause before the next one.
func (l *lane) done(e *entry, c outputs.Change, err error) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.sending = ""
	defer l.cond.Broadcast() // e may be free for its next change
	if err == nil {
		l.published[c.Origin]++
		l.healthy, l.failedInARow = true, 0
		if e.elem == nil {
			l.forget(e)
		}
		return 0
	}
	l.failures++
	l.failedInARow++
	l.healthy = false
	l.lastError, l.lastErrorAt = clean(err), l.opts.Now()
	if l.failedInARow == 1 || l.failedInARow%100 == 0 {
		l.opts.Logger.Warn("output failed; retrying", "output", l.Name, "change", c.ID, "failures_in_a_row", l.failedInARow, "err", l.lastError)
	}
	if e.elem == nil {
		// Offer it again, last in line, so that one person whose change
		// keeps failing holds nobody else up: nothing newer came (nor a
		// removal).
		e.queued, e.since = &c, e.sendingSince
		e.elem = l.order.PushBack(e)
		if l.order.Len() > l.opts.MaxQueued {
			l.drop(l.order.Front().Value.(*entry))
		}
	} else if e.sendingSince.Before(e.since) {
		e.since = e.sendingSince // the person has waited since then
	}
	pause := l.opts.Backoff
	for i := 1; i < l.failedInARow && pause < l.opts.MaxBackoff; i++ {
		pause *= 2
	}
	return min(pause, l.opts.MaxBackoff)
}

func (l *lane) stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Stats{Name: l.Name, Type: l.Type, Published: make(map[string]uint64, len(l.published)),
		Skipped: l.skipped, Dropped: l.dropped, Failures: l.failures, Queued: l.order.Len(),
		Healthy: l.healthy, LastError: l.lastError, LastErrorAt: l.lastErrorAt}
	for k, v := range l.published {
		s.Published[k] = v
	}
	if r, ok := l.Output.(outputs.Reporter); ok {
		h := r.Health()
		s.Responses = h.Responses
		if h.LastErrorAt.After(s.LastErrorAt) {
			s.LastError, s.LastErrorAt = clean(errors.New(h.LastError)), h.LastErrorAt
		}
		if h.Deliveries != nil {
			s.Delivery = &h
		}
	}
	now := l.opts.Now()
	for el := l.order.Front(); el != nil; el = el.Next() {
		s.Lag = max(s.Lag, now.Sub(el.Value.(*entry).since))
	}
	return s
}

// userinfo matches the credentials of a URL (scheme://user:pass@).
var userinfo = regexp.MustCompile(`//[^/@\s]*@`)

// maxError is the longest error text Stats keeps.
const maxError = 300

// clean returns err's text without URL credentials, cut to maxError.
func clean(err error) string {
	s := userinfo.ReplaceAllString(err.Error(), "//***@")
	if len(s) > maxError {
		s = s[:maxError] + "..."
	}
	return s
}
