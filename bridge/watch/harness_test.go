package watch

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
	"github.com/presence-bridge/presence-bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
)

const (
	tenant = "contoso.example"
	appID  = "22553876-f5ab-4529-bffb-cfe50aa89f87"
)

var (
	t0      = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	inACall = &adapters.Pair{Availability: "Busy", Activity: "InACall"}
	rules   = state.Rules{Call: inACall, ConferenceCall: inACall, Meeting: inACall, Priority: []string{"conference", "call", "meeting", "presence"}}
)

// userID is the object id of the test's i-th user.
func userID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

func upn(i int) string { return fmt.Sprintf("user%d@contoso.example", i) }

// harness is the real parts a watcher works with: NATS with JetStream,
// the state store, the seen bucket, and the emulator on a fake clock over
// HTTP on 127.0.0.1, with people users.
type harness struct {
	t      *testing.T
	clock  *emulator.FakeClock
	em     *emulator.Emulator
	graph  *graphclient.Client
	js     jetstream.JetStream
	store  *state.Store
	seenKV jetstream.KeyValue
	sink   *recorder
}

func newHarness(t *testing.T, people int, readThrottle emulator.Throttle) *harness {
	t.Helper()
	h := &harness{t: t, clock: emulator.NewFakeClock(t0), sink: &recorder{}}
	var users []emulator.User
	for i := range people {
		users = append(users, emulator.User{ID: userID(i), UserPrincipalName: upn(i)})
	}
	em, err := emulator.New(emulator.Config{
		Listen:       "127.0.0.1:0",
		ReadThrottle: readThrottle,
		Tenants: []emulator.Tenant{{
			ID:    tenant,
			Apps:  []emulator.App{{ClientID: appID, ClientSecret: "demo-secret", Roles: []string{"Presence.ReadWrite.All", "User.Read.All", "GroupMember.Read.All"}}},
			Users: users,
		}},
	}, emulator.WithClock(h.clock))
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	h.em = em
	h.graph, err = graphclient.New(graphclient.Config{TenantID: tenant, ClientID: appID, ClientSecret: "demo-secret", GraphBaseURL: em.GraphURL(), LoginBaseURL: em.LoginURL()})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := natstest.Start(t)
	h.js = js
	ctx := context.Background()
	if h.store, err = state.Open(ctx, js, state.Options{Rules: rules, Clock: h.clock}); err != nil {
		t.Fatal(err)
	}
	if h.seenKV, err = OpenSeen(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	return h
}

// watch is an enabled watch of everyone in the tenant, read every 2 s.
func watchAll() config.Watch {
	w := config.DefaultWatch()
	w.Enabled, w.Users = true, "all"
	return w
}

// start runs a watcher until the test ends or stop is called.
func (h *harness) start(watch config.Watch, change func(*Options)) (w *Watcher, stop func()) {
	h.t.Helper()
	opts := Options{
		Tenant: tenant, Watch: watch, Graph: h.graph, State: h.store, Rules: rules, Seen: h.seenKV, Sink: h.sink,
		Hold: func(ctx context.Context, _ string, work func(context.Context) error) {
			if err := work(ctx); err != nil {
				h.t.Errorf("work: %v", err)
			}
		},
		Tick: 5 * time.Millisecond, Clock: h.clock,
	}
	if change != nil {
		change(&opts)
	}
	w, err := New(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	h.t.Cleanup(stop)
	return w, stop
}

// advance moves the clock by d in steps of step and waits, after each,
// until the watcher has looked at the clock twice.
func (h *harness) advance(w *Watcher, d, step time.Duration) {
	h.t.Helper()
	for moved := time.Duration(0); moved < d; moved += step {
		h.clock.Advance(step)
		h.settle(w)
	}
}

// settle waits until the watcher has looked at the clock twice more.
func (h *harness) settle(w *Watcher) {
	h.t.Helper()
	from := w.steps.Load()
	testpoll.Until(h.t, "the watcher looks at the clock", func() bool { return w.steps.Load() >= from+2 })
}

// session records that the bridge told Graph pair for user i, because of
// a call from source, and sets that app session in the emulator.
func (h *harness) session(i int, source string) {
	h.t.Helper()
	ctx := context.Background()
	ev := adapters.Event{ID: "c1", Source: source, Type: "call", CallID: "c1", State: adapters.CallActive, OccurredAt: h.clock.Now()}
	if err := h.store.Apply(ctx, tenant, userID(i), ev); err != nil {
		h.t.Fatal(err)
	}
	if _, _, err := h.store.Update(ctx, tenant, userID(i), func(s *state.UserState) bool {
		s.Told = &state.Told{Pair: inACall, At: h.clock.Now(), Expires: h.clock.Now().Add(15 * time.Minute)}
		return true
	}); err != nil {
		h.t.Fatal(err)
	}
	if err := h.em.SetSession(userID(i), emulator.Session{Kind: emulator.KindApp, AppID: appID, Availability: "Busy", Activity: "InACall", Lifetime: time.Hour}); err != nil {
		h.t.Fatal(err)
	}
}

// recorder is a Sink that keeps what it is handed.
type recorder struct {
	mu      sync.Mutex
	changes []outputs.Change
	seen    int
	left    []string
}

func (r *recorder) Changed(_ context.Context, c outputs.Change) {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
}

func (r *recorder) Seen(outputs.View) {
	r.mu.Lock()
	r.seen++
	r.mu.Unlock()
}

func (r *recorder) Left(_, id string) {
	r.mu.Lock()
	r.left = append(r.left, id)
	r.mu.Unlock()
}

func (r *recorder) gone() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.left)
}

