// Package sip is the output of type sip: the bridge, as a SIP user agent,
// publishes each mapped person's Teams presence to a presence server such
// as Kamailio with PUBLISH (RFC 3903): Event: presence as PIDF with an
// RPID activity, and, unless turned off, Event: dialog as a dialog-info
// document with one confirmed dialog while the person is in a Teams call,
// so that busy-lamp keys light. The server then NOTIFYs every subscribed
// phone.
//
// Each publication keeps its entity-tag: it is refreshed before it
// expires (SIP-If-Match, no body), modified (SIP-If-Match and a body),
// published anew after 412, and removed (Expires: 0) when the person
// leaves the watch (Forget) and when the output closes. After 423 it asks for the Min-Expires the server wants. A
// failed publication (489, 5xx, no answer) is retried with backoff from
// scratch, and logged once per state rather than per attempt; a server
// that restarted and forgot its publications answers the next refresh
// with 412, and the bridge publishes again.
package sip

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/presence-bridge/presence-bridge/internal/sipua"
	"github.com/presence-bridge/presence-bridge/outputs"
)

// Output publishes Teams presence to a SIP presence server.
type Output struct {
	cfg     Config
	mapping Mapping
	log     *slog.Logger
	now     func() time.Time
	ua      *sipgo.UserAgent
	sip     *sipua.Client
	people  map[string]sip.Uri // lower-cased person → entity
	from    sip.Uri

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
	state    map[string]*person // by tenant/object id
	expires  time.Duration      // asked for; raised by 423
	stop     chan struct{}
	done     chan struct{}

	statsMu   sync.Mutex
	responses map[string]uint64
	lastError string
	lastAt    time.Time
}

var (
	_ outputs.Output    = (*Output)(nil)
	_ outputs.Forgetter = (*Output)(nil)
)

// person is what the output holds for one person.
type person struct {
	mu       sync.Mutex
	uri      sip.Uri
	lastID   string
	presence publication
	dialog   publication
	// dialogID is the current Teams call's dialog; inCall whether it is
	// confirmed; version numbers the dialog documents.
	dialogID string
	inCall   bool
	version  uint64
}

// publication is one event package's publication of one entity.
type publication struct {
	event, contentType string
	etag               string
	body               []byte // the state to hold; nil before the first
	refreshAt          time.Time
	failures           int
	retryAt            time.Time
	// failing is the failure last logged, "" while all is well.
	failing string
}

// New checks cfg (defaults applied by the caller or here) and returns the
// output. A nil logger means slog.Default().
func New(cfg Config, log *slog.Logger) (*Output, error) {
	return newOutput(cfg, log, time.Now)
}

