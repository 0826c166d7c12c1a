package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/presence-bridge/presence-bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/outputstest"
)

const tenant = "contoso.example"

func person(n int) string {
	return "00000000-0000-4000-8000-" + strings.Repeat("0", 11) + string(rune('a'+n))
}

// TestSignVectors: the signer gives the signature of the Standard
// Webhooks libraries' published test vector, and with two secrets one
// v1 entry per secret, each verified by the library alone.
func TestSignVectors(t *testing.T) {
	signers, err := Secrets(secretA)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Sign(signers, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("signature %q, want %q", got, want)
	}
	signers, err = Secrets(secretA + "  " + secretB)
	if err != nil {
		t.Fatal(err)
	}
	ts, body := time.Now(), []byte(`{"a":1}`)
	header, err := Sign(signers, "id-1", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if parts := strings.Split(header, " "); len(parts) != 2 || !strings.HasPrefix(parts[0], "v1,") || !strings.HasPrefix(parts[1], "v1,") {
		t.Fatalf("header %q, want two v1 signatures", header)
	}
	for _, s := range []string{secretA, secretB} {
		v, _ := standardwebhooks.NewWebhook(s)
		h := http.Header{}
		h.Set("webhook-id", "id-1")
		h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		h.Set("webhook-signature", header)
		if err := v.Verify(body, h); err != nil {
			t.Errorf("secret %s...: %v", s[:10], err)
		}
	}
}

// TestSecrets: each bad secret is refused, naming its position, never
// its value.
func TestSecrets(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "required"},
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "secret 1 of 1 must start with whsec_"},
		{secretA + " whsec_c2hvcnQ=", "secret 2 of 2 must be whsec_ and the base64 of 24 to 64 bytes"},
		{"whsec_!!!!MfKQ9r8GKYqrTwjUPD8ILPZIo2La", "secret 1 of 1 is not valid base64"},
	} {
		_, err := Secrets(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
			continue
		}
		for _, f := range strings.Fields(c.in) {
			if strings.Contains(err.Error(), strings.TrimPrefix(f, "whsec_")) {
				t.Errorf("error %q quotes the secret", err)
			}
		}
	}
}

func TestConformance(t *testing.T) {
	js, _ := natstest.Start(t)
	outputstest.Run(t, outputstest.Suite{
		New: func(t *testing.T) (outputs.Output, func(*testing.T) []outputs.Change) {
			r := newReceiver(t, nil, secretA, secretB)
			out := build(t, js, nil, r.srv.URL, nil)
			return out, r.changes
		},
		Package: "github.com/presence-bridge/presence-bridge/outputs/webhook",
		BadConfigs: []outputstest.BadConfig{
			{Name: "no url", Want: "url: required", Build: func() (outputs.Output, error) {
				return New(context.Background(), Config{Name: "x", Secret: secretA}, Options{JetStream: js})
			}},
			{Name: "ftp url", Want: "url: must be an absolute http or https URL", Build: func() (outputs.Output, error) {
				return New(context.Background(), Config{Name: "x", URL: "ftp://example.com/", Secret: secretA}, Options{JetStream: js})
			}},
			{Name: "no secret", Want: "secret: required", Build: func() (outputs.Output, error) {
				return New(context.Background(), Config{Name: "x", URL: "https://example.com/"}, Options{JetStream: js})
			}},
			{Name: "no jetstream", Want: "no JetStream", Build: func() (outputs.Output, error) {
				return New(context.Background(), Config{Name: "x", URL: "https://example.com/", Secret: secretA}, Options{})
			}},
		},
	})
}

// TestDelivered: the headers and body of a delivery, verified by the
// library against the real time with both secrets.
func TestDelivered(t *testing.T) {
	js, _ := natstest.Start(t)
	r := newReceiver(t, nil, secretA, secretB)
	out := build(t, js, nil, r.srv.URL, nil)
	c := outputstest.Change(tenant, person(1), 2)
	if err := out.Publish(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "delivered", func() bool { return len(r.changes(t)) == 1 })
	got := r.changes(t)[0]
	if !outputstest.Equal(got, c) || got.Previous == nil {
		t.Errorf("delivered %+v, want %+v", got, c)
	}
	h := r.headers[0]
	if h.Get("webhook-id") != c.ID || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h)
	}
	testpoll.Until(t, "health counts the delivery", func() bool {
		h := out.Health()
		return h.Deliveries[Delivered] == 1 && h.Queued == 0 && h.Healthy
	})
}