func (r *recorder) all() []outputs.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]outputs.Change(nil), r.changes...)
}

func (r *recorder) seenCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}

// of returns the changes of user id.
func of(changes []outputs.Change, id string) []outputs.Change {
	var out []outputs.Change
	for _, c := range changes {
		if c.View.ID == id {
			out = append(out, c)
		}
	}
	return out
}

// intent records that the bridge is telling Graph that user i is in a
// call from source (the writer's intent, written before its call), and
// sets that app session in the emulator, as Graph has it before the
// writer records the answer.
func (h *harness) intent(i int, source string) {
	h.t.Helper()
	ctx := context.Background()
	ev := adapters.Event{ID: "c1", Source: source, Type: "call", CallID: "c1", State: adapters.CallActive, OccurredAt: h.clock.Now()}
	if err := h.store.Apply(ctx, tenant, userID(i), ev); err != nil {
		h.t.Fatal(err)
	}
	if _, _, err := h.store.Update(ctx, tenant, userID(i), func(s *state.UserState) bool {
		s.Pending = &state.Told{Pair: inACall, At: h.clock.Now()}
		return true
	}); err != nil {
		h.t.Fatal(err)
	}
	if err := h.em.SetSession(userID(i), emulator.Session{Kind: emulator.KindApp, AppID: appID, Availability: "Busy", Activity: "InACall", Lifetime: time.Hour}); err != nil {
		h.t.Fatal(err)
	}
}

// reads is how many presence reads the emulator has answered.
func (h *harness) reads() uint64 {
	var n uint64
	for k, c := range h.em.RequestCounts() {
		if strings.Contains(k.Route, "getPresencesByUserId") {
			n += c
		}
	}
	return n
}

// gatedKV is a state bucket whose watches, once hold is set, pass
// nothing on until open is closed: a watch of user states lagging behind
// Graph. With garble, they hand out every entry with a value that is no
// state: what a watcher takes from them, it took from the state store's
// copies. It counts the entries its watches passed on.
type gatedKV struct {
	jetstream.KeyValue
	hold   atomic.Bool
	open   chan struct{}
	garble bool
	passed atomic.Int64 // the entries its watches passed on
}

func (g *gatedKV) Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	inner, err := g.KeyValue.Watch(ctx, keys, opts...)
	if err != nil {
		return nil, err
	}
	out := &gatedWatcher{KeyWatcher: inner, updates: make(chan jetstream.KeyValueEntry)}
	go func() {
		defer close(out.updates)
		for e := range inner.Updates() {
			if g.hold.Load() {
				<-g.open
			}
			if e != nil {
				g.passed.Add(1)
			}
			if g.garble && e != nil {
				e = garbledEntry{e}
			}
			select {
			case out.updates <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

type gatedWatcher struct {
	jetstream.KeyWatcher
	updates chan jetstream.KeyValueEntry
}

func (w *gatedWatcher) Updates() <-chan jetstream.KeyValueEntry { return w.updates }

// garbledEntry is an entry whose value is no state.
type garbledEntry struct{ jetstream.KeyValueEntry }

func (garbledEntry) Value() []byte { return []byte("not a state") }