// newOutput is New with a clock for the refresh and backoff times.
func newOutput(cfg Config, log *slog.Logger, now func() time.Time) (*Output, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg.SetDefaults()
	if p := cfg.Problems(); len(p) > 0 {
		return nil, fmt.Errorf("sip output %s: %s", cfg.Name, strings.Join(p, "; "))
	}
	o := &Output{cfg: cfg, mapping: NewMapping(cfg.Mapping), log: log.With("output", cfg.Name), now: now,
		people: map[string]sip.Uri{}, state: map[string]*person{}, expires: cfg.Expires,
		stop: make(chan struct{}), done: make(chan struct{}), responses: map[string]uint64{},
		from: sip.Uri{Scheme: "sip", User: cfg.User, Host: cfg.Domain}}
	for k, v := range cfg.Extensions {
		uri, _ := cfg.entity(v) // checked by Problems
		o.people[strings.ToLower(k)] = uri
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("presence-bridge"), sipgo.WithUserAgentHostname(cfg.Domain))
	if err != nil {
		return nil, fmt.Errorf("sip output %s: %w", cfg.Name, err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname(localHost(cfg.Server)), sipgo.WithClientLogger(o.log))
	if err != nil {
		_ = ua.Close()
		return nil, fmt.Errorf("sip output %s: %w", cfg.Name, err)
	}
	o.ua = ua
	o.sip = &sipua.Client{Client: client, Server: cfg.Server, Transport: cfg.Transport, User: cfg.User, Password: cfg.Password, Timeout: cfg.RequestTimeout}
	go o.refresh()
	return o, nil
}

// localHost is the address this host reaches server from, for Via and
// Contact; "" lets sipgo choose.
func localHost(server string) string {
	c, err := net.Dial("udp", server)
	if err != nil {
		return ""
	}
	defer c.Close()
	host, _, _ := net.SplitHostPort(c.LocalAddr().String())
	return host
}

// Publish publishes c's person's presence (and dialog state), when the
// person is mapped to an extension; a person who is not is skipped.
func (o *Output) Publish(ctx context.Context, c outputs.Change) error {
	if err := c.Check(); err != nil {
		return fmt.Errorf("sip output %s: %w", o.cfg.Name, err)
	}
	uri, ok := o.people[strings.ToLower(c.User)]
	if !ok {
		uri, ok = o.people[strings.ToLower(c.View.ID)]
	}
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return fmt.Errorf("sip output %s: %w", o.cfg.Name, outputs.ErrClosed)
	}
	if !ok {
		o.mu.Unlock()
		return nil
	}
	key := c.Tenant + "/" + c.View.ID
	p := o.state[key]
	if p == nil {
		p = &person{uri: uri,
			presence: publication{event: "presence", contentType: ContentTypePIDF},
			dialog:   publication{event: "dialog", contentType: ContentTypeDialogInfo}}
		o.state[key] = p
	}
	o.inflight.Add(1)
	o.mu.Unlock()
	defer o.inflight.Done()

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastID == c.ID {
		return nil
	}
	pair := outputs.Pair{Availability: c.Availability, Activity: c.Activity}
	rule := o.mapping.Rule(pair)
	c2 := c
	p.presence.body = BuildPIDF(Presence{Entity: p.uri.String(), Rule: rule, Note: c.Availability + ", " + c.Activity, Change: &c2,
		Compact: o.cfg.Transport == "udp"})
	var errs []error
	if err := o.send(ctx, p, &p.presence, p.presence.body, false); err != nil {
		errs = append(errs, err)
	}
	if *o.cfg.Dialog && (rule.Dialog || p.inCall) {
		if rule.Dialog && !p.inCall {
			sum := sha256.Sum256([]byte(key + "\x00" + c.SequenceNumber))
			p.dialogID = sipua.DialogPrefix + hex.EncodeToString(sum[:8])
		}
		if rule.Dialog != p.inCall || p.dialog.body == nil {
			p.version++
			p.dialog.body = BuildDialogInfo(Dialog{Entity: p.uri.String(), ID: p.dialogID, Confirmed: rule.Dialog, Version: p.version})
			if err := o.send(ctx, p, &p.dialog, p.dialog.body, false); err != nil {
				errs = append(errs, err)
			} else {
				p.inCall = rule.Dialog
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sip output %s: %s: %w", o.cfg.Name, p.uri.String(), err)
	}
	p.lastID = c.ID
	return nil
}

// send publishes body (nil: refresh) on pub, or removes it; p.mu is held.
// It follows 412 (publish anew with the state held) and 423 (ask for
// Min-Expires) and records the outcome for retries and logs.
func (o *Output) send(ctx context.Context, p *person, pub *publication, body []byte, remove bool) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var res *sip.Response
		res, err = o.request(ctx, p.uri, pub, body, remove)
		o.log.Debug("sip PUBLISH", "entity", p.uri.String(), "event", pub.event, "body", body != nil, "remove", remove, "answer", sipua.Answer(res, err))
		switch {
		case err != nil:
		case res.IsSuccess():
			if remove {
				pub.etag = ""
				return nil
			}
			if tag := res.GetHeader("SIP-ETag"); tag != nil {
				pub.etag = strings.TrimSpace(tag.Value())
			}
			granted := sipua.GrantedExpiry(res, o.asked())
			pub.refreshAt = o.now().Add(sipua.RefreshIn(granted))
			o.recovered(p, pub)
			return nil
		case res.StatusCode == 412 && pub.etag != "" && !remove:
			// The server no longer holds the publication (it restarted,
			// or it lapsed): publish the state anew.
			pub.etag = ""
			if body == nil {
				body = pub.body
			}
			o.log.Info("sip publication unknown to the server; publishing anew", "entity", p.uri.String(), "event", pub.event)
			continue
		case res.StatusCode == sip.StatusIntervalToBrief:
			if h := res.GetHeader("Min-Expires"); h != nil {
				if n, perr := strconv.Atoi(strings.TrimSpace(h.Value())); perr == nil && n > 0 && n <= 86400 {
					o.mu.Lock()
					o.expires = max(o.expires, time.Duration(n)*time.Second)
					o.mu.Unlock()
					continue
				}
			}
			err = fmt.Errorf("PUBLISH %s: 423 without a usable Min-Expires", pub.event)
		default:
			err = fmt.Errorf("PUBLISH %s: %s", pub.event, sipua.Answer(res, nil))
		}
		break
	}
	if remove {
		return err
	}
	// Whatever failed, the next attempt sends the whole state again (a
	// server that lost the publication answers it 412, and it is
	// published anew).
	pub.failures++
	pub.retryAt = o.now().Add(sipua.Backoff(o.cfg.Backoff.Min, o.cfg.Backoff.Max, pub.failures))
	o.failed(p, pub, err)
	return err
}

