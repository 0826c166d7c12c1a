package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// fakeMsg is a JetStream message that records how it was settled.
type fakeMsg struct {
	data      []byte
	delivered uint64

	mu       sync.Mutex
	settled  string // ack, nak, term
	delay    time.Duration
	progress int
}

var _ jetstream.Msg = (*fakeMsg)(nil)

func eventMsg(id, user string) *fakeMsg {
	return &fakeMsg{delivered: 1, data: fmt.Appendf(nil,
		`{"id":%q,"source":"demo","type":"call","user":%q,"occurredAt":"2026-01-01T09:00:00Z","callId":"c1","state":"active"}`, id, user)}
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{NumDelivered: m.delivered}, nil
}
func (m *fakeMsg) Data() []byte                       { return m.data }
func (m *fakeMsg) Headers() nats.Header               { return nil }
func (m *fakeMsg) Subject() string                    { return "presence.events.demo" }
func (m *fakeMsg) Reply() string                      { return "" }
func (m *fakeMsg) DoubleAck(context.Context) error    { return m.Ack() }
func (m *fakeMsg) Ack() error                         { return m.settle("ack", 0) }
func (m *fakeMsg) Nak() error                         { return m.settle("nak", 0) }
func (m *fakeMsg) NakWithDelay(d time.Duration) error { return m.settle("nak", d) }
func (m *fakeMsg) Term() error                        { return m.settle("term", 0) }
func (m *fakeMsg) TermWithReason(string) error        { return m.settle("term", 0) }

func (m *fakeMsg) InProgress() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.progress++
	return nil
}

func (m *fakeMsg) settle(how string, delay time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.settled != "" {
		return errors.New("settled twice")
	}
	m.settled, m.delay = how, delay
	return nil
}

func (m *fakeMsg) state() (string, time.Duration, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.settled, m.delay, m.progress
}

type resolverFunc func(ctx context.Context, tenant, user string) (string, error)

func (f resolverFunc) Resolve(ctx context.Context, tenant, user string) (string, error) {
	return f(ctx, tenant, user)
}

type applierFunc func(ctx context.Context, tenant, userID string, ev adapters.Event) error

// Take calls f for each event in turn, as one store update would apply
// them, and stops at the first error.
func (f applierFunc) Take(ctx context.Context, tenant, userID string, events ...state.Incoming) ([]string, error) {
	for _, in := range events {
		if err := f(ctx, tenant, userID, in.Event); err != nil {
			return nil, err
		}
	}
	return make([]string, len(events)), nil
}

// gate holds the applier for one user until released, and tells when it is
// entered.
type gate struct {
	user    string
	entered chan string // event ids, as they are entered
	release chan struct{}
}

func newGate(user string) *gate {
	return &gate{user: user, entered: make(chan string, 100), release: make(chan struct{})}
}

// testWorker returns a worker whose applier records each user's events in
// order and waits at g for g's user.
func testWorker(t *testing.T, opts Options, g *gate) (*Worker, func(user string) []string) {
	t.Helper()
	var mu sync.Mutex
	applied := map[string][]string{}
	opts.SubjectPrefix = "presence.events"
	opts.Tenants = map[string]string{"demo": "t"}
	opts.Resolver = resolverFunc(func(_ context.Context, _, user string) (string, error) { return user, nil })
	opts.Applier = applierFunc(func(_ context.Context, _, userID string, ev adapters.Event) error {
		if g != nil && userID == g.user {
			g.entered <- ev.ID
			<-g.release
		}
		mu.Lock()
		defer mu.Unlock()
		applied[userID] = append(applied[userID], ev.ID)
		return nil
	})
	opts.MinDelay, opts.MaxDelay = 100*time.Millisecond, 5*time.Second
	w := New(opts)
	t.Cleanup(w.Stop)
	return w, func(user string) []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), applied[user]...)
	}
}

// otherLane returns a user whose events go to another lane than user's.
func otherLane(w *Worker, user string) string {
	for i := 0; ; i++ {
		other := fmt.Sprintf("calm%d@contoso.example", i)
		if laneOfMsg(w, eventMsg("x", other)) != laneOfMsg(w, eventMsg("x", user)) {
			return other
		}
	}
}

func settledAs(m *fakeMsg, how string) func() bool {
	return func() bool { s, _, _ := m.state(); return s == how }
}

