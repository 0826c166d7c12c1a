package sipdialog

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"mime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/presence-bridge/presence-bridge/internal/sipua"
	"github.com/presence-bridge/presence-bridge/internal/wait"
)

// subscription keeps one entity's dialog subscription alive.
type subscription struct {
	src  *Source
	uri  sip.Uri
	user string
	log  *slog.Logger
	// lost is signalled when a NOTIFY ends the subscription or shows that
	// a document was missed.
	lost chan string
	// poke asks keep to refresh the subscription now.
	poke chan struct{}
	// live reports that the entity is subscribed.
	live atomic.Bool
	// peers are the source's entities of the same person, sub included.
	peers []*subscription

	// Guarded by src.mu, for the peers' snapshots: whether a snapshot
	// came in this run, and the calls open since.
	synced    bool
	openCalls []string

	mu      sync.Mutex // guards the fields below; serialises NOTIFYs
	tracker tracker
	callID  string
	fromTag string
	toTag   string
	cseq    uint32
	target  sip.Uri
	routes  []string
}

// run subscribes, refreshes, and subscribes again after every loss, with
// backoff while the PBX refuses or does not answer, until ctx ends. After
// Config.LapseAfter failed attempts the entity's open calls end.
func (sub *subscription) run(ctx context.Context) {
	cfg := sub.src.cfg
	// Spread the first SUBSCRIBEs of many entities over a few seconds.
	if n := len(sub.src.entities); n > 1 && !wait.Sleep(ctx, rand.N(min(time.Duration(n)*20*time.Millisecond, 10*time.Second))) {
		return
	}
	failures := 0
	for {
		granted, err := sub.subscribe(ctx)
		if ctx.Err() != nil {
			sub.unsubscribe()
			return
		}
		if err != nil {
			failures++
			if failures == cfg.LapseAfter {
				sub.lapse(ctx, err.Error())
			}
			pause := sub.src.backoff(failures)
			sub.log.Warn("sipdialog subscription failed", "error", err, "attempt", failures, "retry_in", pause)
			if !wait.Sleep(ctx, pause) {
				return
			}
			continue
		}
		sub.live.Store(true)
		sub.log.Info("sipdialog subscribed", "expires", granted, "attempts", failures+1)
		failures = 0
		reason := sub.keep(ctx, granted)
		sub.live.Store(false)
		if ctx.Err() != nil {
			sub.unsubscribe()
			return
		}
		sub.log.Warn("sipdialog subscription lost, subscribing again", "reason", reason)
		// After a PBX restart every entity subscribes again: spread them.
		if n := len(sub.src.entities); n > 1 && !wait.Sleep(ctx, rand.N(min(time.Duration(n)*20*time.Millisecond, 10*time.Second))) {
			sub.unsubscribe()
			return
		}
	}
}

// keep refreshes the subscription before each granted lifetime runs out,
// and when poked (see Source.keepalive), and returns why it ended. A failed
// refresh makes the source refresh the others too.
func (sub *subscription) keep(ctx context.Context, granted time.Duration) string {
	for {
		t := time.NewTimer(sipua.RefreshIn(granted))
		select {
		case <-ctx.Done():
			t.Stop()
			return "stopped"
		case reason := <-sub.lost:
			t.Stop()
			return reason
		case <-sub.poke:
			t.Stop()
		case <-t.C:
		}
		res, err := sub.send(ctx, sub.request(sub.src.cfg.SubscribeExpiry, true))
		if ctx.Err() != nil {
			return "stopped"
		}
		if err != nil || !res.IsSuccess() {
			sub.src.sweep(sub)
			return "refresh: " + sipua.Answer(res, err)
		}
		granted = sipua.GrantedExpiry(res, sub.src.cfg.SubscribeExpiry)
		sub.log.Debug("sipdialog subscription refreshed", "expires", granted)
	}
}

// subscribe starts a new subscription and returns its granted lifetime.
func (sub *subscription) subscribe(ctx context.Context) (time.Duration, error) {
	sub.mu.Lock()
	old := sub.callID
	sub.callID, sub.fromTag, sub.toTag = newID(), sip.GenerateTagN(16), ""
	sub.cseq, sub.target, sub.routes = 0, sub.uri, nil
	sub.tracker.restart()
	select {
	case <-sub.lost:
	default:
	}
	select {
	case <-sub.poke:
	default:
	}
	sub.mu.Unlock()
	sub.src.track(old, sub.callID, sub)

	res, err := sub.send(ctx, sub.request(sub.src.cfg.SubscribeExpiry, false))
	if err != nil {
		return 0, err
	}
	if !res.IsSuccess() {
		return 0, fmt.Errorf("SUBSCRIBE answered %d %s", res.StatusCode, res.Reason)
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if to := res.To(); to != nil {
		if tag, ok := to.Params.Get("tag"); ok {
			sub.toTag = tag
		}
	}
	if c := res.Contact(); c != nil {
		sub.target = c.Address
	}
	rr := res.GetHeaders("Record-Route")
	sub.routes = sub.routes[:0]
	for i := len(rr) - 1; i >= 0; i-- {
		sub.routes = append(sub.routes, rr[i].Value())
	}
	return sipua.GrantedExpiry(res, sub.src.cfg.SubscribeExpiry), nil
}

// request builds a SUBSCRIBE; inDialog makes it a refresh of the current
// subscription.
func (sub *subscription) request(expires time.Duration, inDialog bool) *sip.Request {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.cseq++
	uri := sub.uri
	if inDialog {
		uri = sub.target
	}
	req := sip.NewRequest(sip.SUBSCRIBE, uri)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: sub.src.cfg.User, Host: sub.src.cfg.Domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sub.fromTag)
	to := &sip.ToHeader{Address: sub.uri, Params: sip.NewParams()}
	if inDialog && sub.toTag != "" {
		to.Params.Add("tag", sub.toTag)
		for _, r := range sub.routes {
			req.AppendHeader(sip.NewHeader("Route", r))
		}
	}
	callID := sip.CallIDHeader(sub.callID)
	exp := sip.ExpiresHeader(int(expires / time.Second))
	maxfwd := sip.MaxForwardsHeader(70)
	contact := sub.src.contact
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: sub.cseq, MethodName: sip.SUBSCRIBE})
	req.AppendHeader(&maxfwd)
	req.AppendHeader(&contact)
	req.AppendHeader(sip.NewHeader("Event", "dialog"))
	req.AppendHeader(sip.NewHeader("Accept", "application/dialog-info+xml"))
	req.AppendHeader(&exp)
	return req
}

