package sipdialog

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// kamailio is a real Kamailio started by a test from testdata/kamailio.cfg.
type kamailio struct {
	t    *testing.T
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

const bridgePassword = "bridge-Secret-42"

// startKamailio starts Kamailio on a free loopback port, or skips the
// test when it is not installed.
func startKamailio(t *testing.T) *kamailio {
	t.Helper()
	if _, err := exec.LookPath("kamailio"); err != nil {
		t.Skip("kamailio is not installed: apt-get install kamailio kamailio-presence-modules (see .ci/debian-packages)")
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/kamailio/modules/presence_dialoginfo.so"); err != nil {
		t.Skip("kamailio-presence-modules is not installed")
	}
	k := &kamailio{t: t, dir: t.TempDir(), port: freePort(t)}
	if err := os.Mkdir(filepath.Join(k.dir, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"version", "presentity", "active_watchers", "watchers", "xcap", "pua"} {
		b, err := os.ReadFile(filepath.Join("/usr/share/kamailio/dbtext/kamailio", table))
		if err != nil {
			t.Skipf("kamailio's db_text tables are missing: %v", err)
		}
		if err := os.WriteFile(filepath.Join(k.dir, "db", table), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmpl, err := os.ReadFile("testdata/kamailio.cfg")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("@PORT@", strconv.Itoa(k.port), "@DIR@", k.dir, "@BRIDGE_PASSWORD@", bridgePassword).Replace(string(tmpl))
	if err := os.WriteFile(filepath.Join(k.dir, "kamailio.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	k.start()
	t.Cleanup(k.stop)
	return k
}

func (k *kamailio) addr() string { return fmt.Sprintf("127.0.0.1:%d", k.port) }

func (k *kamailio) start() {
	k.t.Helper()
	log, err := os.OpenFile(filepath.Join(k.dir, "kamailio.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		k.t.Fatal(err)
	}
	k.cmd = exec.Command("kamailio", "-f", filepath.Join(k.dir, "kamailio.cfg"), "-DD", "-E",
		"-m", "64", "-M", "8", "-Y", k.dir, "-P", filepath.Join(k.dir, "kamailio.pid"), "-w", k.dir)
	k.cmd.Stdout, k.cmd.Stderr = log, log
	if err := k.cmd.Start(); err != nil {
		k.t.Fatalf("start kamailio: %v", err)
	}
	k.done = make(chan struct{})
	go func() { _ = k.cmd.Wait(); _ = log.Close(); close(k.done) }()
	waitFor(k.t, "kamailio to accept TCP", func() bool {
		c, err := net.DialTimeout("tcp", k.addr(), time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
}

// stop ends Kamailio and waits for it; it is idempotent.
func (k *kamailio) stop() {
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	select {
	case <-k.done:
	default:
		_ = k.cmd.Process.Signal(os.Interrupt)
		select {
		case <-k.done:
		case <-time.After(20 * time.Second):
			_ = k.cmd.Process.Kill()
			<-k.done
		}
	}
	if k.t.Failed() {
		b, _ := os.ReadFile(filepath.Join(k.dir, "kamailio.log"))
		k.t.Logf("kamailio log (tail):\n%s", tail(string(b), 4000))
	}
}

func (k *kamailio) restart() {
	k.stop()
	k.start()
}

// rpc runs one kamcmd command against this Kamailio.
func (k *kamailio) rpc(args ...string) {
	k.t.Helper()
	out, err := exec.Command("kamcmd", append([]string{"-s", "unix:" + filepath.Join(k.dir, "kamailio_ctl")}, args...)...).CombinedOutput()
	if err != nil || strings.HasPrefix(strings.ToLower(string(out)), "error") {
		k.t.Fatalf("kamcmd %v: %v: %s", args, err, out)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// phone is a SIP user agent that registers with Kamailio and places or
// answers calls.
type phone struct {
	t       *testing.T
	user    string
	pbx     string
	client  *sipgo.Client
	contact sip.ContactHeader
	// incoming receives each call offered to the phone, already ringing.
	incoming chan *sipgo.DialogServerSession
}

func newPhone(t *testing.T, user, pbx string) *phone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(user), sipgo.WithUserAgentHostname("pbx.test"))
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
	p := &phone{t: t, user: user, pbx: pbx, client: client, incoming: make(chan *sipgo.DialogServerSession, 4),
		contact: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: conn.LocalAddr().(*net.UDPAddr).Port}}}
	calls := sipgo.NewDialogServerCache(client, p.contact)
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		dlg, err := calls.ReadInvite(req, tx)
		if err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 400, err.Error(), nil))
			return
		}
		defer dlg.Close()
		if err := dlg.Respond(180, "Ringing", nil); err != nil {
			return
		}
		p.incoming <- dlg
		<-dlg.Context().Done()
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = calls.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := calls.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No Such Call", nil))
		}
	})
	go func() { _ = srv.ServeUDP(conn) }()
	return p
}

// register registers the phone, answering the digest challenge.
func (p *phone) register() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "pbx.test"})
	aor := sip.Uri{Scheme: "sip", User: p.user, Host: "pbx.test"}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	req.AppendHeader(&p.contact)
	req.AppendHeader(sip.NewHeader("Expires", "3600"))
	req.SetDestination(p.pbx)
	res, err := p.client.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		res, err = p.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.user, Password: "pw-" + p.user})
	}
	if err != nil || !res.IsSuccess() {
		p.t.Fatalf("register %s: %s", p.user, answer(res, err))
	}
}

