// Package watch reads Teams presence: one Watcher per tenant, run only by
// the holder of the tenant's lease ("watch.<tenant>"), reads every
// watched person with getPresencesByUserId, 650 ids a request, spread so
// that each person is read about once per watch.interval, inside a read
// budget of its own. Each change of a person's pair is handed to a Sink
// with its origin: "bridge" when the bridge's own app session explains
// it, "teams" otherwise. The last seen presence per person is kept in a
// KV bucket (SeenBucket), so that a restart or a takeover hands over only
// what really changed.
//
// The same reads tell the writer's side what Graph's aggregate means for
// a person the bridge holds a session for (writer.ObserveAggregate: a
// status set by hand, a lost session). With watch.enabled false the
// watcher reads only those people, every presence.observe_interval, and
// hands over no change.
package watch

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker/v2"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/lookup"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/bridge/writer"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/graphclient/graphlimits"
	"github.com/presence-bridge/presence-bridge/internal/guid"
	"github.com/presence-bridge/presence-bridge/outputs"
)

// Graph is what a watcher needs of its tenant's Graph client; a
// *graphclient.Client is one.
type Graph interface {
	GetPresencesByUserID(ctx context.Context, ids []string) ([]graphclient.Presence, error)
	ListUsers(ctx context.Context) ([]graphclient.User, error)
	ListGroupMembers(ctx context.Context, groupID string) ([]graphclient.User, error)
}

// Resolver resolves a directory entry to an object id (identity.Directory).
type Resolver interface {
	Resolve(ctx context.Context, tenant, user string) (string, error)
}

// Sink takes what the watcher sees: Changed for each change of a
// person's presence, in order per person; Seen for a read that changed
// nothing (the lookup store refreshes seenAt); Left for a person who left
// the watch (the lookup store forgets them).
type Sink interface {
	Changed(ctx context.Context, c outputs.Change)
	Seen(v outputs.View)
	Left(tenant, id string)
}

// HoldFunc runs work while this instance holds the lease key, and
// returns when ctx ends; work's context ends when the lease is lost
// (lease.New(...).Hold).
type HoldFunc func(ctx context.Context, key string, work func(context.Context) error)

// Clock tells the time; tests use a fake one.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configure a Watcher.
type Options struct {
	Tenant string
	// Watch is the tenant's watch (config.WatchOf).
	Watch config.Watch
	// ObserveInterval is, with Watch.Enabled false, how often the people
	// the bridge holds a session for are read; zero reads nobody then.
	ObserveInterval time.Duration
	Graph           Graph
	// State is the store of user states: who holds a session, and where
	// writer.ObserveAggregate records what a read means.
	State *state.Store
	// Rules are the state's rules, for the sources of a session.
	Rules state.Rules
	// Seen is the bucket OpenSeen returns; needed when Watch.Enabled.
	Seen jetstream.KeyValue
	// Directory and DirectoryUsers make `users: directory`: the UPNs or
	// object ids the configured directory names, each resolved.
	Directory      Resolver
	DirectoryUsers func() []string
	// EventUPN returns the UPN (or email) an event names its person by,
	// "" when it names them otherwise (an object id, a phone key): the
	// user of a view of someone watched only because an event named them.
	// Nil learns no UPN from events.
	EventUPN func(adapters.Event) string
	// Views is where the watcher keeps each watched person's last seen
	// presence: the lookup API's store, whose record of a person is the
	// only one (the watcher keeps no copy). The watcher sets, and on a
	// leave deletes, the views of its tenant. Nil keeps them in a store of
	// the watcher's own.
	Views *lookup.Views
	Sink  Sink
	// History records each change handed over in the person's history;
	// nil records none.
	History history.Recorder
	Hold    HoldFunc
	Observe writer.Observe
	// BreakerFailures consecutive failed reads (5xx, timeouts) open the
	// breaker for BreakerTimeout; defaults 5 and 30 s.
	BreakerFailures uint32
	BreakerTimeout  time.Duration
	// Refresh is how often the list of watched people is read again
	// (`all`, `group:`, directory); default an hour.
	Refresh time.Duration
	// ChunkSize is the ids per request, graphlimits.MaxIDsPerLookup by
	// default.
	ChunkSize int
	// StateStream is the stream of State's bucket. With it, the outcome of
	// every read is judged only once the watcher has taken in every user
	// state written before the read was answered (catchUp); nil judges at
	// once.
	StateStream jetstream.Stream
	// Reads, shared by the watchers of every tenant, bounds the presence
	// reads in flight at once; nil bounds nothing.
	Reads *Reads
	// Tick is how often the watcher looks at its clock; default 50 ms.
	Tick   time.Duration
	Clock  Clock
	Logger *slog.Logger
}

