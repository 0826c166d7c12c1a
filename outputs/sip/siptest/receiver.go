package siptest

import (
	"encoding/json"
	"encoding/xml"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/presence-bridge/presence-bridge/outputs"
)

// Received is one PUBLISH a Receiver got.
type Received struct {
	Entity, Event, IfMatch, Expires, ContentType string
	Body                                         string
}

// Receiver is a SIP presence server for unit tests: a real SIP user agent
// on loopback TCP that answers each PUBLISH with what Answer returns
// (by default 200 with a fresh SIP-ETag "etag-N" and the Expires asked
// for).
type Receiver struct {
	// Addr is its host:port.
	Addr string
	mu   sync.Mutex
	got  []Received
	tags int
	// answer, when set, answers a PUBLISH instead: it returns the status
	// and headers, or 0 to answer as usual.
	answer func(r Received) (int, map[string]string)
}

// NewReceiver starts a Receiver that stops with the test.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-presence-server"))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ua.Close(); _ = l.Close() })
	r := &Receiver{Addr: l.Addr().String()}
	srv.OnPublish(func(req *sip.Request, tx sip.ServerTransaction) {
		got := Received{Entity: req.Recipient.User, Body: string(req.Body())}
		for name, v := range map[string]*string{"Event": &got.Event, "SIP-If-Match": &got.IfMatch, "Expires": &got.Expires, "Content-Type": &got.ContentType} {
			if h := req.GetHeader(name); h != nil {
				*v = h.Value()
			}
		}
		r.mu.Lock()
		r.got = append(r.got, got)
		answer := r.answer
		r.tags++
		tag := "etag-" + strconv.Itoa(r.tags)
		r.mu.Unlock()
		code, headers := 0, map[string]string(nil)
		if answer != nil {
			code, headers = answer(got)
		}
		if code == 0 {
			code, headers = 200, map[string]string{"SIP-ETag": tag, "Expires": got.Expires}
		}
		res := sip.NewResponseFromRequest(req, code, "Test", nil)
		for k, v := range headers {
			res.AppendHeader(sip.NewHeader(k, v))
		}
		_ = tx.Respond(res)
	})
	go func() { _ = srv.ServeTCP(l) }()
	return r
}

// SetAnswer sets how the next PUBLISHes are answered; nil answers as
// usual.
func (r *Receiver) SetAnswer(answer func(Received) (int, map[string]string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = answer
}

// Requests returns every PUBLISH so far.
func (r *Receiver) Requests() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Received(nil), r.got...)
}

// Changes decodes the changes carried by the presence documents received,
// in order, as an application reading <pb:change> would.
func (r *Receiver) Changes(t *testing.T) []outputs.Change {
	var out []outputs.Change
	for _, g := range r.Requests() {
		if g.Event != "presence" || g.Body == "" {
			continue
		}
		var doc struct {
			Change string `xml:"urn:x-presence-bridge:teams-change change"`
		}
		if err := xml.Unmarshal([]byte(g.Body), &doc); err != nil {
			t.Fatalf("PIDF does not parse: %v\n%s", err, g.Body)
		}
		var c struct {
			ID string `json:"changeId"`
			outputs.Change
		}
		if err := json.Unmarshal([]byte(doc.Change), &c); err != nil {
			t.Fatalf("change does not parse: %v\n%s", err, doc.Change)
		}
		c.Change.ID = c.ID
		out = append(out, c.Change)
	}
	return out
}