// call is a call the phone placed.
type call struct {
	session  *sipgo.DialogClientSession
	answered chan error
}

// dial calls another extension; the call is answered in the background.
func (p *phone) dial(to string) *call {
	p.t.Helper()
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: to, Host: "pbx.test"})
	req.SetDestination(p.pbx)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"))
	dua := sipgo.DialogUA{Client: p.client, ContactHDR: p.contact}
	session, err := dua.WriteInvite(context.Background(), req)
	if err != nil {
		p.t.Fatalf("%s dials %s: %v", p.user, to, err)
	}
	c := &call{session: session, answered: make(chan error, 1)}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		err := session.WaitAnswer(ctx, sipgo.AnswerOptions{})
		if err == nil {
			err = session.Ack(ctx)
		}
		c.answered <- err
	}()
	return c
}

// answer takes the next offered call.
func (p *phone) answer() *sipgo.DialogServerSession {
	p.t.Helper()
	select {
	case dlg := <-p.incoming:
		sdp := []byte("v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\n")
		if err := dlg.RespondSDP(sdp); err != nil {
			p.t.Fatalf("%s answers: %v", p.user, err)
		}
		return dlg
	case <-time.After(deadline):
		p.t.Fatalf("%s was never offered a call", p.user)
		return nil
	}
}

// hangUp ends an answered call from the caller's side.
func (c *call) hangUp(t *testing.T) {
	t.Helper()
	select {
	case err := <-c.answered:
		if err != nil {
			t.Fatalf("call not answered: %v", err)
		}
	case <-time.After(deadline):
		t.Fatal("call never answered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.session.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
}

// startSource runs a sipdialog source against k watching 1001 and 1002.
func startSource(t *testing.T, k *kamailio, transport string, rec *recorder, lg *logs) {
	t.Helper()
	cfg := Config{
		PBX:             k.addr(),
		Transport:       transport,
		Listen:          "127.0.0.1:0",
		Domain:          "pbx.test",
		User:            "bridge",
		Password:        bridgePassword,
		Register:        true,
		RegisterExpiry:  time.Minute,
		SubscribeExpiry: 20 * time.Second,
		RequestTimeout:  3 * time.Second,
		Backoff:         Backoff{Min: 200 * time.Millisecond, Max: 2 * time.Second},
		Entities:        []Entity{{Entity: "1001"}, {Entity: "sip:1002@pbx.test", User: "bob@contoso.example"}},
	}
	src, err := New("pbx-main", cfg, slogFor(lg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, rec.publish) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(deadline):
			t.Error("Run did not return after cancel")
		}
	})
}