// advanceUntil moves the fake clock by step until cond holds.
func advanceUntil(t *testing.T, clock *fakeClock, step time.Duration, what string, cond func() bool) {
	t.Helper()
	testpoll.Until(t, what, func() bool {
		if cond() {
			return true
		}
		clock.Advance(step)
		return cond()
	})
}

// TestRetriedThroughOutage: the receiver answers 503 for five minutes;
// the change is tried on the schedule (immediately, 5 s, 5 min) and
// delivered once the receiver is back, with nothing sent meanwhile.
func TestRetriedThroughOutage(t *testing.T) {
	js, _ := natstest.Start(t)
	clock := newFakeClock()
	r := newReceiver(t, clock, secretA)
	start := clock.Now()
	r.setAnswer(func(outputs.Change) int {
		if clock.Now().Sub(start) < 5*time.Minute {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	out := build(t, js, clock, r.srv.URL, func(c *Config, _ *Options) { c.Secret = secretA })
	c := outputstest.Change(tenant, person(1), 1)
	if err := out.Publish(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "health counts the retry", func() bool { return out.Health().Deliveries[Retried] == 1 })
	clock.Advance(4 * time.Second)
	if n := r.requests.Load(); n != 1 {
		t.Fatalf("%d requests before 5 s passed, want 1", n)
	}
	clock.Advance(2 * time.Second) // 6 s: the second try (5 s + at most 10% jitter)
	testpoll.Until(t, "second try", func() bool { return r.requests.Load() == 2 })
	testpoll.Until(t, "second retry counted", func() bool { return out.Health().Deliveries[Retried] == 2 })
	clock.Advance(4 * time.Minute)
	if n := r.requests.Load(); n != 2 {
		t.Fatalf("%d requests 4 min later, want 2", n)
	}
	clock.Advance(2 * time.Minute) // past 5 min + 10%
	testpoll.Until(t, "delivered after the outage", func() bool { return out.Health().Deliveries[Delivered] == 1 })
	if n := len(r.changes(t)); n != 1 {
		t.Errorf("receiver got %d changes, want 1", n)
	}
	if h := out.Health(); h.Deliveries[Delivered] != 1 || h.Deliveries[Retried] != 2 || h.Queued != 0 || !strings.Contains(h.LastError, "HTTP 503") {
		t.Errorf("health %+v", h)
	}
}

// TestRetryAfter: a 429's Retry-After replaces the schedule's pause.
func TestRetryAfter(t *testing.T) {
	js, _ := natstest.Start(t)
	clock := newFakeClock()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	t.Cleanup(srv.Close)
	out := build(t, js, clock, srv.URL, nil)
	if err := out.Publish(context.Background(), outputstest.Change(tenant, person(1), 1)); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "429 counted", func() bool { return out.Health().Deliveries[Retried] == 1 })
	clock.Advance(100 * time.Second) // past the schedule's 5 s, before Retry-After
	if n.Load() != 1 {
		t.Fatalf("tried again %d times before Retry-After", n.Load()-1)
	}
	clock.Advance(21 * time.Second)
	testpoll.Until(t, "delivered after Retry-After", func() bool { return out.Health().Deliveries[Delivered] == 1 })
}

// TestNewestWins: while a person's delivery fails, newer changes replace
// the waiting one, and the receiver gets only the newest, never an older
// one after it; another person is not held up.
func TestNewestWins(t *testing.T) {
	js, _ := natstest.Start(t)
	clock := newFakeClock()
	r := newReceiver(t, clock, secretA)
	var down atomic.Bool
	down.Store(true)
	r.setAnswer(func(c outputs.Change) int {
		if down.Load() && c.View.ID == person(1) {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	out := build(t, js, clock, r.srv.URL, func(c *Config, _ *Options) { c.Secret = secretA })
	ctx := context.Background()
	if err := out.Publish(ctx, outputstest.Change(tenant, person(1), 1)); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "first try failed", func() bool { return out.Health().Deliveries[Retried] == 1 })
	for n := 2; n <= 4; n++ {
		if err := out.Publish(ctx, outputstest.Change(tenant, person(1), n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Publish(ctx, outputstest.Change(tenant, person(2), 1)); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "other person delivered", func() bool { return len(r.changes(t)) == 1 })
	down.Store(false)
	advanceUntil(t, clock, 2*time.Second, "newest delivered", func() bool { return len(r.changes(t)) >= 2 })
	got := r.changes(t)
	if got[1].View.ID != person(1) || got[1].SequenceNumber != outputstest.Change(tenant, person(1), 4).SequenceNumber {
		t.Errorf("delivered %v, want person 1's change 4 only", got)
	}
	// Nothing older follows.
	clock.Advance(time.Hour)
	if n := len(r.changes(t)); n != 2 {
		t.Errorf("%d deliveries, want 2", n)
	}
}

// TestGoneDisables: 410 Gone disables the endpoint: Health says so,
// nothing more is sent, and the change stays queued.
func TestGoneDisables(t *testing.T) {
	js, _ := natstest.Start(t)
	clock := newFakeClock()
	r := newReceiver(t, clock, secretA)
	r.setAnswer(func(outputs.Change) int { return http.StatusGone })
	out := build(t, js, clock, r.srv.URL, nil)
	ctx := context.Background()
	if err := out.Publish(ctx, outputstest.Change(tenant, person(1), 1)); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "disabled", func() bool { return out.Health().Disabled })
	if err := out.Publish(ctx, outputstest.Change(tenant, person(2), 1)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(24 * time.Hour)
	if n := r.requests.Load(); n != 1 {
		t.Errorf("%d requests after 410, want 1", n)
	}
	if h := out.Health(); h.Queued != 2 || !strings.Contains(h.LastError, "410") {
		t.Errorf("health %+v", h)
	}
}

// deadLetters collects what the output dead-letters and can replay it as
// eventlog.Queue.ReplayDeadLetter does: publish the data on the subject.
type deadLetters struct {
	js   jetstream.JetStream
	list atomic.Value // []letter
}

type letter struct {
	subject, source, reason string
	data                    []byte
}

func (d *deadLetters) store(_ context.Context, subject, source string, data []byte, reason string) error {
	old, _ := d.list.Load().([]letter)
	d.list.Store(append(append([]letter(nil), old...), letter{subject, source, reason, data}))
	return nil
}

func (d *deadLetters) letters() []letter { l, _ := d.list.Load().([]letter); return l }

// TestDeadLetterAndReplay: 500 on every try: after max_attempts a dead
// letter with the reason; a 400 is not retried; replaying a dead letter
// delivers it once the receiver accepts.
func TestDeadLetterAndReplay(t *testing.T) {
	js, _ := natstest.Start(t)
	clock := newFakeClock()
	r := newReceiver(t, clock, secretA)
	var accept atomic.Bool
	r.setAnswer(func(c outputs.Change) int {
		switch {
		case accept.Load():
			return http.StatusOK
		case c.View.ID == person(2):
			return http.StatusBadRequest
		}
		return http.StatusInternalServerError
	})
	dl := &deadLetters{js: js}
	out := build(t, js, clock, r.srv.URL, func(c *Config, o *Options) { c.MaxAttempts = 3; o.DeadLetter = dl.store })
	ctx := context.Background()
	for _, p := range []int{1, 2} {
		if err := out.Publish(ctx, outputstest.Change(tenant, person(p), 1)); err != nil {
			t.Fatal(err)
		}
	}
	advanceUntil(t, clock, time.Minute, "two dead letters", func() bool { return len(dl.letters()) == 2 })
	if n := r.requests.Load(); n != 4 {
		t.Errorf("%d requests, want 3 tries and 1", n)
	}
	var reasons []string
	for _, l := range dl.letters() {
		reasons = append(reasons, l.reason)
		if !json.Valid(l.data) || !strings.HasPrefix(l.subject, "$KV."+Bucket(out.cfg.Name)+".r.") || strings.Contains(string(l.data), secretA[6:]) {
			t.Errorf("dead letter %+v", l)
		}
	}
	all := strings.Join(reasons, "\n")
	if !strings.Contains(all, "HTTP 500 after 3 tries") || !strings.Contains(all, "HTTP 400: refused, not retried after 1 tries") {
		t.Errorf("reasons %q", all)
	}
	if h := out.Health(); h.Deliveries[DeadLettered] != 2 || h.Queued != 0 {
		t.Errorf("health %+v", h)
	}
	accept.Store(true)
	for _, l := range dl.letters() {
		if _, err := js.Publish(ctx, l.subject, l.data); err != nil {
			t.Fatal(err)
		}
	}
	testpoll.Until(t, "replayed", func() bool { return len(r.changes(t)) == 2 })
}

// TestRestartKeepsQueued: a change waiting for a failing endpoint is in
// the bucket; the output built again after a restart delivers it.
func TestRestartKeepsQueued(t *testing.T) {
	js, _ := natstest.Start(t)
	clock := newFakeClock()
	r := newReceiver(t, clock, secretA)
	r.setAnswer(func(outputs.Change) int { return http.StatusServiceUnavailable })
	name := newName()
	first := build(t, js, clock, r.srv.URL, func(c *Config, _ *Options) { c.Name = name })
	c := outputstest.Change(tenant, person(1), 3)
	if err := first.Publish(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "failed once", func() bool { return first.Health().Deliveries[Retried] == 1 })
	first.Close()
	r.setAnswer(nil)
	// Nothing is published to the second output: what it delivers comes
	// from the bucket (at once, or when the stored next try is due).
	second := build(t, js, clock, r.srv.URL, func(c *Config, _ *Options) { c.Name = name })
	advanceUntil(t, clock, time.Second, "delivered after restart", func() bool { return len(r.changes(t)) == 1 })
	if got := r.changes(t)[0]; !outputstest.Equal(got, c) {
		t.Errorf("delivered %+v", got)
	}
	testpoll.Until(t, "the second output counts it", func() bool { return second.Health().Deliveries[Delivered] == 1 })
}

// TestBadReceivers: endpoints that hang, send a huge body, redirect or
// fail for ever cost bounded time and memory, and an output to a good
// endpoint delivers meanwhile.
func TestBadReceivers(t *testing.T) {
	js, _ := natstest.Start(t)
	release := make(chan struct{})
	var bodyBytes atomic.Int64
	handlers := map[string]http.HandlerFunc{
		"hang": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		},
		"huge": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			chunk := make([]byte, 32<<10)
			for range 1 << 15 { // 1 GiB unless the client stops reading
				if _, err := w.Write(chunk); err != nil {
					return
				}
				bodyBytes.Add(int64(len(chunk)))
			}
		},
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
		},
		"fail": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) },
	}
	want := map[string]string{"hang": "timed out", "redirect": "HTTP 302: redirect not followed", "fail": "HTTP 500"}
	outs := map[string]*Output{}
	for name, h := range handlers {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		timeout := 300 * time.Millisecond
		if name == "huge" {
			timeout = 30 * time.Second // the bound is the body's, not the timeout's
		}
		outs[name] = build(t, js, newFakeClock(), srv.URL, func(c *Config, _ *Options) { c.Timeout = timeout })
	}
	t.Cleanup(func() { close(release) })
	good := newReceiver(t, nil, secretA, secretB)
	goodOut := build(t, js, nil, good.srv.URL, nil)
	ctx := context.Background()
	for _, out := range outs {
		if err := out.Publish(ctx, outputstest.Change(tenant, person(1), 1)); err != nil {
			t.Fatal(err)
		}
	}
	for n := 1; n <= 20; n++ {
		if err := goodOut.Publish(ctx, outputstest.Change(tenant, person(n%5), n)); err != nil {
			t.Fatal(err)
		}
	}
	testpoll.Until(t, "good endpoint delivered", func() bool { return goodOut.Health().Deliveries[Delivered] >= 5 && goodOut.Health().Queued == 0 })
	for name, w := range want {
		// The hanging receiver: the real timeout must pass (300ms).
		testpoll.Until(t, name+" failed", func() bool { return strings.Contains(outs[name].Health().LastError, w) })
	}
	testpoll.Until(t, "huge body settled", func() bool { return outs["huge"].Health().Deliveries[Delivered] == 1 })
	// The client reads 64 KiB; the rest the server wrote sits in the
	// loopback's socket buffers (a few MiB) until the connection closes.
	if n := bodyBytes.Load(); n > 32<<20 {
		t.Errorf("the client read %d bytes of the huge body", n)
	}
}

// TestSecretNeverShown: the secret is in no log line, error or Health
// of a failing output.
func TestSecretNeverShown(t *testing.T) {
	js, _ := natstest.Start(t)
	var logs logBuffer
	out := build(t, js, nil, "http://127.0.0.1:1/hook?x=1", func(c *Config, o *Options) {
		o.Logger = logs.logger()
		c.MaxAttempts = 1
		o.DeadLetter = func(_ context.Context, _, _ string, _ []byte, reason string) error {
			return errors.New(reason)
		}
	})
	if err := out.Publish(context.Background(), outputstest.Change(tenant, person(1), 1)); err != nil {
		t.Fatal(err)
	}
	// The dead letter is counted, then logged: wait for both.
	testpoll.Until(t, "dead letter", func() bool {
		return out.Health().Deliveries[DeadLettered] == 1 && strings.Contains(logs.String(), "dead letter")
	})
	_, err := New(context.Background(), Config{Name: "x", URL: "https://example.com", Secret: secretA + " whsec_" + secretB[6:12]}, Options{JetStream: js})
	text := logs.String() + out.Health().LastError + err.Error()
	for _, s := range []string{secretA[6:], secretB[6:], secretB[6:12]} {
		if strings.Contains(text, s) {
			t.Errorf("secret shown in %q", text)
		}
	}
}

// FuzzRetryAfter: any header value gives a pause between 0 and
// MaxRetryAfter, without panicking.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "Wed, 21 Oct 2015 07:28:00 GMT", "", "-1", "99999999999999", "1e3", "Mon, 02 Jan 2106 15:04:05 GMT"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d := RetryAfter(v, now)
		if d < 0 || d > MaxRetryAfter {
			t.Errorf("RetryAfter(%q) = %s", v, d)
		}
	})
}

