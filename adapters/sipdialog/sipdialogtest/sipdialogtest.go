// Package sipdialogtest runs a real Kamailio (registrar, proxy and dialog
// presence server, from kamailio.cfg) and SIP phones that call through it,
// for tests of sipdialog sources in any package.
package sipdialogtest

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/internal/freeport"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// Domain is the SIP domain of the test PBX; BridgeUser and BridgePassword
// the account it knows for the bridge. Phones 1001 and 1002 have the
// password "pw-" + extension.
const (
	Domain         = "pbx.test"
	BridgeUser     = "bridge"
	BridgePassword = "bridge-Secret-42"
)

// Deadline is how long the helpers wait for a condition: generous,
// because it only costs time when a test fails.
const Deadline = 60 * time.Second

//go:embed kamailio.cfg
var kamailioConfig string

// Kamailio is a real Kamailio started for one test.
type Kamailio struct {
	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// StartKamailio starts Kamailio on a free loopback port (UDP and TCP) and
// stops it when the test ends. It skips the test when kamailio or its
// presence modules are not installed.
func StartKamailio(t testing.TB) *Kamailio {
	t.Helper()
	return StartKamailioConfig(t, kamailioConfig)
}

// StartKamailioConfig is StartKamailio with another configuration, in
// which @PORT@, @DIR@ and @BRIDGE_PASSWORD@ are replaced as in
// kamailio.cfg.
func StartKamailioConfig(t testing.TB, config string) *Kamailio {
	t.Helper()
	if _, err := exec.LookPath("kamailio"); err != nil {
		t.Skip("kamailio is not installed: apt-get install kamailio kamailio-presence-modules (see .ci/debian-packages)")
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/kamailio/modules/presence_dialoginfo.so"); err != nil {
		t.Skip("kamailio-presence-modules is not installed")
	}
	k := &Kamailio{t: t, dir: t.TempDir(), port: FreePort(t)}
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
	cfg := strings.NewReplacer("@PORT@", strconv.Itoa(k.port), "@DIR@", k.dir, "@BRIDGE_PASSWORD@", BridgePassword).Replace(config)
	if err := os.WriteFile(filepath.Join(k.dir, "kamailio.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	k.Start()
	t.Cleanup(k.Stop)
	return k
}

// Addr is Kamailio's host:port.
func (k *Kamailio) Addr() string { return fmt.Sprintf("127.0.0.1:%d", k.port) }

// Start starts Kamailio (again) and waits until it accepts TCP.
func (k *Kamailio) Start() {
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
	testpoll.Until(k.t, "kamailio to accept TCP", func() bool {
		c, err := net.DialTimeout("tcp", k.Addr(), time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
}

// Stop ends Kamailio and waits for it; it is idempotent. A failed test
// gets the tail of Kamailio's log.
func (k *Kamailio) Stop() {
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
		k.t.Logf("kamailio log (tail):\n%s", Tail(string(b), 4000))
	}
}

// Restart stops and starts Kamailio.
func (k *Kamailio) Restart() {
	k.Stop()
	k.Start()
}

// RPC runs one kamcmd command against this Kamailio.
func (k *Kamailio) RPC(args ...string) {
	k.t.Helper()
	out, err := exec.Command("kamcmd", append([]string{"-s", "unix:" + filepath.Join(k.dir, "kamailio_ctl")}, args...)...).CombinedOutput()
	if err != nil || strings.HasPrefix(strings.ToLower(string(out)), "error") {
		k.t.Fatalf("kamcmd %v: %v: %s", args, err, out)
	}
}

// Tail is the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// FreePort finds a loopback port free for both UDP and TCP (package
// freeport).
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// Phone is a SIP user agent that registers with Kamailio and places or
// answers calls.
type Phone struct {
	t       testing.TB
	user    string
	pbx     string
	client  *sipgo.Client
	contact sip.ContactHeader
	// incoming receives each call offered to the phone, already ringing.
	incoming chan *sipgo.DialogServerSession
}

// NewPhone is extension user's phone, talking to the PBX at pbx over UDP.
func NewPhone(t testing.TB, user, pbx string) *Phone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(user), sipgo.WithUserAgentHostname(Domain))
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
	p := &Phone{t: t, user: user, pbx: pbx, client: client, incoming: make(chan *sipgo.DialogServerSession, 4),
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

// Register registers the phone, answering the digest challenge.
func (p *Phone) Register() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: Domain})
	aor := sip.Uri{Scheme: "sip", User: p.user, Host: Domain}
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

func answer(res *sip.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	if res == nil {
		return "no answer"
	}
	return fmt.Sprintf("%d %s", res.StatusCode, res.Reason)
}

// Call is a call the phone placed.
type Call struct {
	Session *sipgo.DialogClientSession
	// Answered receives the outcome of waiting for the answer (and its
	// ACK).
	Answered chan error
}

// Dial calls another extension; the answer is awaited in the background.
func (p *Phone) Dial(to string) *Call {
	p.t.Helper()
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: to, Host: Domain})
	req.SetDestination(p.pbx)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"))
	dua := sipgo.DialogUA{Client: p.client, ContactHDR: p.contact}
	session, err := dua.WriteInvite(context.Background(), req)
	if err != nil {
		p.t.Fatalf("%s dials %s: %v", p.user, to, err)
	}
	c := &Call{Session: session, Answered: make(chan error, 1)}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), Deadline)
		defer cancel()
		err := session.WaitAnswer(ctx, sipgo.AnswerOptions{})
		if err == nil {
			err = session.Ack(ctx)
		}
		c.Answered <- err
	}()
	return c
}

// Answer takes the next offered call.
func (p *Phone) Answer() *sipgo.DialogServerSession {
	p.t.Helper()
	select {
	case dlg := <-p.incoming:
		sdp := []byte("v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\n")
		if err := dlg.RespondSDP(sdp); err != nil {
			p.t.Fatalf("%s answers: %v", p.user, err)
		}
		return dlg
	case <-time.After(Deadline):
		p.t.Fatalf("%s was never offered a call", p.user)
		return nil
	}
}

// HangUp ends an answered call from the caller's side.
func (c *Call) HangUp(t testing.TB) {
	t.Helper()
	select {
	case err := <-c.Answered:
		if err != nil {
			t.Fatalf("call not answered: %v", err)
		}
	case <-time.After(Deadline):
		t.Fatal("call never answered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Session.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
}
