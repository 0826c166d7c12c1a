package sipdialog

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"gopkg.in/yaml.v3"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

func validConfig() Config {
	return Config{PBX: "127.0.0.1:5060", Listen: "127.0.0.1:5070", Password: "hunter2-Secret", Entities: []Entity{{Entity: "1001"}}}
}

// TestConfig checks defaults, the key paths of errors, and that the
// password never shows in them.
func TestConfig(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"valid", func(*Config) {}, ""},
		{"no pbx", func(c *Config) { c.PBX = "" }, `pbx: "" is not host:port`},
		{"bad transport", func(c *Config) { c.Transport = "sctp" }, `transport: must be udp or tcp, not "sctp"`},
		{"no listen", func(c *Config) { c.Listen = "nowhere" }, `listen: "nowhere" is not host:port`},
		{"wildcard listen", func(c *Config) { c.Listen = "0.0.0.0:5070" }, `contact_host: needed when listen has no specific address ("0.0.0.0:5070")`},
		{"wildcard listen with contact", func(c *Config) { c.Listen, c.ContactHost = ":5070", "192.0.2.1" }, ""},
		{"bad user", func(c *Config) { c.User = "a b" }, "user: must be a SIP user name"},
		{"short expiry", func(c *Config) { c.SubscribeExpiry = time.Second }, "subscribe_expiry: must be at least 10s"},
		{"short registration", func(c *Config) { c.Register, c.RegisterExpiry = true, time.Second }, "register_expiry: must be at least 10s"},
		{"short keep-alive", func(c *Config) { c.KeepaliveInterval = time.Millisecond }, "keepalive_interval: must be at least 1s"},
		{"backoff", func(c *Config) { c.Backoff = Backoff{Min: time.Minute, Max: time.Second} }, "backoff: needs 0 <= min <= max"},
		{"no entities", func(c *Config) { c.Entities = nil }, "entities: must list at least one"},
		{"bad entity", func(c *Config) { c.Entities = []Entity{{Entity: "1001"}, {Entity: "sip:@x"}} }, `entities[1].entity: "sip:@x" is not a sip:user@host URI`},
		{"odd entity", func(c *Config) { c.Entities = []Entity{{Entity: "10 01"}} }, `entities[0].entity: "10 01" is neither a SIP URI nor an extension`},
		{"twice", func(c *Config) { c.Entities = []Entity{{Entity: "1001"}, {Entity: "sip:1001@127.0.0.1"}} }, "entities[1].entity: sip:1001@127.0.0.1 is listed twice"},
		{"long user", func(c *Config) { c.Entities = []Entity{{Entity: "1001", User: strings.Repeat("u", 300)}} }, "entities[0].user: longer than 256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := validConfig()
			c.change(&cfg)
			_, err := New("pbx", cfg, nil)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want %q", err, c.want)
			case err != nil && strings.Contains(err.Error(), cfg.Password):
				t.Fatalf("the password is in the error: %v", err)
			}
		})
	}
	s, err := New("pbx", validConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Domain != "127.0.0.1" || s.cfg.Transport != "udp" || s.cfg.SubscribeExpiry != 10*time.Minute || s.cfg.KeepaliveInterval != 30*time.Second || s.cfg.LapseAfter != 1 {
		t.Errorf("defaults not applied: %+v", s.cfg)
	}
}

