package publish

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/outputstest"
)

// fake is an output whose Publish is a function; it records what it
// took, in order, and whether it was closed.
type fake struct {
	publish func(ctx context.Context, c outputs.Change) error
	mu      sync.Mutex
	got     []outputs.Change
	closed  atomic.Bool
}

func (f *fake) Publish(ctx context.Context, c outputs.Change) error {
	if f.publish != nil {
		if err := f.publish(ctx, c); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, c)
	return nil
}

func (f *fake) Close() error { f.closed.Store(true); return nil }

func (f *fake) delivered() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, 0, len(f.got))
	for _, c := range f.got {
		ids = append(ids, c.ID)
	}
	return ids
}

const tenant = "contoso.example"

func change(person string, n int) outputs.Change {
	return outputstest.Change(tenant, person, n)
}

func closeNow(t *testing.T, p *Publisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Error(err)
	}
}

// TestFilterPerOutput: each output's filter decides on its own: the
// default skips every bridge change, skip_sources [pbx] skips the PBX's
// echo but not another source's, [] publishes all, and tenants limits.
func TestFilterPerOutput(t *testing.T) {
	outs := map[string]*fake{"default": {}, "not-pbx": {}, "all": {}, "fabrikam": {}}
	p := New([]Target{
		{Name: "default", Output: outs["default"]},
		{Name: "not-pbx", Filter: outputs.Filter{SkipSources: []string{"pbx"}}, Output: outs["not-pbx"]},
		{Name: "all", Filter: outputs.Filter{SkipSources: []string{}}, Output: outs["all"]},
		{Name: "fabrikam", Filter: outputs.Filter{Tenants: []string{"fabrikam.example"}, SkipSources: []string{}}, Output: outs["fabrikam"]},
	}, Options{})
	teams := change("a", 1)
	pbx := change("b", 1)
	pbx.Origin, pbx.Sources = outputs.OriginBridge, []string{"pbx"}
	cal := change("c", 1)
	cal.Origin, cal.Sources = outputs.OriginBridge, []string{"calendar"}
	for _, c := range []outputs.Change{teams, pbx, cal} {
		p.Publish(c)
	}
	closeNow(t, p)
	want := map[string][]string{
		"default":  {teams.ID},
		"not-pbx":  {teams.ID, cal.ID},
		"all":      {teams.ID, pbx.ID, cal.ID},
		"fabrikam": {},
	}
	for _, s := range p.Stats() {
		got := outs[s.Name].delivered()
		slices.Sort(got)
		if !slices.Equal(got, want[s.Name]) {
			t.Errorf("%s got %v, want %v", s.Name, got, want[s.Name])
		}
		if int(s.Skipped) != 3-len(want[s.Name]) {
			t.Errorf("%s skipped %d, want %d", s.Name, s.Skipped, 3-len(want[s.Name]))
		}
		if n := s.Published[outputs.OriginTeams] + s.Published[outputs.OriginBridge]; int(n) != len(want[s.Name]) {
			t.Errorf("%s published %v", s.Name, s.Published)
		}
	}
}

// held is an Options.Wait that holds a worker in its backoff until the
// test lets it go, and says when it got there.
type held struct {
	waiting chan struct{}
	release chan struct{}
}

func newHeld() *held { return &held{waiting: make(chan struct{}, 16), release: make(chan struct{})} }

func (h *held) wait(ctx context.Context, _ time.Duration) {
	h.waiting <- struct{}{}
	select {
	case <-h.release:
	case <-ctx.Done():
	}
}