// readTimeout bounds one getPresencesByUserId request.
const readTimeout = 30 * time.Second

// Watcher watches one tenant.
type Watcher struct {
	opts    Options
	log     *slog.Logger
	breaker *gobreaker.CircuitBreaker[[]graphclient.Presence]
	reload  chan struct{}

	// The rest belongs to the goroutine running work.
	budget     *budget
	people     people                           // read: the watched and the session holders
	upns       []string                         // the UPN of each of listed, "" when not known
	named      guid.Map[string]                 // people events named, with the UPN they were named by (name)
	sessions   guid.Map[session]                // the session holders
	loaded     map[string]last                  // read from Seen at the lease's start, until the person is read
	pairs      map[adapters.Pair]*adapters.Pair // the pairs of loaded and of sessions, shared
	claims     map[string]*claim                // the claims of sessions, shared
	key        []byte                           // room to make a key of claims in
	states     jetstream.KeyWatcher
	stateRev   uint64   // the newest user state revision taken in
	listed     []string // resolved by the last refresh, sorted
	order      people   // this cycle's people
	cursor     cursor
	cycleStart time.Time
	spacing    time.Duration
	nextAt     time.Time
	refresh    time.Time
	dirty      bool // people must be worked out again
	// peopleAt is when they may be worked out again (workOutPeople), so
	// that a burst of people starting or ending calls (each state taken
	// in makes a step) does not sort everyone at each state.
	peopleAt time.Time
	pause    time.Time

	mu     sync.Mutex
	status Status

	// steps counts the loop's looks at its clock, for tests.
	steps atomic.Uint64
}

// session is what the state store says of a person's app session: the
// claim Graph was last told, and the claim of a call under way (its
// intent is recorded before Graph is called, so a read may show it
// first). It is small: the claims are shared (Watcher.claim), and of the
// session reads are compared with (writer.SessionOf) it keeps only what
// writer.ObserveAggregate compares (observed).
type session struct {
	told, pending *claim
	// manual is what a read is compared with beside told, when Graph
	// showed a status set by hand or the writer keeps a status message.
	manual *manual
	// toldSec and toldNsec are when Graph was told told.
	toldSec  int64
	toldNsec int32
	// observe is whether reads are compared with the session: not while a
	// call to Graph is under way.
	observe bool
}

// claim is a pair the bridge tells Graph, and the sources whose claims
// made it; one is shared by every session with the same.
type claim struct {
	pair    adapters.Pair
	sources []string
}

// manual is the rest of what a read is compared with.
type manual struct {
	pair   *adapters.Pair
	status *state.StatusMessage
}

// explains returns whether the bridge's session explains pair, and the
// sources that made it.
func (s session) explains(pair adapters.Pair) (bool, []string) {
	switch {
	case s.told != nil && s.told.pair == pair:
		return true, s.told.sources
	case s.pending != nil && s.pending.pair == pair:
		return true, s.pending.sources
	}
	return false, nil
}

// observed returns the session a read is compared with
// (writer.ObserveAggregate), false while a call to Graph is under way.
func (s session) observed() (writer.Session, bool) {
	if !s.observe {
		return writer.Session{}, false
	}
	o := writer.Session{Told: state.Told{Pair: &s.told.pair, At: time.Unix(s.toldSec, int64(s.toldNsec)).UTC()}}
	if s.manual != nil {
		o.Manual = s.manual.pair
		if s.manual.status != nil {
			status := *s.manual.status
			o.Status = &status
		}
	}
	return o, true
}

// maxClaims bounds the table of claims a watcher shares between
// sessions; past it a new claim is kept by the session alone.
const maxClaims = 1024

// claim returns the shared claim of pair made by sources.
func (w *Watcher) claim(pair adapters.Pair, sources []string) *claim {
	// Each value after its length, so that no two claims make one key.
	key := w.key[:0]
	for _, s := range append([]string{pair.Availability, pair.Activity}, sources...) {
		key = append(binary.AppendUvarint(key, uint64(len(s))), s...)
	}
	w.key = key
	if c, ok := w.claims[string(key)]; ok {
		return c
	}
	c := &claim{pair: *w.pair(pair)}
	for _, s := range sources {
		c.sources = append(c.sources, strings.Clone(s))
	}
	if w.claims == nil {
		w.claims = map[string]*claim{}
	}
	if len(w.claims) < maxClaims {
		w.claims[string(key)] = c
	}
	return c
}

