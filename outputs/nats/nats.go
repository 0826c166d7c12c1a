// Package nats is the output of type nats: each change is stored in a
// JetStream stream as a CloudEvents 1.0 structured JSON message, and the
// newest view per person in a KV bucket that clients can watch.
//
// Subjects are <subject_prefix>.<tenant token>.<user token> and KV keys
// <tenant token>.<user token>, where the user is the person's object id
// and tokens are written by Token, so that the dots of a tenant's domain
// or a UPN never split a subject.
package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/cloudevent"
)

// Config is a nats output's own settings (the `nats:` block of an entry
// of `outputs:`); zero values take the defaults of SetDefaults.
type Config struct {
	// Name is the output's name, for errors.
	Name string `yaml:"-"`
	// Stream holds the changes, on SubjectPrefix.>.
	Stream        string `yaml:"stream"`
	SubjectPrefix string `yaml:"subject_prefix"`
	// MaxAge and MaxBytes bound the stream; past them the oldest changes
	// are dropped.
	MaxAge   time.Duration `yaml:"max_age"`
	MaxBytes int64         `yaml:"max_bytes"`
	// DuplicateWindow is how long JetStream remembers a change's id
	// (Nats-Msg-Id) to drop a second copy: it holds every id stored in
	// the window, in the server's memory.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// Bucket is the KV bucket of each person's newest view, bounded by
	// BucketMaxBytes (a full bucket refuses new people) and, when set,
	// BucketMaxAge (a view not updated for that long is dropped).
	Bucket         string        `yaml:"bucket"`
	BucketMaxBytes int64         `yaml:"bucket_max_bytes"`
	BucketMaxAge   time.Duration `yaml:"bucket_max_age"`
	// Replicas of the stream and the bucket.
	Replicas int `yaml:"replicas"`
	// PublishTimeout bounds one Publish.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
}

// The defaults.
const (
	DefaultStream          = "PRESENCE_TEAMS"
	DefaultSubjectPrefix   = "presence.teams"
	DefaultBucket          = "PRESENCE_TEAMS_LATEST"
	DefaultMaxAge          = 24 * time.Hour
	DefaultMaxBytes        = 256 << 20
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultBucketMaxBytes  = 128 << 20
	DefaultPublishTimeout  = 5 * time.Second
)

// SetDefaults fills the keys left out.
func (c *Config) SetDefaults() {
	set := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	set(&c.Stream, DefaultStream)
	set(&c.SubjectPrefix, DefaultSubjectPrefix)
	set(&c.Bucket, DefaultBucket)
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = min(DefaultDuplicateWindow, c.MaxAge)
	}
	if c.BucketMaxBytes == 0 {
		c.BucketMaxBytes = DefaultBucketMaxBytes
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
}

// Problems lists what is wrong with c, defaults applied, each starting
// with its key ("stream: ...").
func (c Config) Problems() []string {
	var p []string
	check := func(ok bool, key, format string, args ...any) {
		if !ok {
			p = append(p, key+": "+fmt.Sprintf(format, args...))
		}
	}
	check(validName(c.Stream), "stream", "must be a stream name of letters, digits, '-' and '_' (got %q)", c.Stream)
	check(validPrefix(c.SubjectPrefix), "subject_prefix", "must be dot-separated tokens without spaces or wildcards (got %q)", c.SubjectPrefix)
	check(validName(c.Bucket), "bucket", "must be a bucket name of letters, digits, '-' and '_' (got %q)", c.Bucket)
	check(c.MaxAge >= time.Minute, "max_age", "must be at least 1m (got %s)", c.MaxAge)
	check(c.MaxBytes >= 1<<20, "max_bytes", "must be at least 1048576 bytes (got %d)", c.MaxBytes)
	check(c.DuplicateWindow >= time.Second && c.DuplicateWindow <= c.MaxAge, "duplicate_window", "must be at least 1s and at most max_age (got %s)", c.DuplicateWindow)
	check(c.BucketMaxBytes >= 1<<20, "bucket_max_bytes", "must be at least 1048576 bytes (got %d)", c.BucketMaxBytes)
	check(c.BucketMaxAge == 0 || c.BucketMaxAge >= time.Minute, "bucket_max_age", "must be 0 (keep) or at least 1m (got %s)", c.BucketMaxAge)
	check(c.Replicas >= 1 && c.Replicas <= 5, "replicas", "must be between 1 and 5 (got %d)", c.Replicas)
	check(c.PublishTimeout > 0, "publish_timeout", "must be positive")
	return p
}

