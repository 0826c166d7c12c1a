// Package sipdialog is a source that connects out: a SIP user agent that
// subscribes to the dialog event package (RFC 4235, what desk phones use
// for busy-lamp fields) of configured extensions on a PBX, and turns the
// dialog-info documents it is sent into canonical call events.
//
// Every event id of a dialog is derived from the entity, the dialog and
// the call state only, so two bridges watching the same PBX publish the
// same ids and the event log keeps one copy. The one event a subscription's
// snapshot adds (every other call of the person ended, see
// adapters.AllCalls) is named after the subscription instead, so that
// each snapshot counts.
package sipdialog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/internal/sipua"
	"github.com/presence-bridge/presence-bridge/internal/wait"
)

// Source watches the dialogs of the configured entities.
type Source struct {
	name     string
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	entities []*subscription

	// Set by Run.
	sip     *sipua.Client
	contact sip.ContactHeader
	publish adapters.Publish
	ctx     context.Context

	mu      sync.Mutex
	byCall  map[string]*subscription // current subscriptions by Call-ID
	sweptAt time.Time                // when every subscription was last refreshed at once
}

var _ adapters.Runner = (*Source)(nil)

// New checks cfg and returns the source; name is stamped on its events.
// A nil logger means slog.Default().
func New(name string, cfg Config, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("sipdialog source %s: %w", name, err)
	}
	s := &Source{name: name, cfg: cfg, log: log.With("source", name), now: time.Now, byCall: make(map[string]*subscription)}
	for _, e := range cfg.Entities {
		uri, _ := cfg.entityURI(e.Entity) // validated
		s.entities = append(s.entities, &subscription{src: s, uri: uri, user: userOf(e, uri),
			log: s.log.With("entity", uri.String()), lost: make(chan string, 1), poke: make(chan struct{}, 1)})
	}
	for _, sub := range s.entities {
		for _, other := range s.entities {
			if other.user == sub.user {
				sub.peers = append(sub.peers, other)
			}
		}
	}
	return s, nil
}

// Run listens for NOTIFYs, registers when configured and keeps one
// subscription per entity until ctx ends. It returns an error only when
// it cannot listen.
func (s *Source) Run(ctx context.Context, publish adapters.Publish) error {
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("presence-bridge"), sipgo.WithUserAgentHostname(s.cfg.Domain))
	if err != nil {
		return fmt.Errorf("sipdialog source %s: %w", s.name, err)
	}
	defer ua.Close()
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(s.log))
	if err != nil {
		return fmt.Errorf("sipdialog source %s: %w", s.name, err)
	}
	addr, serve, closeListener, err := s.listen(srv)
	if err != nil {
		return fmt.Errorf("sipdialog source %s: listen on %s: %w", s.name, s.cfg.Listen, err)
	}
	defer closeListener()
	host, port, _ := net.SplitHostPort(addr)
	if s.cfg.ContactHost != "" {
		host = s.cfg.ContactHost
	}
	p, _ := strconv.Atoi(port)
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname(host), sipgo.WithClientLogger(s.log))
	if err != nil {
		return fmt.Errorf("sipdialog source %s: %w", s.name, err)
	}
	s.sip = &sipua.Client{Client: client, Server: s.cfg.PBX, Transport: s.cfg.Transport,
		User: s.cfg.User, Password: s.cfg.Password, Timeout: s.cfg.RequestTimeout}
	s.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: s.cfg.User, Host: host, Port: p}}
	if s.cfg.Transport == "tcp" {
		s.contact.Address.UriParams = sip.NewParams()
		s.contact.Address.UriParams.Add("transport", "tcp")
	}
	s.ctx, s.publish = ctx, publish
	srv.OnNotify(s.onNotify)
	go func() { _ = serve() }()
	s.log.Info("sipdialog source listening", "addr", addr, "pbx", s.cfg.PBX, "transport", s.cfg.Transport, "entities", len(s.entities))

	var wg sync.WaitGroup
	if s.cfg.Register {
		wg.Go(func() { s.register(ctx) })
	}
	for _, sub := range s.entities {
		wg.Go(func() { sub.run(ctx) })
	}
	wg.Go(func() { s.keepalive(ctx) })
	wg.Wait()
	return nil
}

// EntityStatus is whether one entity is watched, for metrics and status
// pages.
type EntityStatus struct {
	Entity     string
	User       string
	Subscribed bool
}

// Status reports each entity's subscription, in configuration order.
func (s *Source) Status() []EntityStatus {
	out := make([]EntityStatus, len(s.entities))
	for i, sub := range s.entities {
		out[i] = EntityStatus{Entity: sub.uri.String(), User: sub.user, Subscribed: sub.live.Load()}
	}
	return out
}

