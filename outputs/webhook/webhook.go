// Package webhook is the output of type webhook: each change is POSTed to
// a URL, signed as Standard Webhooks prescribe (webhook-id, the change's
// stable id; webhook-timestamp; webhook-signature with every configured
// secret).
//
// Per person, changes go out in order, one at a time. A change that
// fails is tried again on the Standard Webhooks schedule (timeouts,
// network errors, 3xx, 429 and 5xx; Retry-After honoured), and while it
// fails a newer change of the person replaces it, so that a receiver
// never gets an older state after a newer one. Other 4xx, and the last
// try, make a dead letter; 410 Gone disables the endpoint.
//
// The newest change waiting per person is kept in a JetStream KV bucket
// (PRESENCE_WEBHOOK_<name>), so that a restarted bridge delivers what was
// waiting. A dead letter's subject is the bucket's replay key of the
// person: replaying it puts the change back in the bucket, and the output
// takes it up again.
package webhook

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/presence-bridge/presence-bridge/outputs"
	natsout "github.com/presence-bridge/presence-bridge/outputs/nats"
)

// MaxResponse is how much of a response's body is read before the
// connection is dropped.
const MaxResponse = 64 << 10

// maxPerPerson is how many changes of one person may wait behind each
// other while none failed; past it the newest replaces the last.
const maxPerPerson = 8

// The outcomes of deliveries, as Health counts them.
const (
	Delivered    = "delivered"
	Retried      = "retried"
	DeadLettered = "dead_lettered"
	Dropped      = "dropped"
)

// Clock tells the time and waits; a fake one drives the retry schedule
// in tests.
type Clock interface {
	Now() time.Time
	// At sends on the channel once the time is t.
	At(t time.Time) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                  { return time.Now() }
func (realClock) At(t time.Time) <-chan time.Time { return time.After(time.Until(t)) }

// DeadLetterFunc stores a dead letter: replaying it publishes data on
// subject (eventlog.Queue.PublishDeadLetter).
type DeadLetterFunc func(ctx context.Context, subject, source string, data []byte, reason string) error

// Options are what the output needs beyond its configuration.
type Options struct {
	// JetStream holds the queue's bucket.
	JetStream jetstream.JetStream
	// DeadLetter stores dead letters; without it they are only logged.
	DeadLetter DeadLetterFunc
	// Clock is the real time when nil.
	Clock Clock
	// Client sends the requests; one that follows no redirects, with the
	// system's roots, when nil.
	Client *http.Client
	// Drain bounds how long Close delivers what is due; 5s when zero.
	Drain  time.Duration
	Logger *slog.Logger
}

// record is what the bucket holds for a person: their newest waiting
// change and how its tries went.
type record struct {
	ID       string         `json:"id"`
	Change   outputs.Change `json:"change"`
	Attempts int            `json:"attempts"`
	Next     time.Time      `json:"next"`
	Since    time.Time      `json:"since"`
	Reason   string         `json:"reason,omitempty"`
}

// decode reads a record and checks its change.
func decode(data []byte) (record, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("unreadable record: %w", err)
	}
	r.Change.ID = r.ID
	if err := r.Change.Check(); err != nil {
		return r, err
	}
	return r, nil
}

// item is a person with changes waiting or a delivery under way.
type item struct {
	key     string
	changes []outputs.Change // in order, the one tried first
	// attempts of changes[0] have failed; due is when to try again.
	attempts int
	due      time.Time
	since    time.Time
	sending  bool
	index    int // in the heap of items due; -1 when not in it
	rev      uint64
	puts     int // bucket writes under way
}

// Output delivers changes to one endpoint.
type Output struct {
	cfg     Config
	opts    Options
	signers []*standardwebhooks.Webhook
	kv      jetstream.KeyValue
	bucket  string
	log     *slog.Logger

	ctx     context.Context // ends when Close stops waiting
	cancel  context.CancelFunc
	workers sync.WaitGroup
	wg      sync.WaitGroup

	mu        sync.Mutex
	items     map[string]*item
	due       dueHeap
	changed   chan struct{} // closed and replaced on every change of items
	delivered map[string]string
	closing   bool
	disabled  bool
	failing   bool
	counts    map[string]uint64
	lastError string
	lastAt    time.Time
	publishes sync.WaitGroup
	removals  chan removal
	removing  sync.WaitGroup
}