func validName(s string) bool {
	return s != "" && len(s) <= 64 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ""
}

func validPrefix(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n*>") {
			return false
		}
	}
	return true
}

// Output stores changes in the stream and the bucket.
type Output struct {
	cfg    Config
	js     jetstream.JetStream
	stream jetstream.Stream
	kv     jetstream.KeyValue

	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup
	// unsure holds, per KV key, the change whose stream message may be
	// stored while its view is not (the publish or the bucket write after
	// it failed), at most maxUnsure.
	unsure map[string]unsure
}

// unsure is a change's id and sequenceNumber.
type unsure struct{ id, seq string }

// maxUnsure bounds Output.unsure; past it a retry relies on the
// duplicate window alone.
const maxUnsure = 10_000

// New checks cfg (defaults applied), creates or updates the stream and the
// bucket, and returns the output. js is the bridge's JetStream; Close
// leaves it open.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Output, error) {
	cfg.SetDefaults()
	if p := cfg.Problems(); len(p) > 0 {
		return nil, fmt.Errorf("nats output %s: %s", cfg.Name, strings.Join(p, "; "))
	}
	if js == nil {
		return nil, fmt.Errorf("nats output %s: no JetStream connection", cfg.Name)
	}
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "presence-bridge: Teams presence changes (CloudEvents)",
		Subjects:    []string{cfg.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Duplicates:  cfg.DuplicateWindow,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("nats output %s: stream %s: %w", cfg.Name, cfg.Stream, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "presence-bridge: each person's newest Teams presence",
		History:     1,
		MaxBytes:    cfg.BucketMaxBytes,
		TTL:         cfg.BucketMaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("nats output %s: bucket %s: %w", cfg.Name, cfg.Bucket, err)
	}
	return &Output{cfg: cfg, js: js, stream: stream, kv: kv, unsure: map[string]unsure{}}, nil
}

// Subject returns the subject of a person's changes.
func (o *Output) Subject(tenant, id string) string {
	return o.cfg.SubjectPrefix + "." + Key(tenant, id)
}

// Key returns the KV key of a person's newest view: the tenant's token and
// the object id's token, joined by a dot.
func Key(tenant, id string) string { return Token(tenant) + "." + Token(id) }