// Status is the watch of one tenant, for the status page and metrics.
type Status struct {
	Tenant  string `json:"tenant"`
	Enabled bool   `json:"enabled"`
	// Holding is whether this instance holds the lease and reads.
	Holding bool `json:"holding"`
	// People is how many are read: the watched and those the bridge
	// holds a session for.
	People int `json:"people"`
	// CycleSeconds is how long reading everyone takes at the current
	// pace; Stretched says the budget made it longer than the interval.
	CycleSeconds float64 `json:"cycleSeconds"`
	Stretched    bool    `json:"stretched"`
	// LastCycleSeconds is how long the last full cycle took.
	LastCycleSeconds float64       `json:"lastCycleSeconds"`
	BudgetUsed       int           `json:"budgetUsed"`
	Budget           int           `json:"budget"`
	BudgetWindow     time.Duration `json:"budgetWindow"`
	LastRead         time.Time     `json:"lastRead,omitzero"`
	PausedUntil      time.Time     `json:"pausedUntil,omitzero"`
	// Reads counts requests by outcome: ok, throttled, failed.
	Reads map[string]uint64 `json:"reads"`
	// Changes counts changes handed over, by origin.
	Changes map[string]uint64 `json:"changes"`
}

// New returns the watcher of opts.Tenant; Run runs it.
func New(opts Options) (*Watcher, error) {
	switch {
	case opts.Graph == nil || opts.State == nil || opts.Hold == nil:
		return nil, errors.New("watch: Graph, State and Hold are required")
	case opts.Watch.Enabled && (opts.Seen == nil || opts.Sink == nil):
		return nil, errors.New("watch: an enabled watch needs Seen and Sink")
	case opts.Watch.ReadBudget < 1 || opts.Watch.ReadBudgetWindow <= 0:
		return nil, fmt.Errorf("watch: read budget %d per %s", opts.Watch.ReadBudget, opts.Watch.ReadBudgetWindow)
	}
	if opts.ChunkSize <= 0 || opts.ChunkSize > graphlimits.MaxIDsPerLookup {
		opts.ChunkSize = graphlimits.MaxIDsPerLookup
	}
	if opts.Tick <= 0 {
		opts.Tick = 50 * time.Millisecond
	}
	if opts.Refresh <= 0 {
		opts.Refresh = time.Hour
	}
	if opts.BreakerFailures == 0 {
		opts.BreakerFailures = 5
	}
	if opts.BreakerTimeout <= 0 {
		opts.BreakerTimeout = 30 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Views == nil {
		opts.Views = lookup.NewViews(lookup.Options{})
	}
	w := &Watcher{opts: opts, log: opts.Logger.With("tenant", opts.Tenant, "stage", "watch"), reload: make(chan struct{}, 1)}
	w.breaker = gobreaker.NewCircuitBreaker[[]graphclient.Presence](gobreaker.Settings{
		Name:        "graph reads:" + opts.Tenant,
		MaxRequests: 1,
		Timeout:     opts.BreakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= opts.BreakerFailures },
		IsSuccessful: func(err error) bool {
			class, _ := fault.Of(err)
			return err == nil || class != fault.Retry
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			w.log.Warn("read circuit breaker", "from", from.String(), "to", to.String())
		},
	})
	w.status = Status{Tenant: opts.Tenant, Enabled: opts.Watch.Enabled, Budget: opts.Watch.ReadBudget, BudgetWindow: opts.Watch.ReadBudgetWindow,
		Reads: map[string]uint64{}, Changes: map[string]uint64{}}
	return w, nil
}

// Run competes for the tenant's lease and reads while holding it, until
// ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	w.opts.Hold(ctx, "watch."+w.opts.Tenant, w.work)
}

// Reload makes the watcher list its people again at once (a reload of
// the configuration).
func (w *Watcher) Reload() {
	select {
	case w.reload <- struct{}{}:
	default:
	}
}

// Status returns the watch's status now.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.status
	s.Reads, s.Changes = maps(s.Reads), maps(s.Changes)
	return s
}