// TestKamailio drives real calls through a real Kamailio and watches the
// events two bridges publish.
func TestKamailio(t *testing.T) {
	k := startKamailio(t)
	rec, rec2 := &recorder{}, &recorder{}
	lg, lg2 := newLogs(), newLogs()
	startSource(t, k, "udp", rec, lg)
	startSource(t, k, "udp", rec2, lg2)
	t.Cleanup(func() {
		if t.Failed() {
			for i, r := range []*recorder{rec, rec2} {
				for _, e := range r.forAll() {
					t.Logf("bridge %d event: %s %s %s %s", i+1, e.ID, e.User, e.CallID, e.State)
				}
			}
			t.Logf("bridge 1 log:\n%s", tail(lg.text(), 6000))
			t.Logf("bridge 2 log:\n%s", tail(lg2.text(), 3000))
		}
	})
	const alice, bob = "ext:1001", "bob@contoso.example"
	subscribed := func(l *logs, entity string) int {
		return l.count("sipdialog subscribed", "entity=sip:"+entity+"@pbx.test")
	}
	waitFor(t, "both bridges' subscriptions", func() bool {
		return subscribed(lg, "1001") > 0 && subscribed(lg, "1002") > 0 && subscribed(lg2, "1001") > 0 && subscribed(lg2, "1002") > 0
	})

	p1, p2 := newPhone(t, "1001", k.addr()), newPhone(t, "1002", k.addr())
	p1.register()
	p2.register()

	// A call 1001 → 1002 rings both, then makes both busy.
	c := p1.dial("1002")
	waitFor(t, "ringing for 1001 and 1002", func() bool {
		_, a := rec.find(alice, "ringing")
		_, b := rec.find(bob, "ringing")
		return a && b
	})
	dlg := p2.answer()
	waitFor(t, "active for 1001 and 1002", func() bool {
		_, a := rec.find(alice, "active")
		_, b := rec.find(bob, "active")
		return a && b
	})
	first, _ := rec.find(alice, "active")

	// Hanging up clears both.
	c.hangUp(t)
	waitFor(t, "ended for 1001 and 1002", func() bool {
		_, a := rec.find(alice, "ended")
		_, b := rec.find(bob, "ended")
		return a && b
	})
	_ = dlg

	// The second bridge saw the same call under the same event ids.
	waitFor(t, "the second bridge's events", func() bool { return len(rec2.forCall(first.CallID)) >= 6 })
	ids := map[string]bool{}
	for _, e := range rec.forCall(first.CallID) {
		ids[e.ID] = true
	}
	for _, e := range rec2.forCall(first.CallID) {
		if !ids[e.ID] {
			t.Errorf("second bridge published %s, which the first did not", e.ID)
		}
	}

	// A subscription Kamailio no longer holds is renewed.
	before := subscribed(lg, "1001")
	k.rpc("htable.seti", "drop", "s:1001", "2") // one refresh of each bridge
	waitFor(t, "1001's subscription lost", func() bool { return lg.count("sipdialog subscription lost", "entity=sip:1001@pbx.test", "481") > 0 })
	waitFor(t, "1001 subscribed again", func() bool { return subscribed(lg, "1001") > before })

	// A Kamailio restart is survived: subscriptions come back and the next
	// call is seen.
	b1, b2 := subscribed(lg, "1001"), subscribed(lg, "1002")
	k.restart()
	waitFor(t, "both subscribed again after the restart", func() bool {
		return subscribed(lg, "1001") > b1 && subscribed(lg, "1002") > b2
	})
	p1.register()
	p2.register()
	c = p1.dial("1002")
	p2.answer()
	waitFor(t, "a call after the restart, active for both", func() bool {
		_, a := rec.find(alice, "active", first.CallID)
		_, b := rec.find(bob, "active", first.CallID)
		return a && b
	})
	second, _ := rec.find(alice, "active", first.CallID)
	select {
	case err := <-c.answered:
		if err != nil {
			t.Fatalf("second call: %v", err)
		}
	case <-time.After(deadline):
		t.Fatal("second call never answered")
	}

	// A PBX that goes away during a call ends the call for both: nobody
	// stays in a call.
	k.stop()
	waitFor(t, "the second call ended for both after Kamailio stopped", func() bool {
		ended := map[string]bool{}
		for _, e := range rec.forCall(second.CallID) {
			if e.State == "ended" {
				ended[e.User] = true
			}
		}
		return ended[alice] && ended[bob]
	})
	if lg.count("sipdialog entity unwatched, its calls end") == 0 {
		t.Error("the lapse was not logged")
	}
	if strings.Contains(lg.text(), bridgePassword) {
		t.Error("the password appears in the logs")
	}
}

// TestKamailioTCP watches a call through Kamailio over TCP.
func TestKamailioTCP(t *testing.T) {
	k := startKamailio(t)
	rec, lg := &recorder{}, newLogs()
	startSource(t, k, "tcp", rec, lg)
	waitFor(t, "both subscriptions", func() bool {
		return lg.count("sipdialog subscribed", "entity=sip:1001@pbx.test") > 0 && lg.count("sipdialog subscribed", "entity=sip:1002@pbx.test") > 0
	})
	p1, p2 := newPhone(t, "1001", k.addr()), newPhone(t, "1002", k.addr())
	p1.register()
	p2.register()
	c := p1.dial("1002")
	p2.answer()
	waitFor(t, "active for 1001 and 1002", func() bool {
		_, a := rec.find("ext:1001", "active")
		_, b := rec.find("bob@contoso.example", "active")
		return a && b
	})
	c.hangUp(t)
	waitFor(t, "ended for 1001 and 1002", func() bool {
		_, a := rec.find("ext:1001", "ended")
		_, b := rec.find("bob@contoso.example", "ended")
		return a && b
	})
	if t.Failed() {
		t.Log(lg.text())
	}
}