func TestRetryAfterValues(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"120", 2 * time.Minute}, {" 5 ", 5 * time.Second}, {"", 0}, {"-3", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"999999999", MaxRetryAfter},
	} {
		if got := RetryAfter(c.in, now); got != c.want {
			t.Errorf("RetryAfter(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// TestPause: the schedule, jitter of at most 10% added.
func TestPause(t *testing.T) {
	for n, base := range map[int]time.Duration{1: 5 * time.Second, 2: 5 * time.Minute, 3: 30 * time.Minute, 4: 2 * time.Hour, 7: 10 * time.Hour, 20: 10 * time.Hour} {
		for range 20 {
			if d := Pause(n, 0); d < base || d > base+base/10 {
				t.Errorf("Pause(%d) = %s, want %s to +10%%", n, d, base)
			}
		}
	}
	if d := Pause(1, time.Minute); d != time.Minute {
		t.Errorf("Retry-After pause %s", d)
	}
}

// FuzzDecode: any bytes in the bucket (a replayed dead letter someone
// edited) are a record with a well-formed change or an error.
func FuzzDecode(f *testing.F) {
	good, _ := json.Marshal(record{ID: "t/u/1", Change: outputstest.Change("t", "u", 1)})
	f.Add(good)
	f.Add([]byte(`{"id":"","change":{}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decode(data)
		if err == nil && r.Change.Check() != nil {
			t.Errorf("decoded a malformed change %+v", r.Change)
		}
	})
}

// TestHTTPS: the default client checks the endpoint's certificate against
// the system's roots, so a test server's own certificate is refused (and
// the change retried); a client that trusts it delivers.
func TestHTTPS(t *testing.T) {
	js, _ := natstest.Start(t)
	var n atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { n.Add(1) }))
	t.Cleanup(srv.Close)
	refused := build(t, js, newFakeClock(), srv.URL, nil)
	if err := refused.Publish(context.Background(), outputstest.Change(tenant, person(1), 1)); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "the certificate refused", func() bool {
		return strings.Contains(refused.Health().LastError, "certificate")
	})
	if n.Load() != 0 || refused.Health().Deliveries[Retried] != 1 {
		t.Errorf("health %+v, %d requests reached the handler", refused.Health(), n.Load())
	}
	trusting := build(t, js, nil, srv.URL, func(_ *Config, o *Options) { o.Client = srv.Client() })
	if err := trusting.Publish(context.Background(), outputstest.Change(tenant, person(1), 1)); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "delivered over HTTPS", func() bool { return trusting.Health().Deliveries[Delivered] == 1 })
}