func maps(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (w *Watcher) setStatus(change func(*Status)) {
	w.mu.Lock()
	change(&w.status)
	w.mu.Unlock()
}

// interval is how often each person should be read.
func (w *Watcher) interval() time.Duration {
	if w.opts.Watch.Enabled {
		return w.opts.Watch.Interval
	}
	return w.opts.ObserveInterval
}

// work reads while the lease is held.
func (w *Watcher) work(ctx context.Context) error {
	if !w.opts.Watch.Enabled && w.opts.ObserveInterval <= 0 {
		<-ctx.Done()
		return nil
	}
	w.budget = newBudget(w.opts.Watch.ReadBudget, w.opts.Watch.ReadBudgetWindow)
	w.people, w.upns, w.named, w.sessions, w.listed = people{}, nil, guid.Map[string]{}, guid.Map[session]{}, nil
	w.order, w.cursor, w.nextAt, w.refresh, w.pause, w.dirty, w.peopleAt = people{}, cursor{}, time.Time{}, time.Time{}, time.Time{}, true, time.Time{}
	w.loaded = map[string]last{}
	if w.opts.Watch.Enabled {
		loaded, err := w.loadSeen(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // the lease ended
			}
			return err
		}
		w.loaded = loaded
	}
	// The states stored now a batch at a time, then a watch of what comes
	// after them (state.Store.ReadStored).
	w.stateRev = 0
	last, err := w.opts.State.ReadStored(ctx, w.opts.Tenant, w.takeState)
	if err != nil {
		if ctx.Err() != nil {
			return nil // the lease ended
		}
		return err
	}
	var from []jetstream.WatchOpt
	if last > 0 {
		from = append(from, jetstream.ResumeFromRevision(last+1))
	}
	states, err := w.opts.State.KV().Watch(ctx, state.UserKeys(w.opts.Tenant), from...)
	if err != nil {
		return fmt.Errorf("watch user states: %w", err)
	}
	defer func() { _ = states.Stop() }()
	w.states = states
	defer func() { w.states = nil }()
	w.setStatus(func(s *Status) { s.Holding = true })
	defer w.setStatus(func(s *Status) { s.Holding = false })
	ticker := time.NewTicker(w.opts.Tick)
	defer ticker.Stop()
	caughtUp := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-states.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil // the KV watch ends with the lease
				}
				return errors.New("the watch of user states ended")
			}
			if e == nil {
				caughtUp = true
			} else {
				w.takeState(e)
			}
		case <-w.reload:
			w.refresh = time.Time{}
		case <-ticker.C:
		}
		if caughtUp {
			w.step(ctx, w.opts.Clock.Now())
			w.steps.Add(1)
		}
	}
}

// decodeState returns the user state e holds: the copy the state store
// keeps of what this process has just written or read at that revision
// when it has one (most states are the apply stage's and the writers'
// own, just encoded), else e's value decoded. It is false for a deletion
// or a value that is no state.
func (w *Watcher) decodeState(e jetstream.KeyValueEntry) (state.UserState, bool) {
	if e.Operation() != jetstream.KeyValuePut {
		return state.UserState{}, false
	}
	if st, _, ok := w.opts.State.Recent(e.Key(), e.Revision(), e.Value()); ok {
		return st, true
	}
	var st state.UserState
	return st, json.Unmarshal(e.Value(), &st) == nil
}

// takeState keeps what a user state says: whether the bridge holds a
// session for the person and which sources made it, and, with the watch
// on, that an event named them, and by which UPN (name).
func (w *Watcher) takeState(e jetstream.KeyValueEntry) {
	w.stateRev = max(w.stateRev, e.Revision())
	st, ok := w.decodeState(e)
	if !ok || st.UserID == "" {
		key := e.Key()
		raw, err := hex.DecodeString(key[strings.LastIndexByte(key, '.')+1:])
		if err != nil {
			return
		}
		id := string(raw)
		_, named := w.named.Get(id)
		_, held := w.sessions.Get(id)
		if named || held {
			w.named.Delete(id)
			w.sessions.Delete(id)
			w.dirty = true
		}
		return
	}
	id := strings.ToLower(st.UserID)
	if w.opts.Watch.Enabled {
		w.name(id, st)
	}
	before, had := w.sessions.Get(id)
	// Only a session Graph holds makes a person read (people.go); a call
	// under way alone only explains what a read shows.
	wasRead := had && before.told != nil
	var s session
	if st.Told != nil && st.Told.Pair != nil {
		s.told = w.claim(*st.Told.Pair, st.SessionSources(w.opts.Rules, st.Told.At))
	}
	if st.Pending != nil && st.Pending.Pair != nil {
		s.pending = w.claim(*st.Pending.Pair, st.SessionSources(w.opts.Rules, st.Pending.At))
	}
	if s.told == nil && s.pending == nil {
		if had {
			w.sessions.Delete(id)
		}
		w.dirty = w.dirty || wasRead
		return
	}
	if obs, ok := writer.SessionOf(st); ok {
		s.observe, s.toldSec, s.toldNsec = true, obs.Told.At.Unix(), int32(obs.Told.At.Nanosecond())
		if obs.Manual != nil || obs.Status != nil {
			s.manual = &manual{status: obs.Status}
			if obs.Manual != nil {
				s.manual.pair = w.pair(*obs.Manual)
			}
		}
	}
	w.sessions.Put(id, s)
	w.dirty = w.dirty || wasRead != (s.told != nil)
}