// TestNewestWinsWhileFailing: while the output fails, five changes of
// one person are offered; when it works again only the newest is
// delivered, and a change older than one under way is never delivered
// after it.
func TestNewestWinsWhileFailing(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	out := &fake{publish: func(context.Context, outputs.Change) error {
		if failing.Load() {
			return errors.New("nats: no responders available for request")
		}
		return nil
	}}
	h := newHeld()
	p := New([]Target{{Name: "bus", Filter: outputs.Filter{SkipSources: []string{}}, Output: out}}, Options{Workers: 1, Wait: h.wait})
	p.Publish(change("bob", 1))
	<-h.waiting // the first delivery failed; the worker is in its backoff
	for n := 2; n <= 5; n++ {
		p.Publish(change("bob", n))
	}
	p.Publish(change("bob", 3)) // late and older: ignored
	s := p.Stats()[0]
	if s.Healthy || s.Failures != 1 || s.Queued != 1 || !strings.Contains(s.LastError, "no responders") {
		t.Fatalf("while failing: %+v", s)
	}
	failing.Store(false)
	close(h.release)
	testpoll.Until(t, "the newest change delivered", func() bool { return len(out.delivered()) == 1 && p.Stats()[0].Queued == 0 })
	closeNow(t, p)
	if got, want := out.delivered(), []string{change("bob", 5).ID}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want only %v", got, want)
	}
	if s := p.Stats()[0]; !s.Healthy || s.Published[outputs.OriginTeams] != 1 {
		t.Errorf("after recovery: %+v", s)
	}
}

// TestNeverOlderAfterNewer: while a person's change is being delivered,
// an older one offered is never delivered; when that delivery fails and
// a newer one came meanwhile, only the newer one is delivered.
func TestNeverOlderAfterNewer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fail  bool // the first delivery fails
		offer []int
		want  []int
	}{
		{"older offered during delivery", false, []int{1}, []int{2}},
		{"newer offered during a failing delivery", true, []int{3}, []int{3}},
		{"older then newer during delivery", false, []int{1, 3}, []int{2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate := make(chan struct{})
			started := make(chan string, 8)
			var calls atomic.Int32
			out := &fake{publish: func(_ context.Context, c outputs.Change) error {
				started <- c.ID
				<-gate
				if calls.Add(1) == 1 && tc.fail {
					return errors.New("nats: timeout")
				}
				return nil
			}}
			p := New([]Target{{Name: "bus", Filter: outputs.Filter{SkipSources: []string{}}, Output: out}}, Options{Workers: 2, Backoff: time.Millisecond})
			p.Publish(change("bob", 2))
			<-started
			for _, n := range tc.offer {
				p.Publish(change("bob", n))
			}
			close(gate)
			closeNow(t, p)
			var want []string
			for _, n := range tc.want {
				want = append(want, change("bob", n).ID)
			}
			if got := out.delivered(); !slices.Equal(got, want) {
				t.Errorf("delivered %v, want %v", got, want)
			}
		})
	}
}

// TestBoundedQueue: past MaxQueued people the one waiting longest is
// dropped and counted.
func TestBoundedQueue(t *testing.T) {
	gate := make(chan struct{})
	started := make(chan struct{}, 8)
	out := &fake{publish: func(context.Context, outputs.Change) error {
		started <- struct{}{}
		<-gate
		return nil
	}}
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	p := New([]Target{{Name: "bus", Filter: outputs.Filter{SkipSources: []string{}}, Output: out}},
		Options{Workers: 1, MaxQueued: 3, Now: func() time.Time { return now.Add(time.Duration(clock.Load())) }})
	p.Publish(change("p0", 1))
	<-started // p0 is under way; the others wait
	for i := 1; i <= 5; i++ {
		p.Publish(change(fmt.Sprintf("p%d", i), 1))
		clock.Add(int64(time.Second))
	}
	s := p.Stats()[0]
	if s.Queued != 3 || s.Dropped != 2 {
		t.Fatalf("queued %d, dropped %d; want 3 and 2", s.Queued, s.Dropped)
	}
	if s.Lag != 3*time.Second {
		t.Errorf("lag %s, want 3s (p3 waits since 3s ago)", s.Lag)
	}
	close(gate)
	closeNow(t, p)
	got := out.delivered()
	want := []string{change("p0", 1).ID, change("p3", 1).ID, change("p4", 1).ID, change("p5", 1).ID}
	if !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
}