// unsubscribe ends the subscription at the PBX, best effort, when the
// source stops.
func (sub *subscription) unsubscribe() {
	sub.mu.Lock()
	callID, established := sub.callID, sub.toTag != ""
	sub.mu.Unlock()
	defer sub.src.track(callID, "", nil)
	if !established {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = sub.send(ctx, sub.request(0, true))
}

// send sends one SUBSCRIBE and keeps its CSeq, which answering a
// challenge raises, so the next request of the dialog follows it.
func (sub *subscription) send(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	res, err := sub.src.do(ctx, req)
	if cs := req.CSeq(); cs != nil {
		sub.mu.Lock()
		if req.CallID() != nil && req.CallID().Value() == sub.callID {
			sub.cseq = max(sub.cseq, cs.SeqNo)
		}
		sub.mu.Unlock()
	}
	return res, err
}

// ours reports whether a NOTIFY belongs to the current subscription, and
// learns the subscription's dialog from the first one when it comes
// before the SUBSCRIBE's answer.
func (sub *subscription) ours(req *sip.Request) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	to, from := req.To(), req.From()
	if to == nil || from == nil || req.CallID() == nil || req.CallID().Value() != sub.callID {
		return false
	}
	if tag, _ := to.Params.Get("tag"); tag != sub.fromTag {
		return false
	}
	tag, _ := from.Params.Get("tag")
	if sub.toTag == "" {
		sub.toTag = tag
		if c := req.Contact(); c != nil {
			sub.target = c.Address
		}
	}
	return tag == sub.toTag
}

// notify applies one NOTIFY of the current subscription. The
// subscription's snapshot, its first full document or a NOTIFY without a
// body while active, also ends every other call the source claims for the
// entity's person (see Source.noteOpen).
func (sub *subscription) notify(req *sip.Request) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	state := ""
	if h := req.GetHeader("Subscription-State"); h != nil {
		state = h.Value()
	}
	value, _, _ := strings.Cut(state, ";")
	value = strings.ToLower(strings.TrimSpace(value))
	if body := req.Body(); len(body) == 0 && value == "active" {
		r := sub.tracker.empty()
		sub.src.emit(sub.src.ctx, sub, r.changes, sub.src.noteOpen(sub, r.snapshot))
	} else if len(body) > 0 {
		mediaType := ""
		if ct := req.ContentType(); ct != nil {
			mediaType, _, _ = mime.ParseMediaType(ct.Value())
		}
		if mediaType != "application/dialog-info+xml" {
			sub.log.Warn("sipdialog NOTIFY body ignored", "content_type", clip(mediaType))
		} else if doc, err := ParseDialogInfo(body); err != nil {
			sub.log.Warn("sipdialog NOTIFY body rejected", "error", err)
		} else {
			r := sub.tracker.apply(doc)
			if r.stale {
				sub.log.Debug("sipdialog stale dialog-info ignored", "version", doc.Version)
			}
			if r.dropped > 0 {
				sub.log.Warn("sipdialog dialogs beyond the limit ignored", "dropped", r.dropped, "limit", MaxDialogs)
			}
			sub.src.emit(sub.src.ctx, sub, r.changes, sub.src.noteOpen(sub, r.snapshot))
			if r.gap {
				sub.signal("a dialog-info version was missed")
			}
		}
	}
	if value == "terminated" {
		sub.signal("terminated by the PBX: " + clip(state))
	}
}

// signal tells run that the subscription is gone.
func (sub *subscription) signal(reason string) {
	select {
	case sub.lost <- reason:
	default:
	}
}

// lapse ends the entity's open calls, because its subscription cannot be
// kept alive.
func (sub *subscription) lapse(ctx context.Context, reason string) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	changes := sub.tracker.lapse()
	sub.src.noteOpen(sub, false)
	sub.log.Warn("sipdialog entity unwatched, its calls end", "reason", reason, "ended", len(changes))
	sub.src.emit(ctx, sub, changes, nil)
}

// refreshNow asks keep to refresh the subscription at once.
func (sub *subscription) refreshNow() {
	select {
	case sub.poke <- struct{}{}:
	default:
	}
}

// track points NOTIFYs with Call-ID now at sub, and forgets old.
func (s *Source) track(old, now string, sub *subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byCall, old)
	if now != "" {
		s.byCall[now] = sub
	}
}