// TestStormDoesNotHoldUpOthers: while one user's events are stuck, another
// user's event is applied and acked; the stuck user's events then follow
// in the order they came.
func TestStormDoesNotHoldUpOthers(t *testing.T) {
	const storm = "storm@contoso.example"
	g := newGate(storm)
	w, applied := testWorker(t, Options{Lanes: 4}, g)
	calm := otherLane(w, storm)

	var storms []*fakeMsg
	for i := range 50 {
		m := eventMsg(fmt.Sprintf("s%02d", i), storm)
		storms = append(storms, m)
		w.Dispatch(m)
	}
	calmMsg := eventMsg("c0", calm)
	w.Dispatch(calmMsg)
	<-g.entered
	testpoll.Until(t, "the calm user's event to be acked", settledAs(calmMsg, "ack"))
	if got := applied(storm); len(got) != 0 {
		t.Fatalf("storm events applied past the stuck one: %v", got)
	}

	close(g.release)
	for _, m := range storms {
		testpoll.Until(t, "the storm's events to be acked", settledAs(m, "ack"))
	}
	got := applied(storm)
	for i, id := range got {
		if want := fmt.Sprintf("s%02d", i); id != want {
			t.Fatalf("storm applied in the order %v", got)
		}
	}
}

// TestFullLaneHandsBack: a message that finds its lane full goes back to
// JetStream with the backoff delay instead of waiting in memory.
func TestFullLaneHandsBack(t *testing.T) {
	const storm = "storm@contoso.example"
	g := newGate(storm)
	w, _ := testWorker(t, Options{Lanes: 2, LaneDepth: 2}, g)
	first := eventMsg("s0", storm)
	w.Dispatch(first)
	<-g.entered // in hand, no longer waiting
	second, third, fourth := eventMsg("s1", storm), eventMsg("s2", storm), eventMsg("s3", storm)
	fourth.delivered = 3
	for _, m := range []*fakeMsg{second, third, fourth} {
		w.Dispatch(m)
	}
	if how, delay, _ := fourth.state(); how != "nak" || delay != 400*time.Millisecond {
		t.Fatalf("a message past a full lane was settled %q after %s, want nak after 400ms (third delivery)", how, delay)
	}
	if how, _, _ := third.state(); how != "" {
		t.Fatalf("a message with room in its lane was settled %q", how)
	}
	close(g.release)
	testpoll.Until(t, "the lane to drain", settledAs(third, "ack"))
}

// TestWaitingMessagesKeptInProgress: messages that wait in a lane, and the
// one being handled, are marked in progress before AckWait runs out.
func TestWaitingMessagesKeptInProgress(t *testing.T) {
	const storm = "storm@contoso.example"
	g := newGate(storm)
	w, _ := testWorker(t, Options{Lanes: 1, AckWait: 30 * time.Millisecond}, g)
	first, second := eventMsg("s0", storm), eventMsg("s1", storm)
	w.Dispatch(first)
	w.Dispatch(second)
	<-g.entered
	for _, m := range []*fakeMsg{first, second} {
		testpoll.Until(t, "in-progress marks", func() bool { _, _, n := m.state(); return n >= 2 })
	}
	close(g.release)
	testpoll.Until(t, "the lane to drain", settledAs(second, "ack"))
}

// TestStopHandsWaitingBack: Stop lets the messages in hand finish and
// hands the waiting ones back at once; a message dispatched after Stop goes back
// too.
func TestStopHandsWaitingBack(t *testing.T) {
	const storm = "storm@contoso.example"
	g := newGate(storm)
	w, _ := testWorker(t, Options{Lanes: 2}, g)
	msgs := []*fakeMsg{eventMsg("s0", storm), eventMsg("s1", storm), eventMsg("s2", storm)}
	w.Dispatch(msgs[0])
	<-g.entered // s0 is in hand, alone
	for _, m := range msgs[1:] {
		w.Dispatch(m)
	}
	stopped := make(chan struct{})
	go func() { w.Stop(); close(stopped) }()
	<-w.stop // stopping before the message in hand finishes
	close(g.release)
	<-stopped
	late := eventMsg("s3", storm)
	w.Dispatch(late)
	for i, want := range []string{"ack", "nak", "nak", "nak"} {
		m := append(msgs, late)[i]
		if how, delay, _ := m.state(); how != want || delay != 0 {
			t.Errorf("message %d settled %q after %s, want %s at once", i, how, delay, want)
		}
	}
}