// listen opens the configured local address for the transport.
func (s *Source) listen(srv *sipgo.Server) (addr string, serve func() error, closer func(), err error) {
	if s.cfg.Transport == "tcp" {
		l, err := net.Listen("tcp", s.cfg.Listen)
		if err != nil {
			return "", nil, nil, err
		}
		return l.Addr().String(), func() error { return srv.ServeTCP(l) }, func() { _ = l.Close() }, nil
	}
	conn, err := net.ListenPacket("udp", s.cfg.Listen)
	if err != nil {
		return "", nil, nil, err
	}
	return conn.LocalAddr().String(), func() error { return srv.ServeUDP(conn) }, func() { _ = conn.Close() }, nil
}

// do sends req to the PBX and waits for its final answer, answering one
// digest challenge with the configured credentials.
func (s *Source) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	return s.sip.Do(ctx, req)
}

// register keeps the bridge's registration alive until ctx ends.
func (s *Source) register(ctx context.Context) {
	aor := sip.Uri{Scheme: "sip", User: s.cfg.User, Host: s.cfg.Domain}
	callID := sip.CallIDHeader(newID())
	fromTag := sip.GenerateTagN(16)
	var cseq uint32
	failures := 0
	for {
		cseq++
		req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: s.cfg.Domain})
		from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
		from.Params.Add("tag", fromTag)
		expires := sip.ExpiresHeader(int(s.cfg.RegisterExpiry / time.Second))
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: aor})
		req.AppendHeader(&callID)
		req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.REGISTER})
		req.AppendHeader(&s.contact)
		req.AppendHeader(&expires)
		res, err := s.do(ctx, req)
		if cs := req.CSeq(); cs != nil {
			cseq = cs.SeqNo
		}
		pause := time.Duration(0)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil || !res.IsSuccess():
			failures++
			pause = s.backoff(failures)
			s.log.Warn("sipdialog registration failed", "error", sipua.Answer(res, err), "retry_in", pause)
		default:
			failures = 0
			granted := s.registered(res)
			pause = sipua.RefreshIn(granted)
			s.log.Debug("sipdialog registered", "expires", granted)
		}
		if !wait.Sleep(ctx, pause) {
			return
		}
	}
}

// backoff is the delay before attempt n+1 after n failures (sipua.Backoff
// within the configured bounds).
func (s *Source) backoff(failures int) time.Duration {
	return sipua.Backoff(s.cfg.Backoff.Min, s.cfg.Backoff.Max, failures)
}

// registered reads the lifetime a REGISTER's 2xx grants the bridge's own
// contact (the answer lists every contact of the user).
func (s *Source) registered(res *sip.Response) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.Host != s.contact.Address.Host || c.Address.Port != s.contact.Address.Port {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	return sipua.GrantedExpiry(res, s.cfg.RegisterExpiry)
}

// newID returns a random Call-ID.
func newID() string {
	return sip.GenerateTagN(24)
}

// onNotify answers a NOTIFY: 481 when it belongs to no current
// subscription, else 200, and then applies it.
func (s *Source) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	var sub *subscription
	if id := req.CallID(); id != nil {
		s.mu.Lock()
		sub = s.byCall[id.Value()]
		s.mu.Unlock()
	}
	event := req.GetHeader("Event")
	if sub == nil || event == nil || !strings.EqualFold(strings.TrimSpace(strings.SplitN(event.Value(), ";", 2)[0]), "dialog") || !sub.ours(req) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	if err := tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)); err != nil {
		sub.log.Debug("sipdialog could not answer NOTIFY", "error", err)
	}
	sub.notify(req)
}

// keepalive refreshes one live subscription every KeepaliveInterval, each
// in turn, until ctx ends. A PBX that restarted has forgotten every
// subscription and answers the refresh 481; one that is gone does not
// answer. Either way keep then sweeps: every subscription is refreshed,
// and those lost are subscribed again, whose snapshots end the calls the
// PBX no longer knows. One SUBSCRIBE per interval, whatever the number of
// entities.
func (s *Source) keepalive(ctx context.Context) {
	next := 0
	for wait.Sleep(ctx, s.cfg.KeepaliveInterval) {
		for range len(s.entities) {
			sub := s.entities[next%len(s.entities)]
			next++
			if sub.live.Load() {
				sub.refreshNow()
				break
			}
		}
	}
}

// sweep refreshes every live subscription but failed, at most once per
// KeepaliveInterval: one failed refresh suggests the PBX lost or cannot
// keep any of them.
func (s *Source) sweep(failed *subscription) {
	s.mu.Lock()
	now := s.now()
	if !s.sweptAt.IsZero() && now.Sub(s.sweptAt) < s.cfg.KeepaliveInterval {
		s.mu.Unlock()
		return
	}
	s.sweptAt = now
	s.mu.Unlock()
	s.log.Warn("sipdialog refresh failed; refreshing every subscription", "entity", failed.uri.String())
	for _, sub := range s.entities {
		if sub != failed && sub.live.Load() {
			sub.refreshNow()
		}
	}
}