// name records that the state store holds id, and by which UPN an event
// named them: who `users: directory` watches beside the directory, and
// the user of their views. Only a watch that publishes needs it; with
// the watch off nobody is held for it (issue 23).
func (w *Watcher) name(id string, st state.UserState) {
	was, named := w.named.Get(id)
	upn := was
	if st.LastEvent != nil && w.opts.EventUPN != nil {
		if u := w.opts.EventUPN(*st.LastEvent); u != "" {
			upn = u
		}
	}
	// Only `users: directory` watches whom events named; the other watches
	// need only the UPNs (view), so a person named by none is not kept.
	if named && upn == was || !named && upn == "" && w.opts.Watch.Users != "directory" {
		return
	}
	w.named.Put(id, upn)
	w.dirty = w.dirty || !named
}

// step makes the next read when it is due.
func (w *Watcher) step(ctx context.Context, now time.Time) {
	if w.opts.Watch.Enabled && !now.Before(w.refresh) {
		w.refresh = now.Add(w.opts.Refresh)
		w.list(ctx)
	}
	defer w.setStatus(func(s *Status) {
		s.BudgetUsed, s.People, s.PausedUntil = w.budget.used(now), w.people.len(), w.pause
	})
	w.workOutPeople(now)
	// A spacing shorter than the tick makes more than one read due at a
	// look; a few are made then, so the pace is the spacing's.
	for range maxReadsPerStep {
		if now.Before(w.nextAt) || now.Before(w.pause) || w.breaker.State() == gobreaker.StateOpen {
			return
		}
		if w.order.done(w.cursor) && !w.startCycle(now) {
			return
		}
		if !w.budget.allow(now) {
			return
		}
		chunk := w.order.next(&w.cursor, w.opts.ChunkSize)
		w.plan(now)
		w.read(ctx, chunk, now)
	}
}

// workOutPeople works out again who is read, if that changed, at most
// once every peopleEvery or tick, whichever is longer (peopleAt): a
// person whose session began is read at most that much later, and a
// burst of calls costs a copy of everyone a second, not one a state.
func (w *Watcher) workOutPeople(now time.Time) {
	if w.dirty && !now.Before(w.peopleAt) {
		w.dirty = false
		w.peopleAt = now.Add(max(w.opts.Tick, peopleEvery))
		w.setPeople()
	}
}

// peopleEvery is how often, at most, who is read is worked out again.
const peopleEvery = time.Second

// maxReadsPerStep bounds the reads made at one look at the clock.
const maxReadsPerStep = 4

// plan sets when the next read is due: a spacing after this read's due
// time, not after now, so that looking at the clock every tick does not
// round each spacing up to the tick (a cycle of n reads takes n spacings),
// and a read that came late (a slow answer) is made up by the next ones.
// When the next read would already be more than catchUp spacings (and a
// tick) overdue (the first read, or one after a pause, a full budget or
// an open breaker) it plans from now instead: no burst makes up for that.
func (w *Watcher) plan(now time.Time) {
	next := w.nextAt.Add(w.spacing)
	if now.Sub(next) > max(w.opts.Tick, catchUp*w.spacing) {
		next = now.Add(w.spacing)
	}
	w.nextAt = next
}

// catchUp is how many spacings late reads are made up.
const catchUp = 4

// startCycle begins a round over everyone watched now, paced so that the
// round takes the interval, or longer when the budget cannot cover it.
func (w *Watcher) startCycle(now time.Time) bool {
	if w.order.len() > 0 {
		took := now.Sub(w.cycleStart)
		w.setStatus(func(s *Status) { s.LastCycleSeconds = took.Seconds() })
	}
	w.order, w.cursor, w.cycleStart = w.people, cursor{}, now // setPeople replaces w.people, never changes it
	n := w.order.len()
	if n == 0 {
		return false
	}
	chunks := (n + w.opts.ChunkSize - 1) / w.opts.ChunkSize
	even := w.interval() / time.Duration(chunks)
	least := w.opts.Watch.ReadBudgetWindow / time.Duration(w.opts.Watch.ReadBudget)
	w.spacing = max(even, least)
	w.setStatus(func(s *Status) {
		s.CycleSeconds = (time.Duration(chunks) * w.spacing).Seconds()
		s.Stretched = least > even
	})
	return true
}