// Bucket returns the name of the queue's bucket of the output name.
func Bucket(name string) string { return "PRESENCE_WEBHOOK_" + name }

// New checks cfg (defaults applied), opens the queue's bucket, takes up
// what it holds and starts the workers.
func New(ctx context.Context, cfg Config, opts Options) (*Output, error) {
	cfg.SetDefaults()
	if p := cfg.Problems(); len(p) > 0 {
		return nil, fmt.Errorf("webhook output %s: %s", cfg.Name, strings.Join(p, "; "))
	}
	if opts.JetStream == nil {
		return nil, fmt.Errorf("webhook output %s: no JetStream connection", cfg.Name)
	}
	signers, _ := Secrets(cfg.Secret)
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Drain <= 0 {
		opts.Drain = 5 * time.Second
	}
	if opts.Client == nil {
		opts.Client = NewClient(cfg)
	}
	o := &Output{cfg: cfg, opts: opts, signers: signers, bucket: Bucket(cfg.Name),
		log:   opts.Logger.With("output", cfg.Name),
		items: map[string]*item{}, changed: make(chan struct{}), delivered: map[string]string{}, counts: map[string]uint64{},
		removals: make(chan removal, 4096)}
	kv, err := opts.JetStream.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      o.bucket,
		Description: "presence-bridge: changes waiting for webhook output " + cfg.Name,
		History:     1,
		MaxBytes:    max(int64(cfg.MaxQueued)*8<<10, 1<<20),
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("webhook output %s: bucket %s: %w", cfg.Name, o.bucket, err)
	}
	o.kv = kv
	if err := o.load(ctx); err != nil {
		return nil, err
	}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	replays, err := kv.Watch(o.ctx, "r.>", jetstream.IgnoreDeletes())
	if err != nil {
		o.cancel()
		return nil, fmt.Errorf("webhook output %s: watch replays: %w", cfg.Name, err)
	}
	o.wg.Go(func() { o.replays(replays) })
	for range removers {
		o.removing.Go(o.remover)
	}
	for range cfg.Concurrency {
		o.workers.Go(o.work)
	}
	return o, nil
}