// noteOpen records sub's open calls for its peers' snapshots, after each
// NOTIFY; sub.mu must be held. After sub's snapshot it returns the event
// that ends every other call of sub's person, once every entity of that
// person has had a snapshot (before, the calls of one not yet heard from
// are unknown), or nil.
func (s *Source) noteOpen(sub *subscription, snapshot bool) *adapters.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub.openCalls = sub.openCalls[:0]
	for _, d := range sub.tracker.openDialogs() {
		sub.openCalls = append(sub.openCalls, callID(d))
	}
	if !snapshot {
		return nil
	}
	sub.synced = true
	var except []string
	for _, p := range sub.peers {
		if !p.synced {
			sub.log.Debug("sipdialog snapshot waits for the person's other entities", "waiting_for", p.uri.String())
			return nil
		}
		except = append(except, p.openCalls...)
	}
	slices.Sort(except)
	except = slices.Compact(except)
	if len(except) > adapters.MaxExceptCalls {
		sub.log.Warn("sipdialog snapshot lists too many calls to end the others", "calls", len(except), "limit", adapters.MaxExceptCalls)
		return nil
	}
	return &adapters.Event{
		ID:          snapshotID(sub.uri.String(), sub.callID),
		Source:      s.name,
		Type:        adapters.TypeCall,
		User:        sub.user,
		OccurredAt:  s.now().UTC(),
		Sequence:    rank(adapters.CallEnded),
		CallID:      adapters.AllCalls,
		State:       adapters.CallEnded,
		ExceptCalls: except,
	}
}

// emit publishes the events for changes, then extra when not nil,
// retrying a failed publish a few times; it gives up when ctx ends.
func (s *Source) emit(ctx context.Context, sub *subscription, changes []change, extra *adapters.Event) {
	if len(changes) == 0 && extra == nil {
		return
	}
	now := s.now().UTC()
	events := make([]adapters.Event, 0, len(changes)+1)
	for _, c := range changes {
		e := adapters.Event{
			ID:         eventID(sub.uri.String(), c.DialogID, c.State, c.Round),
			Source:     s.name,
			Type:       adapters.TypeCall,
			User:       sub.user,
			OccurredAt: now,
			Sequence:   rank(c.State),
			CallID:     callID(c.DialogID),
			State:      c.State,
		}
		if err := e.Validate(""); err != nil {
			sub.log.Warn("sipdialog event dropped", "error", err)
			continue
		}
		events = append(events, e)
	}
	if extra != nil {
		if err := extra.Validate(""); err != nil {
			sub.log.Warn("sipdialog event dropped", "error", err)
		} else {
			events = append(events, *extra)
		}
	}
	if len(events) == 0 {
		return
	}
	for attempt := 1; ; attempt++ {
		err := s.publish(ctx, events)
		if err == nil {
			return
		}
		if attempt >= 5 || !wait.Sleep(ctx, s.backoff(attempt)) {
			sub.log.Error("sipdialog events not published", "error", err, "events", len(events))
			return
		}
	}
}

// rank orders the states of one call, so that at the same instant an
// ended call is not reopened by its ringing.
func rank(state string) int64 {
	switch state {
	case adapters.CallRinging:
		return 1
	case adapters.CallActive:
		return 2
	default:
		return 3
	}
}

// eventID is the same on every bridge for one entity, dialog, state and
// round (see change.Round).
func eventID(entity, dialog, state string, round int) string {
	if round > 0 {
		state += ":r" + strconv.Itoa(round)
	}
	id := "sipdialog:" + entity + ":" + dialog + ":" + state
	if len(id) <= adapters.MaxIDLength && printable(id) {
		return id
	}
	sum := sha256.Sum256([]byte(entity + "\x00" + dialog + "\x00" + state))
	return "sipdialog:" + hex.EncodeToString(sum[:20])
}

// snapshotID names the event of one subscription's snapshot; subscription
// is its Call-ID, new for every subscription.
func snapshotID(entity, subscription string) string {
	id := "sipdialog:" + entity + ":snapshot:" + subscription
	if len(id) <= adapters.MaxIDLength && printable(id) {
		return id
	}
	sum := sha256.Sum256([]byte(entity + "\x00snapshot\x00" + subscription))
	return "sipdialog:" + hex.EncodeToString(sum[:20])
}

// callID is the event's call id for a dialog id.
func callID(dialog string) string {
	if len(dialog) <= 128 && printable(dialog) {
		return dialog
	}
	sum := sha256.Sum256([]byte(dialog))
	return "h:" + hex.EncodeToString(sum[:20])
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