// TestUsers checks whom an entity's events name.
func TestUsers(t *testing.T) {
	cfg := validConfig()
	cfg.Domain = "pbx.example"
	cfg.Entities = []Entity{{Entity: "1001"}, {Entity: "sip:Alice@pbx.example"}, {Entity: "1002", User: "bob@contoso.example"}}
	s, err := New("pbx", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ext:1001", "alice@pbx.example", "bob@contoso.example"}
	for i, sub := range s.entities {
		if sub.user != want[i] {
			t.Errorf("entity %d: user %q, want %q", i, sub.user, want[i])
		}
	}
}

// TestEventIDs shows that ids depend on entity, dialog and state only,
// and stay valid for any dialog id a PBX sends.
func TestEventIDs(t *testing.T) {
	a := eventID("sip:1001@pbx", "abc", "active", 0)
	if a != "sipdialog:sip:1001@pbx:abc:active" || a != eventID("sip:1001@pbx", "abc", "active", 0) {
		t.Errorf("id %q", a)
	}
	if eventID("sip:1001@pbx", "abc", "ended", 0) == a || eventID("sip:1002@pbx", "abc", "active", 0) == a || eventID("sip:1001@pbx", "abc", "active", 1) == a {
		t.Error("ids collide")
	}
	for _, dialog := range []string{strings.Repeat("x", 400), "with space", "ü"} {
		id, call := eventID("sip:1001@pbx", dialog, "ringing", 2), callID(dialog)
		e := adapters.Event{ID: id, Source: "pbx", Type: "call", User: "ext:1001", OccurredAt: time.Now(), CallID: call, State: "ringing"}
		if err := e.Validate(""); err != nil {
			t.Errorf("dialog %q: %v", dialog, err)
		}
	}
}

// fakePBX is a small SIP server built with sipgo that accepts dialog
// subscriptions and sends NOTIFYs, for what Kamailio cannot be made to do
// on demand.
type fakePBX struct {
	t      *testing.T
	addr   string
	client *sipgo.Client
	mu     sync.Mutex
	subs   []*sip.Request // initial SUBSCRIBEs
	// refuse makes it answer new subscriptions 403.
	refuse atomic.Bool
}

func newFakePBX(t *testing.T) *fakePBX {
	ua, _ := sipgo.NewUA(sipgo.WithUserAgent("pbx"))
	srv, _ := sipgo.NewServer(ua)
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ua.Close(); _ = conn.Close() })
	client, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	p := &fakePBX{t: t, addr: conn.LocalAddr().String(), client: client}
	srv.OnSubscribe(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if tag, _ := req.To().Params.Get("tag"); tag == "" && p.refuse.Load() {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
			return
		}
		if tag, _ := req.To().Params.Get("tag"); tag == "" {
			res.To().Params.Add("tag", "pbx-"+req.CallID().Value())
			p.mu.Lock()
			p.subs = append(p.subs, req)
			p.mu.Unlock()
		}
		res.AppendHeader(sip.NewHeader("Expires", "60"))
		res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: conn.LocalAddr().(*net.UDPAddr).Port}})
		_ = tx.Respond(res)
	})
	go func() { _ = srv.ServeUDP(conn) }()
	return p
}

func (p *fakePBX) subscriptions() []*sip.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*sip.Request(nil), p.subs...)
}

// notify sends a NOTIFY in the dialog of sub (or, with stranger, in no
// dialog at all) and returns the status it was answered with.
func (p *fakePBX) notify(sub *sip.Request, state, body string, stranger bool) int {
	p.t.Helper()
	req := sip.NewRequest(sip.NOTIFY, sub.Contact().Address)
	callID := sip.CallIDHeader(sub.CallID().Value())
	from := &sip.FromHeader{Address: sub.To().Address, Params: sip.NewParams()}
	from.Params.Add("tag", "pbx-"+sub.CallID().Value())
	to := &sip.ToHeader{Address: sub.From().Address, Params: sub.From().Params.Clone()}
	if stranger {
		callID = "no-such-subscription"
	}
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(sip.NewHeader("Event", "dialog"))
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	if body != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/dialog-info+xml"))
		req.SetBody([]byte(body))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := p.client.Do(ctx, req)
	if err != nil {
		p.t.Fatalf("NOTIFY: %v", err)
	}
	return res.StatusCode
}