// request sends one PUBLISH and counts its answer.
func (o *Output) request(ctx context.Context, to sip.Uri, pub *publication, body []byte, remove bool) (*sip.Response, error) {
	req := sip.NewRequest(sip.PUBLISH, to)
	from := &sip.FromHeader{Address: o.from, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(12))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: to})
	req.AppendHeader(sip.NewHeader("Event", pub.event))
	expires := int(o.asked() / time.Second)
	if remove {
		expires = 0
	}
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	if pub.etag != "" {
		req.AppendHeader(sip.NewHeader("SIP-If-Match", pub.etag))
	}
	if body != nil && !remove {
		req.AppendHeader(sip.NewHeader("Content-Type", pub.contentType))
		req.SetBody(body)
	}
	res, err := o.sip.Do(ctx, req)
	o.count(res, err)
	return res, err
}

func (o *Output) asked() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.expires
}

// failed logs a failure once per state and keeps it for the status page.
func (o *Output) failed(p *person, pub *publication, err error) {
	msg := err.Error()
	state := msg
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		state = msg[i+2:]
	}
	if pub.failing != state {
		o.log.Warn("sip publication failed; retrying with backoff", "entity", p.uri.String(), "event", pub.event, "error", msg, "retry_at", pub.retryAt)
	}
	pub.failing = state
	o.statsMu.Lock()
	o.lastError, o.lastAt = p.uri.String()+": "+msg, o.now()
	o.statsMu.Unlock()
}

func (o *Output) recovered(p *person, pub *publication) {
	if pub.failing != "" {
		o.log.Info("sip publication succeeds again", "entity", p.uri.String(), "event", pub.event)
	}
	pub.failing, pub.failures = "", 0
}

// count records a PUBLISH's answer by class: 2xx, 4xx, 5xx, 6xx, or none.
func (o *Output) count(res *sip.Response, err error) {
	class := "none"
	if err == nil && res != nil {
		class = fmt.Sprintf("%dxx", res.StatusCode/100)
	}
	o.statsMu.Lock()
	o.responses[class]++
	o.statsMu.Unlock()
}

// Stats are an output's SIP figures.
type Stats struct {
	// Responses counts PUBLISH answers by class (2xx, 3xx, 4xx, 5xx, 6xx,
	// none for no answer).
	Responses map[string]uint64
	// LastError is the last failed publication (no credentials in it).
	LastError   string
	LastErrorAt time.Time
}

// Stats returns the output's figures.
func (o *Output) Stats() Stats {
	o.statsMu.Lock()
	defer o.statsMu.Unlock()
	r := make(map[string]uint64, len(o.responses))
	for k, v := range o.responses {
		r[k] = v
	}
	return Stats{Responses: r, LastError: o.lastError, LastErrorAt: o.lastAt}
}

// Health is Stats as outputs.Reporter has it: the answers by class and
// the last failure. A sip output keeps no queue of its own (Deliveries
// nil); the publisher's queue and retries are its deliveries.
func (o *Output) Health() outputs.Health {
	s := o.Stats()
	return outputs.Health{Responses: s.Responses, LastError: s.LastError, LastErrorAt: s.LastErrorAt}
}

// refreshTick is how often the output looks for publications to refresh
// or retry.
const refreshTick = 500 * time.Millisecond