// NewClient returns the client of an endpoint: the system's roots, at
// most cfg.Concurrency connections kept, cfg.Timeout per request, and no
// redirects followed.
func NewClient(cfg Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.Concurrency
	tr.MaxConnsPerHost = cfg.Concurrency
	tr.ResponseHeaderTimeout = cfg.Timeout
	return &http.Client{
		Transport:     tr,
		Timeout:       cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// load takes up the changes the bucket holds for people.
func (o *Output) load(ctx context.Context) error {
	w, err := o.kv.Watch(ctx, "p.>", jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("webhook output %s: read queue: %w", o.cfg.Name, err)
	}
	defer w.Stop()
	for e := range w.Updates() {
		if e == nil {
			return nil // all read
		}
		r, err := decode(e.Value())
		if err != nil {
			o.log.Warn("webhook queue: dropped an unreadable record", "key", e.Key(), "err", err)
			_ = o.kv.Delete(ctx, e.Key())
			continue
		}
		it := &item{key: e.Key(), changes: []outputs.Change{r.Change}, attempts: r.Attempts, due: r.Next, since: r.Since, rev: e.Revision(), index: -1}
		o.items[it.key] = it
		heap.Push(&o.due, it)
	}
	return fmt.Errorf("webhook output %s: read queue: watch ended", o.cfg.Name)
}

// key is the bucket key of the person of c: "p." and their tenant's and
// object id's tokens.
func key(c outputs.Change) string { return "p." + natsout.Key(c.Tenant, c.View.ID) }

// Publish queues c and stores it in the bucket; it returns once stored,
// the delivery goes on in the background. A change not newer than one
// queued or delivered for the person is ignored.
func (o *Output) Publish(ctx context.Context, c outputs.Change) error {
	if err := c.Check(); err != nil {
		return fmt.Errorf("webhook output %s: %w", o.cfg.Name, err)
	}
	k := key(c)
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return fmt.Errorf("webhook output %s: %w", o.cfg.Name, outputs.ErrClosed)
	}
	o.publishes.Add(1)
	defer o.publishes.Done()
	it := o.items[k]
	if it == nil {
		if d, ok := o.delivered[k]; ok && !natsout.SequenceAfter(c.SequenceNumber, d) {
			o.mu.Unlock()
			return nil
		}
		if len(o.items) >= o.cfg.MaxQueued {
			o.dropOldest()
		}
		it = &item{key: k, since: o.opts.Clock.Now(), due: o.opts.Clock.Now(), index: -1}
		o.items[k] = it
	} else if n := len(it.changes); n > 0 && !natsout.SequenceAfter(c.SequenceNumber, it.changes[n-1].SequenceNumber) {
		o.mu.Unlock()
		return nil
	}
	switch {
	case len(it.changes) == 0:
		it.changes = []outputs.Change{c}
	case it.attempts > 0 && !it.sending:
		it.changes = []outputs.Change{c} // failing: the newest replaces it
	case len(it.changes) >= maxPerPerson:
		it.changes[len(it.changes)-1] = c
	default:
		it.changes = append(it.changes, c)
	}
	if !it.sending && it.index < 0 {
		heap.Push(&o.due, it)
	}
	rec := o.record(it)
	it.puts++
	o.wake()
	o.mu.Unlock()

	rev, err := o.put(ctx, k, rec)
	o.mu.Lock()
	it.puts--
	if err == nil && rev > it.rev {
		it.rev = rev
	}
	forget := o.items[k] == it && len(it.changes) == 0 && !it.sending && it.puts == 0
	if forget {
		delete(o.items, k)
	}
	o.mu.Unlock()
	if forget {
		o.remove(k, it.rev) // delivered before it was stored
	}
	if err != nil {
		return fmt.Errorf("webhook output %s: store change %s: %w", o.cfg.Name, c.ID, err)
	}
	return nil
}

// record is what the bucket keeps of it. Called with mu held.
func (o *Output) record(it *item) record {
	c := it.changes[len(it.changes)-1]
	return record{ID: c.ID, Change: c, Attempts: it.attempts, Next: it.due, Since: it.since}
}

func (o *Output) put(ctx context.Context, k string, r record) (uint64, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return o.kv.Put(ctx, k, data)
}

// remove deletes the person's record unless a newer one was stored.
func (o *Output) remove(k string, rev uint64) {
	if rev == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = o.kv.Delete(ctx, k, jetstream.LastRevision(rev))
}

// removal is a record to delete once nothing newer was stored.
type removal struct {
	key string
	rev uint64
}

// removeLater has the removers delete the record, so that a worker goes
// on to its next delivery at once; when they are behind, it deletes
// itself.
func (o *Output) removeLater(k string, rev uint64) {
	if rev == 0 {
		return
	}
	select {
	case o.removals <- removal{k, rev}:
	default:
		go o.remove(k, rev)
	}
}

// removers is how many goroutines delete delivered records.
const removers = 4

func (o *Output) remover() {
	for r := range o.removals {
		o.remove(r.key, r.rev)
	}
}

// dropOldest gives up the person waiting longest, to make room. Called
// with mu held.
func (o *Output) dropOldest() {
	var oldest *item
	for _, it := range o.items {
		if !it.sending && (oldest == nil || it.since.Before(oldest.since)) {
			oldest = it
		}
	}
	if oldest == nil {
		return
	}
	o.counts[Dropped]++
	o.log.Warn("webhook queue full: dropped the change waiting longest", "change", oldest.changes[0].ID, "max_queued", o.cfg.MaxQueued)
	if oldest.index >= 0 {
		heap.Remove(&o.due, oldest.index)
	}
	delete(o.items, oldest.key)
	o.removeLater(oldest.key, oldest.rev)
}

// wake tells waiting workers that items changed. Called with mu held.
func (o *Output) wake() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// take returns the item first due, marked as sending, or nil and when
// the next is due (zero: none is). Called with mu held.
func (o *Output) take() (*item, time.Time) {
	if o.disabled || o.due.Len() == 0 {
		return nil, time.Time{}
	}
	if next := o.due[0].due; next.After(o.opts.Clock.Now()) {
		return nil, next
	}
	it := heap.Pop(&o.due).(*item)
	it.sending = true
	return it, time.Time{}
}

func (o *Output) work() {
	for {
		o.mu.Lock()
		it, next := o.take()
		changed := o.changed
		if it == nil && o.closing {
			o.mu.Unlock()
			return
		}
		c := outputs.Change{}
		if it != nil {
			c = it.changes[0]
		}
		o.mu.Unlock()
		if it != nil {
			o.settle(it, c, o.send(c))
			continue
		}
		var timer <-chan time.Time
		if !next.IsZero() {
			timer = o.opts.Clock.At(next)
		}
		select {
		case <-changed:
		case <-timer:
		case <-o.ctx.Done():
			return
		}
	}
}

// failure is a delivery that did not succeed.
type failure struct {
	reason     string
	retry      bool
	gone       bool
	retryAfter time.Duration
}

func (f *failure) Error() string { return f.reason }

// send POSTs c once.
func (o *Output) send(c outputs.Change) *failure {
	body, err := Encode(c)
	if err != nil {
		return &failure{reason: err.Error()}
	}
	now := o.opts.Clock.Now()
	sig, err := Sign(o.signers, c.ID, now, body)
	if err != nil {
		return &failure{reason: err.Error()}
	}
	ctx, cancel := context.WithTimeout(o.ctx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.cfg.URL, strings.NewReader(string(body)))
	if err != nil {
		return &failure{reason: "build request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "presence-bridge")
	req.Header.Set(standardwebhooks.HeaderWebhookID, c.ID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	resp, err := o.opts.Client.Do(req)
	if err != nil {
		return &failure{reason: "request failed: " + requestError(err), retry: true}
	}
	// Read a bounded part of the body so that the connection may be
	// reused; a longer one is dropped with the connection.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponse))
	resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusGone:
		return &failure{reason: "HTTP 410 Gone: endpoint disabled", gone: true}
	case code >= 300 && code < 400:
		return &failure{reason: fmt.Sprintf("HTTP %d: redirect not followed", code), retry: true}
	case code == http.StatusTooManyRequests || code >= 500:
		return &failure{reason: fmt.Sprintf("HTTP %d", code), retry: true, retryAfter: RetryAfter(resp.Header.Get("Retry-After"), o.opts.Clock.Now())}
	default:
		return &failure{reason: fmt.Sprintf("HTTP %d: refused, not retried", code)}
	}
}

// requestError describes err without the URL (which the configuration
// holds; it may carry a token in its query).
func requestError(err error) string {
	var u interface{ Unwrap() error }
	if errors.As(err, &u) {
		if inner := u.Unwrap(); inner != nil {
			err = inner
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout") {
		return "timed out"
	}
	return err.Error()
}

// settle records how the delivery of c went.
func (o *Output) settle(it *item, c outputs.Change, f *failure) {
	o.mu.Lock()
	it.sending = false
	o.wake() // the workers see what follows once mu is released
	o.failing = f != nil
	if f == nil {
		o.counts[Delivered]++
		o.delivered[it.key] = c.SequenceNumber
		it.changes = it.changes[1:]
		it.attempts = 0
		if len(it.changes) > 0 {
			it.due = o.opts.Clock.Now()
			heap.Push(&o.due, it)
			o.mu.Unlock()
			return
		}
		forget := it.puts == 0
		if forget {
			delete(o.items, it.key)
		}
		rev := it.rev
		o.mu.Unlock()
		if forget {
			o.removeLater(it.key, rev)
		}
		return
	}
	o.lastError, o.lastAt = f.reason, o.opts.Clock.Now()
	it.attempts++
	if len(it.changes) > 1 {
		// While it fails, the newest change replaces those waiting.
		it.changes = it.changes[len(it.changes)-1:]
	}
	if f.gone {
		o.disabled = true
		o.log.Error("webhook endpoint answered 410 Gone: output disabled until the bridge restarts", "change", c.ID)
	}
	last := it.attempts >= o.cfg.MaxAttempts
	if f.gone || (f.retry && !last) || it.changes[0].ID != c.ID {
		if !f.gone {
			o.counts[Retried]++
		}
		it.due = o.opts.Clock.Now().Add(Pause(it.attempts, f.retryAfter))
		heap.Push(&o.due, it)
		rec, rev := o.record(it), it.rev
		rec.Reason = f.reason
		if it.attempts == 1 {
			o.log.Warn("webhook delivery failed; retrying", "change", c.ID, "err", f.reason, "next", it.due)
		}
		o.mu.Unlock()
		o.update(it, rec, rev)
		return
	}
	o.counts[DeadLettered]++
	delete(o.items, it.key)
	rec, rev := o.record(it), it.rev
	o.mu.Unlock()
	reason := fmt.Sprintf("webhook output %s: %s after %d tries", o.cfg.Name, f.reason, rec.Attempts)
	o.log.Warn("webhook delivery given up: dead letter", "change", c.ID, "reason", reason)
	o.deadLetter(rec, reason)
	o.remove(it.key, rev)
}

// update stores the item's tries, unless a newer change was stored.
func (o *Output) update(it *item, r record, rev uint64) {
	if rev == 0 {
		return
	}
	data, err := json.Marshal(r)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := o.kv.Update(ctx, it.key, data, rev); err == nil {
		o.mu.Lock()
		if n > it.rev {
			it.rev = n
		}
		o.mu.Unlock()
	}
}

// deadLetter stores r as a dead letter whose replay puts it back in the
// bucket under the person's replay key.
func (o *Output) deadLetter(r record, reason string) {
	if o.opts.DeadLetter == nil {
		return
	}
	r.Attempts, r.Next, r.Reason = 0, time.Time{}, reason
	data, err := json.Marshal(r)
	if err != nil {
		return
	}
	subject := "$KV." + o.bucket + ".r." + strings.TrimPrefix(key(r.Change), "p.")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.opts.DeadLetter(ctx, subject, "webhook-"+o.cfg.Name, data, reason); err != nil {
		o.log.Error("webhook dead letter not stored", "change", r.ID, "err", err)
	}
}

// replays takes up the changes replayed from dead letters.
func (o *Output) replays(w jetstream.KeyWatcher) {
	defer w.Stop()
	for {
		select {
		case <-o.ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			o.replay(e)
		}
	}
}

func (o *Output) replay(e jetstream.KeyValueEntry) {
	defer func() { _ = o.kv.Delete(context.Background(), e.Key(), jetstream.LastRevision(e.Revision())) }()
	r, err := decode(e.Value())
	if err != nil {
		o.log.Warn("webhook replay: record dropped", "key", e.Key(), "err", err)
		return
	}
	k := key(r.Change)
	o.mu.Lock()
	if d, ok := o.delivered[k]; ok && !natsout.SequenceAfter(r.Change.SequenceNumber, d) {
		o.mu.Unlock()
		o.log.Info("webhook replay skipped: a newer change of the person was delivered", "change", r.ID)
		return
	}
	o.mu.Unlock()
	if err := o.Publish(o.ctx, r.Change); err != nil {
		o.log.Warn("webhook replay failed", "change", r.ID, "err", err)
	}
}

// Health is the output's figures for metrics and the status page.
func (o *Output) Health() outputs.Health {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := outputs.Health{Deliveries: map[string]uint64{}, Queued: len(o.items), Healthy: !o.failing && !o.disabled,
		Disabled: o.disabled, LastError: o.lastError, LastErrorAt: o.lastAt}
	for k, v := range o.counts {
		h.Deliveries[k] = v
	}
	now := o.opts.Clock.Now()
	for _, it := range o.items {
		h.Oldest = max(h.Oldest, now.Sub(it.since))
	}
	return h
}

// Close stops taking changes, delivers what is due for up to the drain
// time, and stops the workers. What still waits stays in the bucket.
func (o *Output) Close() error {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return nil
	}
	o.closing = true
	o.wake()
	o.mu.Unlock()
	o.publishes.Wait()
	done := make(chan struct{})
	go func() { o.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(o.opts.Drain):
	}
	o.cancel()
	<-done
	o.wg.Wait()
	close(o.removals)
	o.removing.Wait()
	return nil
}

// dueHeap orders items by when they are due.
type dueHeap []*item

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	it := x.(*item)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	it.index = -1
	*h = old[:len(old)-1]
	return it
}
