package apply

import (
	"hash/fnv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// A lane applies the messages of the users hashed to it, one at a time and
// in the order they came. The lane is chosen from the event's tenant and
// its user as the source names them after the identity hints, before any
// lookup: resolving may take a Graph call, which must not hold up the
// dispatch that feeds every lane. One person named two ways ("ext:1001"
// and a UPN) may land in two lanes; the state store writes each user's state
// with compare-and-set and orders claims by their time, so the outcome is
// the same, as it is when two bridges share the work.
type lane struct {
	wake chan struct{} // a message was queued

	// mu guards the waiting messages and the one being handled, which the
	// keeper marks in progress.
	mu       sync.Mutex
	waiting  []*held
	handling []*held
}

// held is a message in a lane, decoded once, and when JetStream last
// heard of it.
type held struct {
	msg     jetstream.Msg
	decoded decoded
	touched time.Time
}

// startLanes starts the lanes and, when AckWait is set, the keeper.
func (w *Worker) startLanes() {
	w.lanes = make([]*lane, w.opts.Lanes)
	for i := range w.lanes {
		l := &lane{wake: make(chan struct{}, 1)}
		w.lanes[i] = l
		w.done.Add(1)
		go func() { defer w.done.Done(); w.runLane(l) }()
	}
	if w.opts.AckWait > 0 {
		w.done.Add(1)
		go func() { defer w.done.Done(); w.keep() }()
	}
}

// Dispatch hands msg to its user's lane; it is the consumer's callback and
// never waits for a lane. A message whose lane is full goes back to
// JetStream with the backoff delay, so one user's storm fills one lane and
// the server's ack-pending limit, not the memory or the other lanes; its
// events may then be applied out of order, which the state's ordering by
// event time makes harmless.
func (w *Worker) Dispatch(msg jetstream.Msg) {
	d := decode(msg.Data())
	l := w.lanes[w.laneOf(msg.Subject(), d)]
	l.mu.Lock()
	select {
	case <-w.stop:
		l.mu.Unlock()
		w.settle(w.opts.Log, "nak", msg.Nak())
		return
	default:
	}
	if len(l.waiting) >= w.opts.LaneDepth {
		l.mu.Unlock()
		delay := w.backoff(msg)
		w.opts.Log.Debug("lane full; event handed back", "subject", msg.Subject(), "delay", delay)
		w.settle(w.opts.Log, "nak", msg.NakWithDelay(delay))
		w.opts.Count(w.sourceOf(msg.Subject()), OutcomeRetry)
		return
	}
	l.waiting = append(l.waiting, &held{msg: msg, decoded: d, touched: time.Now()})
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// laneOf hashes the event's tenant and user to a lane; a message that does
// not decode goes to the lane of its subject and is dead-lettered there.
func (w *Worker) laneOf(subject string, d decoded) int {
	if len(w.lanes) == 1 {
		return 0
	}
	key := subject
	if d.err == nil && len(d.events) == 1 {
		ev := d.events[0]
		key = w.opts.Tenants[ev.Source] + "\x00" + adapters.NormalizeIdentity(w.opts.Identity[ev.Source].Apply(ev.User))
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(w.lanes)))
}

// runLane handles the lane's messages in order, all that wait at once (up
// to maxBatch), until Stop, then hands the
// ones still waiting back to JetStream for another bridge or a restart.
func (w *Worker) runLane(l *lane) {
	for {
		l.mu.Lock()
		if len(l.waiting) == 0 {
			l.mu.Unlock()
			select {
			case <-l.wake:
				continue
			case <-w.stop:
				return
			}
		}
		n := min(len(l.waiting), maxBatch)
		batch := make([]*held, n)
		copy(batch, l.waiting)
		clear(l.waiting[:n])
		l.waiting = l.waiting[n:]
		l.handling = batch
		l.mu.Unlock()

		select {
		case <-w.stop:
			for _, h := range batch {
				w.settle(w.opts.Log, "nak", h.msg.Nak())
			}
		default:
			w.handleBatch(batch)
		}

		l.mu.Lock()
		l.handling = nil
		l.mu.Unlock()
	}
}

// keep marks the messages that have waited in a lane, or been handled, for
// a third of AckWait as in progress, so that a long queue behind a slow
// user is not delivered twice.
func (w *Worker) keep() {
	every := w.opts.AckWait / 3
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-ticker.C:
			for _, l := range w.lanes {
				l.mu.Lock()
				for _, h := range l.handling {
					touch(h, now, every)
				}
				for _, h := range l.waiting {
					touch(h, now, every)
				}
				l.mu.Unlock()
			}
		}
	}
}

// touch tells JetStream that h is still being worked on, at most once per
// every.
func touch(h *held, now time.Time, every time.Duration) {
	if now.Sub(h.touched) < every {
		return
	}
	h.touched = now
	_ = h.msg.InProgress() // an error means settled meanwhile, or gone
}

// Stop ends the lanes: each finishes the message in hand and hands the
// waiting ones back to JetStream without delay. Call it after the consumer
// has stopped calling Dispatch; it is idempotent.
func (w *Worker) Stop() {
	w.once.Do(func() {
		close(w.stop)
		w.done.Wait()
		for _, l := range w.lanes {
			l.mu.Lock()
			for _, h := range l.waiting {
				w.settle(w.opts.Log, "nak", h.msg.Nak())
			}
			l.waiting = nil
			l.mu.Unlock()
		}
	})
}