// Publish stores c, unless the bucket already holds c or a newer change
// of the person (by sequenceNumber): the stream message first, with c.ID
// as Nats-Msg-Id so that a second copy within the duplicate window is
// dropped by JetStream, then the view in the bucket. Any failure (NATS
// unavailable, a full bucket) is returned, so the caller offers c again.
// When c is offered again after a failure at or after its stream write,
// Publish looks at the subject's last message first and does not store c
// twice, however long NATS was away.
func (o *Output) Publish(ctx context.Context, c outputs.Change) error {
	if !o.enter() {
		return fmt.Errorf("nats output %s: %w", o.cfg.Name, outputs.ErrClosed)
	}
	defer o.running.Done()
	if err := c.Check(); err != nil {
		return fmt.Errorf("nats output %s: %w", o.cfg.Name, err)
	}
	// While the connection is down a publish would wait in the client's
	// reconnect buffer and go out after the caller has given it up (and
	// offered a newer change): refuse it instead.
	if nc := o.js.Conn(); nc != nil && !nc.IsConnected() {
		return fmt.Errorf("nats output %s: not connected to NATS (%s)", o.cfg.Name, nc.Status())
	}
	ctx, cancel := context.WithTimeout(ctx, o.cfg.PublishTimeout)
	defer cancel()
	key := Key(c.Tenant, c.View.ID)
	var revision uint64
	entry, err := o.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return fmt.Errorf("nats output %s: read %s: %w", o.cfg.Name, key, err)
	default:
		var stored outputs.View
		if json.Unmarshal(entry.Value(), &stored) == nil && !SequenceAfter(c.SequenceNumber, stored.SequenceNumber) {
			o.settle(key, stored.SequenceNumber)
			return nil // published before, or superseded
		}
		revision = entry.Revision()
	}
	subject := o.Subject(c.Tenant, c.View.ID)
	inStream, err := o.inStream(ctx, key, subject, c.ID)
	if err != nil {
		return fmt.Errorf("nats output %s: look for %s: %w", o.cfg.Name, c.ID, err)
	}
	if !inStream {
		if err := o.publish(ctx, key, subject, c); err != nil {
			return err
		}
	}
	view, err := json.Marshal(c.View)
	if err != nil {
		return fmt.Errorf("nats output %s: %w", o.cfg.Name, err)
	}
	if revision == 0 {
		_, err = o.kv.Create(ctx, key, view)
	} else {
		_, err = o.kv.Update(ctx, key, view, revision)
	}
	if err != nil {
		return fmt.Errorf("nats output %s: store %s: %w", o.cfg.Name, key, err)
	}
	o.settle(key, c.SequenceNumber)
	return nil
}

// publish stores c's message on subject, noting first that it may be
// stored without its view.
func (o *Output) publish(ctx context.Context, key, subject string, c outputs.Change) error {
	body, err := cloudevent.Encode(c)
	if err != nil {
		return fmt.Errorf("nats output %s: %w", o.cfg.Name, err)
	}
	o.mu.Lock()
	if _, ok := o.unsure[key]; ok || len(o.unsure) < maxUnsure {
		o.unsure[key] = unsure{c.ID, c.SequenceNumber}
	}
	o.mu.Unlock()
	msg := natsio.NewMsg(subject)
	msg.Data = body
	msg.Header.Set(jetstream.MsgIDHeader, c.ID)
	msg.Header.Set("Content-Type", cloudevent.MediaType)
	if _, err := o.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("nats output %s: publish %s: %w", o.cfg.Name, subject, err)
	}
	return nil
}

// inStream reports whether id is the last message on subject, looking
// only when an earlier publish of id under key may have stored it
// without its view: the duplicate window may have passed since.
func (o *Output) inStream(ctx context.Context, key, subject, id string) (bool, error) {
	o.mu.Lock()
	look := o.unsure[key].id == id
	o.mu.Unlock()
	if !look {
		return false, nil
	}
	last, err := o.stream.GetLastMsgForSubject(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return last.Header.Get(jetstream.MsgIDHeader) == id, nil
}

// settle forgets that key's stream message may be stored without its
// view once the bucket holds that change or a newer one: the view of
// sequenceNumber seq.
func (o *Output) settle(key, seq string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if u, ok := o.unsure[key]; !ok || SequenceAfter(u.seq, seq) {
		return
	}
	delete(o.unsure, key)
	if len(o.unsure) == 0 {
		o.unsure = map[string]unsure{} // a map keeps the room it grew to
	}
}

// SequenceAfter reports whether Graph's sequenceNumber a is newer than b:
// a longer one is newer, and those of one length sort as strings (Graph's
// are fixed-length; counters without leading zeros sort the same way).
func SequenceAfter(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

func (o *Output) enter() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.running.Add(1)
	return true
}

// Close stops taking changes and waits for publishes under way. The
// stream, the bucket and the connection stay.
func (o *Output) Close() error {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.running.Wait()
	return nil
}