// TestNotifyHandling shows the answers to NOTIFYs (200 for the current
// subscription, 481 for anything else) and that a subscription the PBX
// terminates is made again, whose full state ends the calls that are gone.
func TestNotifyHandling(t *testing.T) {
	pbx := newFakePBX(t)
	rec, lg := &recorder{}, newLogs()
	cfg := Config{PBX: pbx.addr, Listen: fmt.Sprintf("127.0.0.1:%d", freePort(t)), Domain: "pbx.test",
		Backoff: Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}, Entities: []Entity{{Entity: "1001"}}}
	src, err := New("pbx-main", cfg, slogFor(lg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, rec.publish) }()
	defer func() { cancel(); <-done }()

	testpoll.Until(t, "a SUBSCRIBE", func() bool { return len(pbx.subscriptions()) == 1 })
	sub := pbx.subscriptions()[0]
	if h := sub.GetHeader("Event"); h == nil || h.Value() != "dialog" {
		t.Errorf("Event: %v", h)
	}
	if h := sub.GetHeader("Accept"); h == nil || h.Value() != "application/dialog-info+xml" {
		t.Errorf("Accept: %v", h)
	}
	testpoll.Until(t, "the subscription", func() bool { return lg.count("sipdialog subscribed") == 1 })
	if st := src.Status(); len(st) != 1 || !st[0].Subscribed || st[0].User != "ext:1001" {
		t.Errorf("status %+v", st)
	}

	full := `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="%d" state="full" entity="sip:1001@pbx.test">%s</dialog-info>`
	call := `<dialog id="c1" direction="initiator"><state>confirmed</state></dialog>`
	if got := pbx.notify(sub, "active;expires=60", fmt.Sprintf(full, 1, call), false); got != 200 {
		t.Fatalf("NOTIFY answered %d, want 200", got)
	}
	testpoll.Until(t, "the call active", func() bool { _, ok := rec.find("ext:1001", "active"); return ok })
	if got := pbx.notify(sub, "active;expires=60", fmt.Sprintf(full, 1, call), true); got != 481 {
		t.Errorf("NOTIFY of no subscription answered %d, want 481", got)
	}
	if got := pbx.notify(sub, "terminated;reason=deactivated", "", false); got != 200 {
		t.Errorf("terminating NOTIFY answered %d, want 200", got)
	}
	testpoll.Until(t, "a new SUBSCRIBE", func() bool { return len(pbx.subscriptions()) == 2 })
	renewed := pbx.subscriptions()[1]
	if renewed.CallID().Value() == sub.CallID().Value() {
		t.Error("the new subscription reuses the old Call-ID")
	}
	if got := pbx.notify(sub, "active;expires=60", fmt.Sprintf(full, 2, ""), false); got != 481 {
		t.Errorf("NOTIFY of the old subscription answered %d, want 481", got)
	}
	testpoll.Until(t, "the new subscription", func() bool { return lg.count("sipdialog subscribed") == 2 })
	if got := pbx.notify(renewed, "active;expires=60", fmt.Sprintf(full, 0, ""), false); got != 200 {
		t.Fatalf("NOTIFY answered %d, want 200", got)
	}
	testpoll.Until(t, "the call ended", func() bool { _, ok := rec.find("ext:1001", "ended"); return ok })
}

// FuzzNotify feeds whatever the SIP parser accepts as a request to the
// code that matches and applies NOTIFYs: it must not panic, and never
// track more dialogs than the limit.
func FuzzNotify(f *testing.F) {
	body := `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="sip:1001@pbx.test"><dialog id="c1"><state>early</state></dialog></dialog-info>`
	msg := func(state, contentType, body string) string {
		return "NOTIFY sip:bridge@127.0.0.1:5070 SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n" +
			"From: <sip:1001@pbx.test>;tag=pbx\r\nTo: <sip:bridge@pbx.test>;tag=ours\r\n" +
			"Call-ID: call-1\r\nCSeq: 2 NOTIFY\r\nEvent: dialog\r\n" +
			"Subscription-State: " + state + "\r\nContent-Type: " + contentType + "\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
	}
	f.Add([]byte(msg("active;expires=60", "application/dialog-info+xml", body)))
	f.Add([]byte(msg("terminated;reason=noresource", "application/dialog-info+xml", "")))
	f.Add([]byte(msg(";;;", "application/dialog-info+xml; charset=\"", body)))
	f.Add([]byte(msg("active", "text/plain", "hello")))
	f.Add([]byte(msg("active;expires=60", "application/dialog-info+xml", "")))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := sip.NewParser().ParseSIP(data)
		if err != nil {
			return
		}
		req, ok := m.(*sip.Request)
		if !ok {
			return
		}
		s, err := New("pbx", validConfig(), slogFor(newLogs()))
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		s.ctx, s.publish = context.Background(), rec.publish
		sub := s.entities[0]
		sub.callID, sub.fromTag = "call-1", "ours"
		if sub.ours(req) {
			sub.notify(req)
		}
		if len(sub.tracker.open) > MaxDialogs {
			t.Fatalf("%d dialogs tracked", len(sub.tracker.open))
		}
	})
}