// TestRetryDelay: a delay asked for (Retry-After, a breaker's open time)
// is a floor under the backoff, and MaxDelay caps both.
func TestRetryDelay(t *testing.T) {
	tests := []struct {
		name      string
		after     time.Duration
		delivered uint64
		want      time.Duration
	}{
		{"backoff only", 0, 3, 400 * time.Millisecond},
		{"retry-after above the backoff", time.Second, 1, time.Second},
		{"backoff above retry-after", time.Second, 6, 3200 * time.Millisecond},
		{"backoff capped", time.Second, 20, 5 * time.Second},
		{"retry-after capped", time.Hour, 1, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _ := testWorker(t, Options{}, nil)
			w.opts.Resolver = resolverFunc(func(context.Context, string, string) (string, error) {
				return "", fault.Later(tt.after, errors.New("graph answered 503"))
			})
			m := eventMsg("e1", "u@contoso.example")
			m.delivered = tt.delivered
			w.Handle(m)
			if how, delay, _ := m.state(); how != "nak" || delay != tt.want {
				t.Fatalf("settled %q after %s, want nak after %s", how, delay, tt.want)
			}
		})
	}
}

func laneOfMsg(w *Worker, m jetstream.Msg) int { return w.laneOf(m.Subject(), decode(m.Data())) }

// batchApplier records each Apply call's user and event ids, and refuses
// for good any call that holds the event id bad.
type batchApplier struct {
	mu    sync.Mutex
	calls []string
	gate  *gate
}

func (a *batchApplier) Take(_ context.Context, _, userID string, events ...state.Incoming) ([]string, error) {
	ids := make([]string, len(events))
	for i, in := range events {
		ids[i] = in.Event.ID
	}
	if a.gate != nil && userID == a.gate.user {
		a.gate.entered <- ids[0]
		<-a.gate.release
		a.gate = nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, userID+":"+strings.Join(ids, ","))
	if slices.Contains(ids, "bad") {
		return nil, fault.Permanently("event not stored", errors.New("too large"))
	}
	return make([]string, len(events)), nil
}

type deadLetterFunc func(ctx context.Context, d eventlog.DeadLetter) error

func (f deadLetterFunc) PublishDeadLetter(ctx context.Context, d eventlog.DeadLetter) error {
	return f(ctx, d)
}

// TestLaneAppliesEachUsersEventsTogether: the messages waiting in a lane
// are applied with one Apply per user, each user's events in the order
// they came; when a user's events can not be stored together for good,
// they are tried one at a time and only the one at fault is
// dead-lettered.
func TestLaneAppliesEachUsersEventsTogether(t *testing.T) {
	const a, b = "a@contoso.example", "b@contoso.example"
	g := newGate(a)
	applier := &batchApplier{gate: g}
	w := New(Options{
		SubjectPrefix: "presence.events", Tenants: map[string]string{"demo": "t"}, Lanes: 1,
		Resolver:    resolverFunc(func(_ context.Context, _, user string) (string, error) { return user, nil }),
		Applier:     applier,
		DeadLetters: deadLetterFunc(func(context.Context, eventlog.DeadLetter) error { return nil }),
		MinDelay:    100 * time.Millisecond, MaxDelay: time.Second,
	})
	t.Cleanup(w.Stop)
	first := eventMsg("a0", a)
	w.Dispatch(first)
	<-g.entered // a0 in hand; the rest waits and goes as one batch
	msgs := []*fakeMsg{eventMsg("b0", b), eventMsg("b1", b), eventMsg("a1", a), eventMsg("bad", b), eventMsg("b3", b)}
	for _, m := range msgs {
		w.Dispatch(m)
	}
	close(g.release)
	for i, want := range []string{"ack", "ack", "ack", "term", "ack"} {
		testpoll.Until(t, fmt.Sprintf("message %d to be settled %s", i, want), settledAs(msgs[i], want))
	}
	applier.mu.Lock()
	defer applier.mu.Unlock()
	want := []string{
		a + ":a0",
		b + ":b0,b1,bad,b3",                         // together, refused for good
		b + ":b0", b + ":b1", b + ":bad", b + ":b3", // then one at a time
		a + ":a1",
	}
	if !slices.Equal(applier.calls, want) {
		t.Fatalf("Apply calls\n%q\nwant\n%q", applier.calls, want)
	}
}
