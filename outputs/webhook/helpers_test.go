package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/presence-bridge/presence-bridge/outputs"
)

// The test secrets: whsec_ and the base64 of 24 bytes.
const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24h"
)

// fakeClock moves only when told to; At fires when Advance reaches it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) At(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(c.now) {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{t, ch})
	return ch
}

// Advance moves the time by d and fires the waiters it passes.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// receiver is a real HTTP endpoint on 127.0.0.1 that verifies each
// request as a Standard Webhooks receiver does, with the library, and
// answers what answer says.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	// clock, when set, is the time the signature's timestamp is checked
	// against (a fake one); else the library checks it against the real
	// time.
	clock    *fakeClock
	start    int64 // the fake clock's time at the start, Unix seconds
	verifier []*standardwebhooks.Webhook

	mu       sync.Mutex
	answer   func(c outputs.Change) int
	got      []outputs.Change
	headers  []http.Header
	requests atomic.Int64
	bad      atomic.Int64
}

func newReceiver(t *testing.T, clock *fakeClock, secrets ...string) *receiver {
	t.Helper()
	r := &receiver{t: t, clock: clock}
	if clock != nil {
		r.start = clock.Now().Unix()
	}
	for _, s := range secrets {
		v, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		r.verifier = append(r.verifier, v)
	}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	for _, v := range r.verifier {
		if r.clock != nil {
			err = v.VerifyIgnoringTimestamp(body, req.Header)
			// The timestamp is the sender's (fake) time: not after it, and
			// not before the test began.
			if n, perr := strconv.ParseInt(req.Header.Get("webhook-timestamp"), 10, 64); err == nil && (perr != nil || n > r.clock.Now().Unix() || n < r.start) {
				err = fmt.Errorf("timestamp %q is not the sender's clock", req.Header.Get("webhook-timestamp"))
			}
		} else {
			err = v.Verify(body, req.Header)
		}
		if err != nil {
			r.bad.Add(1)
			r.t.Errorf("signature does not verify: %v (%s)", err, req.Header.Get("webhook-signature"))
			http.Error(w, `{"error":"bad signature"}`, http.StatusUnauthorized)
			return
		}
	}
	var b struct {
		Type      string          `json:"type"`
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var c outputs.Change
	if err := dec.Decode(&b); err != nil || b.Type != outputs.ChangeType || json.Unmarshal(b.Data, &c) != nil {
		r.t.Errorf("body %s: %v", body, err)
		http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
		return
	}
	c.ID = req.Header.Get("webhook-id")
	r.mu.Lock()
	answer := r.answer
	r.mu.Unlock()
	code := http.StatusNoContent
	if answer != nil {
		code = answer(c)
	}
	if code >= 200 && code < 300 {
		r.mu.Lock()
		r.got = append(r.got, c)
		r.headers = append(r.headers, req.Header.Clone())
		r.mu.Unlock()
	}
	w.WriteHeader(code)
}

func (r *receiver) setAnswer(f func(c outputs.Change) int) {
	r.mu.Lock()
	r.answer = f
	r.mu.Unlock()
}

func (r *receiver) changes(*testing.T) []outputs.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]outputs.Change(nil), r.got...)
}

// logBuffer is a slog handler's output, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// names gives each output of a test a name (and bucket) of its own.
var names atomic.Int32

func newName() string { return fmt.Sprintf("hook%d", names.Add(1)) }

// build returns an output to url on js with the fake clock and cfg's
// changes applied.
func build(t *testing.T, js jetstream.JetStream, clock *fakeClock, url string, edit func(*Config, *Options)) *Output {
	t.Helper()
	cfg := Config{Name: newName(), URL: url, Secret: secretA + " " + secretB, Timeout: 2 * time.Second}
	opts := Options{JetStream: js, Logger: slog.New(slog.DiscardHandler)}
	if clock != nil {
		opts.Clock = clock
	}
	if edit != nil {
		edit(&cfg, &opts)
	}
	out, err := New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	return out
}