// TestConfigYAML reads the documented keys strictly.
func TestConfigYAML(t *testing.T) {
	doc := `
pbx: 192.0.2.10:5060
transport: tcp
listen: 0.0.0.0:5070
contact_host: 192.0.2.50
domain: pbx.example.com
user: presence-bridge
password: s3cret
register: true
register_expiry: 5m
subscribe_expiry: 10m
request_timeout: 5s
keepalive_interval: 20s
backoff: {min: 1s, max: 2m}
lapse_after: 2
entities:
  - entity: "1001"
  - entity: sip:1002@pbx.example.com
    user: bob@contoso.example
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := New("pbx", cfg, nil); err != nil {
		t.Fatal(err)
	}
	if cfg.Backoff.Max != 2*time.Minute || cfg.KeepaliveInterval != 20*time.Second || cfg.SubscribeExpiry != 10*time.Minute || len(cfg.Entities) != 2 || cfg.Entities[1].User != "bob@contoso.example" {
		t.Errorf("decoded %+v", cfg)
	}
}

// TestLapse shows that when a subscription ends and cannot be made again,
// the entity's open calls end, and that this is logged.
func TestLapse(t *testing.T) {
	pbx := newFakePBX(t)
	rec, lg := &recorder{}, newLogs()
	cfg := Config{PBX: pbx.addr, Listen: fmt.Sprintf("127.0.0.1:%d", freePort(t)), Domain: "pbx.test",
		Backoff: Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}, Entities: []Entity{{Entity: "1001"}}}
	src, err := New("pbx-main", cfg, slogFor(lg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, rec.publish) }()
	defer func() { cancel(); <-done }()

	testpoll.Until(t, "the subscription", func() bool { return lg.count("sipdialog subscribed") == 1 })
	sub := pbx.subscriptions()[0]
	calls := `<dialog-info version="1" state="full" entity="sip:1001@pbx.test"><dialog id="a"><state>confirmed</state></dialog><dialog id="b"><state>early</state></dialog></dialog-info>`
	if got := pbx.notify(sub, "active;expires=60", calls, false); got != 200 {
		t.Fatalf("NOTIFY answered %d", got)
	}
	testpoll.Until(t, "two open calls", func() bool { return len(rec.forCall("a")) == 1 && len(rec.forCall("b")) == 1 })
	// The first full document is the snapshot: every other call ends.
	if snaps := rec.snapshots("ext:1001"); len(snaps) != 1 || strings.Join(snaps[0].ExceptCalls, ",") != "a,b" {
		t.Errorf("snapshot events %+v, want one excepting a and b", snaps)
	}
	pbx.refuse.Store(true)
	pbx.notify(sub, "terminated;reason=noresource", "", false)
	testpoll.Until(t, "both calls ended", func() bool { return len(rec.forCall("a")) == 2 && len(rec.forCall("b")) == 2 })
	for _, e := range []adapters.Event{rec.forCall("a")[1], rec.forCall("b")[1]} {
		if e.State != "ended" || e.User != "ext:1001" || e.ID != "sipdialog:sip:1001@pbx.test:"+e.CallID+":ended" {
			t.Errorf("lapse event %+v", e)
		}
	}
	if lg.count("sipdialog entity unwatched, its calls end", "ended=2") != 1 {
		t.Errorf("lapse not logged once:\n%s", lg.text())
	}
	if st := src.Status(); st[0].Subscribed {
		t.Error("status still subscribed")
	}
}