// TestClose: Close delivers what is queued, closes the outputs and takes
// nothing more; with an output that keeps failing it gives up at its
// deadline and says how much was left.
func TestClose(t *testing.T) {
	t.Run("drains", func(t *testing.T) {
		out := &fake{}
		p := New([]Target{{Name: "bus", Filter: outputs.Filter{SkipSources: []string{}}, Output: out}}, Options{Workers: 1})
		for i := range 50 {
			p.Publish(change(fmt.Sprintf("p%d", i), 1))
		}
		closeNow(t, p)
		if n := len(out.delivered()); n != 50 {
			t.Errorf("delivered %d of 50 before closing", n)
		}
		if !out.closed.Load() {
			t.Error("output not closed")
		}
		p.Publish(change("late", 1))
		if s := p.Stats()[0]; s.Queued != 0 || len(out.delivered()) != 50 {
			t.Errorf("a change after Close was taken: %+v", s)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		out := &fake{publish: func(context.Context, outputs.Change) error { return errors.New("nats down") }}
		h := newHeld()
		p := New([]Target{{Name: "bus", Filter: outputs.Filter{SkipSources: []string{}}, Output: out}}, Options{Workers: 1, Wait: h.wait})
		p.Publish(change("bob", 1))
		<-h.waiting
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the deadline has passed
		err := p.Close(ctx)
		if err == nil || !strings.Contains(err.Error(), "1 people's changes left undelivered") {
			t.Errorf("Close = %v, want the undelivered change named", err)
		}
		if !out.closed.Load() {
			t.Error("output not closed")
		}
	})
}

// TestLastErrorHasNoCredentials: a URL's user and password never reach
// the stats.
func TestLastErrorHasNoCredentials(t *testing.T) {
	got := clean(errors.New(`dial nats://bridge:s3cret@nats.example:4222: refused`))
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "nats.example:4222") {
		t.Errorf("clean = %q", got)
	}
}

// reporter is a fake output that reports its receiver's answers and a
// last error of its own.
type reporter struct {
	fake
	at time.Time
}

func (r *reporter) Health() outputs.Health {
	return outputs.Health{Responses: map[string]uint64{"2xx": 3, "5xx": 1}, LastError: "PUBLISH presence: 503 Service Unavailable", LastErrorAt: r.at}
}

// TestReporter: an output's own answers and last error (a refresh that
// failed between deliveries) reach its Stats.
func TestReporter(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	p := New([]Target{{Name: "phones", Type: "sip", Filter: outputs.Filter{SkipSources: []string{}}, Output: &reporter{at: at}}}, Options{})
	defer closeNow(t, p)
	s := p.Stats()[0]
	if s.Responses["2xx"] != 3 || s.Responses["5xx"] != 1 || s.LastError != "PUBLISH presence: 503 Service Unavailable" || !s.LastErrorAt.Equal(at) {
		t.Errorf("stats %+v", s)
	}
}

// TestMalformedChangeDropped: a change no output can take is dropped and
// counted, not retried, and the output stays healthy.
func TestMalformedChangeDropped(t *testing.T) {
	out := &fake{publish: func(_ context.Context, c outputs.Change) error { return c.Check() }}
	p := New([]Target{{Name: "bus", Filter: outputs.Filter{SkipSources: []string{}}, Output: out}}, Options{Workers: 1})
	bad := change("bob", 1)
	bad.Activity = strings.Repeat("x", outputs.MaxField+1)
	p.Publish(bad)
	p.Publish(change("alice", 1))
	closeNow(t, p)
	s := p.Stats()[0]
	if s.Dropped != 1 || s.Failures != 0 || !s.Healthy || !slices.Equal(out.delivered(), []string{change("alice", 1).ID}) {
		t.Errorf("stats %+v, delivered %v", s, out.delivered())
	}
}

