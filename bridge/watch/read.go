package watch

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/bridge/writer"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/outputs"
	natsout "github.com/presence-bridge/presence-bridge/outputs/nats"
)

// read makes one getPresencesByUserId request for ids (sorted) and takes
// in what it answers. A throttled read pauses the watcher for Retry-After; other
// failures count towards the breaker; either way the round goes on with
// the next chunk. It waits for a slot of Options.Reads first, and frees
// it once the answer is in.
func (w *Watcher) read(ctx context.Context, ids []string, now time.Time) {
	if !w.opts.Reads.acquire(ctx) {
		return // ctx ended
	}
	// The sessions as they were when the read began: what the aggregate
	// is compared with (catchUp below may take in newer states, such as
	// a status message the writer set after Graph answered).
	observed := make(map[string]writer.Session)
	for _, id := range ids {
		if s, _ := w.sessions.Get(id); s.observe {
			observed[id], _ = s.observed()
		}
	}
	presences, err := w.breaker.Execute(func() ([]graphclient.Presence, error) {
		callCtx, cancel := context.WithTimeout(ctx, readTimeout)
		defer cancel()
		return w.opts.Graph.GetPresencesByUserID(callCtx, ids)
	})
	w.opts.Reads.release()
	if err != nil {
		outcome := "failed"
		if class, after := fault.Of(err); class == fault.Throttled {
			outcome = "throttled"
			w.pause = now.Add(max(after, time.Second))
			w.log.Warn("presence read throttled by graph; pausing", "retry_after", after)
		} else if ctx.Err() == nil {
			w.log.Warn("read graph presence", "people", len(ids), "err", err)
		}
		w.setStatus(func(s *Status) { s.Reads[outcome]++ })
		return
	}
	w.setStatus(func(s *Status) { s.Reads["ok"]++; s.LastRead = now })
	w.catchUp(ctx)
	for _, p := range presences {
		// The id as the watcher holds it (ids is sorted), so that what is
		// kept (the last seen, the views) shares that string and none of
		// the answer's.
		id := strings.ToLower(p.ID)
		if i, ok := slices.BinarySearch(ids, id); ok {
			id = ids[i]
		}
		if was, ok := observed[id]; ok {
			got := writer.Aggregate{Pair: adapters.Pair{Availability: p.Availability, Activity: p.Activity}, StatusText: p.StatusText()}
			if err := writer.ObserveAggregate(ctx, w.opts.State, w.opts.Tenant, id, was, got, now, w.opts.Observe); err != nil {
				w.log.Warn("record the aggregate", "user", id, "err", err)
			}
		}
		if w.opts.Watch.Enabled && w.watched(id) {
			s, held := w.sessions.Get(id) // as caught up: what explains the read
			w.saw(ctx, id, p, s, held, now)
		}
	}
}

// saw takes in one person's presence: nothing changes unless its
// sequenceNumber is newer than the last seen; a newer one with another
// pair is a change, handed to the sink with its origin.
func (w *Watcher) saw(ctx context.Context, id string, p graphclient.Presence, s session, held bool, now time.Time) {
	before, known := w.last(id)
	pair := adapters.Pair{Availability: p.Availability, Activity: p.Activity}
	if _, ok := w.loaded[id]; ok {
		delete(w.loaded, id) // from here on the view is the record
		if len(w.loaded) == 0 {
			w.loaded = nil // a map keeps its room when emptied
		}
	}
	if known && (!natsout.SequenceAfter(p.SequenceNumber, before.seq) || pair == *before.pair) {
		if natsout.SequenceAfter(p.SequenceNumber, before.seq) {
			before.seq = p.SequenceNumber
		}
		v := w.view(id, before, now, s, held)
		w.opts.Views.Set(v)
		w.opts.Sink.Seen(v)
		return
	}
	now1 := last{pair: w.pair(pair), seq: p.SequenceNumber, since: now}
	rec, _ := json.Marshal(seenRecord{Availability: pair.Availability, Activity: pair.Activity, Sequence: now1.seq, Since: now1.since})
	if _, err := w.opts.Seen.Put(ctx, seenKey(w.opts.Tenant, id), rec); err != nil {
		w.log.Warn("keep the last seen presence", "user", id, "err", err)
	}
	c := outputs.Change{ID: outputs.ChangeID(w.opts.Tenant, id, p.SequenceNumber), View: w.view(id, now1, now, s, held)}
	if known {
		c.Previous = &outputs.Pair{Availability: before.pair.Availability, Activity: before.pair.Activity}
	}
	w.opts.Views.Set(c.View)
	w.setStatus(func(st *Status) { st.Changes[c.Origin]++ })
	history.Record(w.opts.History, w.opts.Tenant, id, history.TeamsChange(c.Origin, pair, c.Sources, c.SequenceNumber, now))
	w.opts.Sink.Changed(ctx, c)
}