// refresh refreshes publications before they expire and retries failed
// ones, until Close.
func (o *Output) refresh() {
	defer close(o.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-o.stop
		cancel()
	}()
	t := time.NewTicker(refreshTick)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-t.C:
		}
		o.mu.Lock()
		people := make([]*person, 0, len(o.state))
		for _, p := range o.state {
			people = append(people, p)
		}
		o.mu.Unlock()
		// A few at a time, so that a server that does not answer holds up
		// a round for people/refreshWorkers request timeouts, not people.
		work := make(chan *person)
		var wg sync.WaitGroup
		for range refreshWorkers {
			wg.Go(func() {
				for p := range work {
					o.refreshPerson(ctx, p)
				}
			})
		}
		for _, p := range people {
			if ctx.Err() != nil {
				break
			}
			work <- p
		}
		close(work)
		wg.Wait()
	}
}

// refreshWorkers bounds the refreshes and retries under way at once.
const refreshWorkers = 8

// refreshPerson refreshes p's publications that are due and retries
// those that failed, once their backoff has passed.
func (o *Output) refreshPerson(ctx context.Context, p *person) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pub := range []*publication{&p.presence, &p.dialog} {
		if ctx.Err() != nil {
			return
		}
		now := o.now()
		switch {
		case pub.body == nil:
		case pub.failures > 0 && !now.Before(pub.retryAt):
			_ = o.send(ctx, p, pub, pub.body, false)
		case pub.failures == 0 && pub.etag != "" && !now.Before(pub.refreshAt):
			_ = o.send(ctx, p, pub, nil, false)
		}
	}
}

// Forget removes the publications of the person tenant/id, who left the
// watch: it ends the Teams call it published for them, if one is on,
// removes each publication (Expires: 0) and forgets the person, so that
// a later change publishes them from scratch. A failure is logged once
// and not retried: the publication lapses at its expiry.
func (o *Output) Forget(ctx context.Context, tenant, id string) error {
	key := tenant + "/" + id
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return fmt.Errorf("sip output %s: %w", o.cfg.Name, outputs.ErrClosed)
	}
	p := o.state[key]
	delete(o.state, key)
	if p == nil {
		o.mu.Unlock()
		return nil
	}
	o.inflight.Add(1)
	o.mu.Unlock()
	defer o.inflight.Done()

	p.mu.Lock()
	defer p.mu.Unlock()
	if err := o.remove(ctx, p); err != nil {
		err = fmt.Errorf("sip output %s: remove %s: %w", o.cfg.Name, p.uri.String(), err)
		o.log.Warn("sip publications of a person who left the watch not removed; they lapse at their expiry", "entity", p.uri.String(), "error", err)
		return err
	}
	return nil
}

// remove ends p's Teams call, if one is on, and removes p's publications
// (Expires: 0); p.mu is held. Whatever the answers, p holds nothing
// afterwards, so the refresh loop sends nothing more for p.
func (o *Output) remove(ctx context.Context, p *person) error {
	var errs []error
	if p.inCall && p.dialog.etag != "" && ctx.Err() == nil {
		// A removed dialog publication leaves watchers with its last
		// state (Kamailio): end the call first.
		p.version++
		res, err := o.request(ctx, p.uri, &p.dialog, BuildDialogInfo(Dialog{Entity: p.uri.String(), ID: p.dialogID, Version: p.version}), false)
		if err == nil && res.IsSuccess() {
			if tag := res.GetHeader("SIP-ETag"); tag != nil {
				p.dialog.etag = strings.TrimSpace(tag.Value())
			}
		} else {
			errs = append(errs, fmt.Errorf("end the Teams call: %s", sipua.Answer(res, err)))
		}
	}
	for _, pub := range []*publication{&p.presence, &p.dialog} {
		if pub.etag != "" && ctx.Err() == nil {
			if err := o.send(ctx, p, pub, nil, true); err != nil {
				errs = append(errs, err)
			}
		}
		*pub = publication{event: pub.event, contentType: pub.contentType}
	}
	p.inCall, p.lastID = false, ""
	return errors.Join(errs...)
}

// closeTimeout bounds the removals Close sends.
const closeTimeout = 5 * time.Second

// Close waits for publishes under way, ends the Teams calls it
// published, removes every publication (Expires: 0) within closeTimeout,
// and stops the user agent. It is idempotent.
func (o *Output) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.mu.Unlock()
	o.inflight.Wait()
	close(o.stop)
	<-o.done
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	work := make(chan *person)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for p := range work {
				p.mu.Lock()
				_ = o.remove(ctx, p)
				p.mu.Unlock()
			}
		})
	}
	for _, p := range o.state {
		work <- p
	}
	close(work)
	wg.Wait()
	return o.ua.Close()
}
