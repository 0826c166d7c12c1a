// Package siptest runs a real Kamailio presence server (kamailio.cfg:
// presence, presence_xml, presence_dialoginfo) and watchers that
// SUBSCRIBE to presence and dialog as desk phones do, for tests of the
// sip output in any package.
package siptest

import (
	"context"
	_ "embed"
	"encoding/xml"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/presence-bridge/presence-bridge/adapters/sipdialog/sipdialogtest"
)

// The test server's domain and the bridge's account on it; watchers and
// phones have the password "pw-" + extension.
const (
	Domain         = sipdialogtest.Domain
	BridgeUser     = sipdialogtest.BridgeUser
	BridgePassword = sipdialogtest.BridgePassword
)

//go:embed kamailio.cfg
var kamailioConfig string

// StartKamailio starts the presence server on a free loopback port and
// stops it when the test ends; it skips the test when Kamailio or its
// presence modules are not installed.
func StartKamailio(t testing.TB) *sipdialogtest.Kamailio {
	t.Helper()
	return sipdialogtest.StartKamailioConfig(t, kamailioConfig)
}

// Notify is one NOTIFY a watcher received.
type Notify struct {
	// Entity is the presentity's user part (the extension).
	Entity string
	// Event is presence or dialog.
	Event string
	Body  string
	At    time.Time
}

// Watcher is a SIP user agent that subscribes to extensions' presence
// and dialog state, as a desk phone with busy-lamp keys does.
type Watcher struct {
	t       testing.TB
	user    string
	pbx     string
	client  *sipgo.Client
	contact sip.ContactHeader

	mu       sync.Mutex
	notifies []Notify
	// OnNotify, when set before subscribing, is called for each NOTIFY.
	OnNotify func(Notify)
}

// NewWatcher is extension user's phone talking to the server at pbx
// over UDP.
func NewWatcher(t testing.TB, user, pbx string) *Watcher {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("watcher-"+user), sipgo.WithUserAgentHostname(Domain))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ua.Close(); _ = conn.Close() })
	client, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	w := &Watcher{t: t, user: user, pbx: pbx, client: client,
		contact: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: conn.LocalAddr().(*net.UDPAddr).Port}}}
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		n := Notify{Body: string(req.Body()), At: time.Now()}
		if h := req.GetHeader("Event"); h != nil {
			n.Event = strings.TrimSpace(strings.SplitN(h.Value(), ";", 2)[0])
		}
		if f := req.From(); f != nil {
			n.Entity = f.Address.User
		}
		w.mu.Lock()
		w.notifies = append(w.notifies, n)
		on := w.OnNotify
		w.mu.Unlock()
		if on != nil {
			on(n)
		}
	})
	go func() { _ = srv.ServeUDP(conn) }()
	return w
}

// Subscribe subscribes to event (presence or dialog) of extension for an
// hour, answering the digest challenge.
func (w *Watcher) Subscribe(extension, event string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	to := sip.Uri{Scheme: "sip", User: extension, Host: Domain}
	req := sip.NewRequest(sip.SUBSCRIBE, to)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: w.user, Host: Domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: to})
	req.AppendHeader(&w.contact)
	req.AppendHeader(sip.NewHeader("Event", event))
	accept := "application/pidf+xml"
	if event == "dialog" {
		accept = "application/dialog-info+xml"
	}
	req.AppendHeader(sip.NewHeader("Accept", accept))
	req.AppendHeader(sip.NewHeader("Expires", "3600"))
	req.SetDestination(w.pbx)
	res, err := w.client.Do(ctx, req)
	if err == nil && (res.StatusCode == 401 || res.StatusCode == 407) {
		res, err = w.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: w.user, Password: "pw-" + w.user})
	}
	if err != nil || !res.IsSuccess() {
		status := "no answer"
		if err != nil {
			status = err.Error()
		} else {
			status = res.StartLine()
		}
		w.t.Fatalf("%s subscribes to %s of %s: %s", w.user, event, extension, status)
	}
}

// Notifies returns every NOTIFY received so far, oldest first.
func (w *Watcher) Notifies() []Notify {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Notify(nil), w.notifies...)
}

// Latest returns the newest NOTIFY of event for extension.
func (w *Watcher) Latest(extension, event string) (Notify, bool) {
	list := w.Notifies()
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Entity == extension && list[i].Event == event {
			return list[i], true
		}
	}
	return Notify{}, false
}

// Presence is what a PIDF document says: the basic status of its first
// tuple, its RPID activities and its notes.
type Presence struct {
	Basic      string
	Activities []string
	Notes      []string
}

// ParsePIDF reads a PIDF document as a phone would.
func ParsePIDF(body string) (Presence, error) {
	var p Presence
	dec := xml.NewDecoder(strings.NewReader(body))
	var path []string
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() == "EOF" {
				return p, nil
			}
			return p, err
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if len(path) > 0 && path[len(path)-1] == "activities" {
				p.Activities = append(p.Activities, e.Name.Local)
			}
			path = append(path, e.Name.Local)
		case xml.EndElement:
			path = path[:len(path)-1]
		case xml.CharData:
			if len(path) == 0 {
				continue
			}
			switch path[len(path)-1] {
			case "basic":
				if p.Basic == "" {
					p.Basic = strings.TrimSpace(string(e))
				}
			case "note":
				p.Notes = append(p.Notes, string(e))
			}
		}
	}
}

// Dialogs reads a dialog-info document: each dialog's id and state.
func Dialogs(body string) (map[string]string, error) {
	var doc struct {
		Dialogs []struct {
			ID    string `xml:"id,attr"`
			State string `xml:"state"`
		} `xml:"dialog"`
	}
	out := map[string]string{}
	if strings.TrimSpace(body) == "" {
		return out, nil
	}
	if err := xml.Unmarshal([]byte(body), &doc); err != nil {
		return nil, err
	}
	for _, d := range doc.Dialogs {
		out[d.ID] = strings.TrimSpace(d.State)
	}
	return out, nil
}

// Tail is the last n bytes of s.
func Tail(s string, n int) string { return sipdialogtest.Tail(s, n) }