// last returns the person's last seen presence: as loaded from the seen
// bucket when they have not been read since the lease began, else the
// lookup's view.
func (w *Watcher) last(id string) (last, bool) {
	if l, ok := w.loaded[id]; ok {
		return l, true
	}
	l, ok := w.opts.Views.Last(w.opts.Tenant, id)
	if !ok {
		return last{}, false
	}
	return last{pair: w.pair(adapters.Pair{Availability: l.Pair.Availability, Activity: l.Pair.Activity}), seq: l.Sequence, since: l.Since}, true
}

// view is the person's presence as last seen, with its origin: bridge
// when the bridge's own session explains the pair.
func (w *Watcher) view(id string, l last, now time.Time, s session, held bool) outputs.View {
	v := outputs.View{User: id, ID: id, Tenant: w.opts.Tenant, Availability: l.pair.Availability, Activity: l.pair.Activity,
		Origin: outputs.OriginTeams, Since: l.since, SeenAt: now, SequenceNumber: l.seq}
	if upn := w.upnOf(id); upn != "" {
		v.User = upn
	} else if upn, _ := w.named.Get(id); upn != "" {
		v.User = upn
	}
	if ok, sources := s.explains(*l.pair); held && ok {
		v.Origin, v.Sources = outputs.OriginBridge, sources
	}
	return v
}

// leave forgets a person who left the watch, and their last seen
// presence.
func (w *Watcher) leave(id string) {
	delete(w.loaded, id)
	w.opts.Views.Delete(w.opts.Tenant, id)
	if w.opts.Sink != nil {
		w.opts.Sink.Left(w.opts.Tenant, id)
	}
	if w.opts.Seen == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.opts.Seen.Delete(ctx, seenKey(w.opts.Tenant, id)); err != nil {
		w.log.Warn("forget the last seen presence", "user", id, "err", err)
	}
}

// catchUpWait bounds how long a read's outcome waits for the user states
// written before it.
const catchUpWait = 5 * time.Second

// catchUp takes in every user state of the tenant written before it was
// called. The writer records a call's intent (Pending) before it calls
// Graph, so once caught up after a read, every pair the read shows because
// of the bridge is explained by a session or an intent, even when the
// state watch lags behind Graph. It gives up after catchUpWait and judges
// with what it has.
func (w *Watcher) catchUp(ctx context.Context) {
	if w.opts.StateStream == nil || w.states == nil {
		return
	}
	kv := w.opts.State.KV()
	last, err := w.opts.StateStream.GetLastMsgForSubject(ctx, "$KV."+kv.Bucket()+"."+state.UserKeys(w.opts.Tenant))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return
	}
	if err != nil {
		w.log.Debug("newest user state revision", "err", err)
		return
	}
	if w.stateRev >= last.Sequence {
		return
	}
	timeout := time.NewTimer(catchUpWait)
	defer timeout.Stop()
	for w.stateRev < last.Sequence {
		select {
		case e, ok := <-w.states.Updates():
			if !ok {
				return
			}
			if e != nil {
				w.takeState(e)
			}
		case <-timeout.C:
			w.log.Warn("user states lag behind a presence read; judging its origins without them", "revision", w.stateRev, "want", last.Sequence)
			return
		case <-ctx.Done():
			return
		}
	}
}