// TestOneFailingPersonHoldsNobodyUp: a change that keeps failing goes
// back to the end of the line, and the others are delivered meanwhile.
func TestOneFailingPersonHoldsNobodyUp(t *testing.T) {
	out := &fake{publish: func(_ context.Context, c outputs.Change) error {
		if c.View.ID == "bob" {
			return errors.New("nats: KV bucket full")
		}
		return nil
	}}
	p := New([]Target{{Name: "bus", Filter: outputs.Filter{SkipSources: []string{}}, Output: out}}, Options{Workers: 1, Backoff: time.Millisecond, MaxBackoff: time.Millisecond})
	p.Publish(change("bob", 1))
	p.Publish(change("alice", 1))
	testpoll.Until(t, "alice delivered while bob fails", func() bool { return len(out.delivered()) == 1 })
	// Bob is out for a try now and then; wait for a look between tries.
	testpoll.Until(t, "bob still queued after failures", func() bool {
		s := p.Stats()[0]
		return s.Queued == 1 && s.Failures > 0
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = p.Close(ctx) // bob is left undelivered
}

// BenchmarkPublish: what one change costs the watcher (queued for two
// outputs, delivered by their workers to outputs that take it at once).
func BenchmarkPublish(b *testing.B) {
	p := New([]Target{
		{Name: "a", Filter: outputs.Filter{SkipSources: []string{}}, Output: &fake{publish: func(context.Context, outputs.Change) error { return nil }}},
		{Name: "b", Output: &fake{publish: func(context.Context, outputs.Change) error { return nil }}},
	}, Options{})
	changes := make([]outputs.Change, 10_000)
	for i := range changes {
		changes[i] = change(fmt.Sprintf("p%d", i), 1+i/len(changes))
	}
	b.ResetTimer()
	for i := range b.N {
		c := changes[i%len(changes)]
		c.SequenceNumber = fmt.Sprintf("%08d", i)
		p.Publish(c)
	}
	b.StopTimer()
	_ = p.Close(context.Background())
}

// forgetful is a fake that is also an outputs.Forgetter; it records a
// removal as "forget:" and the person's id among the changes' ids.
type forgetful struct{ fake }

func (f *forgetful) Forget(_ context.Context, tenant, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, outputs.Change{ID: "forget:" + tenant + "/" + id})
	return nil
}

// TestLeft: a person leaves the watch while a change of theirs is under
// way and a newer one waits. An output that removes what it published
// gets the change under way, then the removal (the waiting change is
// dropped), then a change after Left even though it is no newer than the
// one before; an output that does not, gets the changes as ever.
func TestLeft(t *testing.T) {
	gate, started := make(chan struct{}), make(chan struct{}, 2)
	publish := func(ctx context.Context, c outputs.Change) error {
		if c.ID == change("bob", 1).ID {
			started <- struct{}{}
			<-gate
		}
		return nil
	}
	sip, plain := &forgetful{fake{publish: publish}}, &fake{publish: publish}
	p := New([]Target{
		{Name: "sip", Filter: outputs.Filter{SkipSources: []string{}}, Output: sip},
		{Name: "plain", Filter: outputs.Filter{SkipSources: []string{}}, Output: plain},
	}, Options{})
	p.Publish(change("bob", 1))
	<-started
	<-started
	sip.publish, plain.publish = nil, nil // bob 1 is under way on both
	p.Publish(change("bob", 2))
	p.Left(tenant, "bob")
	p.Publish(change("bob", 1)) // bob is watched again
	close(gate)
	closeNow(t, p)
	want := map[string][]string{
		"sip":   {change("bob", 1).ID, "forget:" + tenant + "/bob", change("bob", 1).ID},
		"plain": {change("bob", 1).ID, change("bob", 2).ID},
	}
	for name, out := range map[string]*fake{"sip": &sip.fake, "plain": plain} {
		if got := out.delivered(); !slices.Equal(got, want[name]) {
			t.Errorf("%s got %v, want %v", name, got, want[name])
		}
	}
}

// TestEmptiedLaneStartsSmall: a lane that held many people at once (the
// first sighting of a whole tenant) does not keep its map's room once
// everyone is delivered; a lane that held a few keeps its map.
func TestEmptiedLaneStartsSmall(t *testing.T) {
	gate := make(chan struct{})
	out := &fake{publish: func(context.Context, outputs.Change) error { <-gate; return nil }}
	p := New([]Target{{Name: "bus", Filter: outputs.Filter{SkipSources: []string{}}, Output: out}}, Options{Workers: 1})
	defer closeNow(t, p)
	l := p.lanes[0]
	const many = 2 * shrinkAbove
	for i := range many {
		p.Publish(change(fmt.Sprintf("p%d", i), 1))
	}
	l.mu.Lock()
	peak := l.peak
	l.mu.Unlock()
	if peak != many {
		t.Fatalf("peak %d, want %d", peak, many)
	}
	close(gate)
	testpoll.Until(t, "everyone delivered", func() bool { return len(out.delivered()) == many })
	testpoll.Until(t, "the lane emptied", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.people) == 0
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.peak != 0 {
		t.Fatalf("the emptied lane's map was kept (peak %d): its room for %d people stays allocated", l.peak, many)
	}
}
