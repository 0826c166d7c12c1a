package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/presence-bridge/presence-bridge/adapters/sipdialog/sipdialogtest"
	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// dndRecipe is the Kamailio recipe of docs/routing/README.md, run as it
// is with only its five site lines changed.
const dndRecipe = "../docs/routing/kamailio-dnd.cfg"

// routingConfig is the test configuration with the Teams watch and the
// lookup API on.
func routingConfig(t *testing.T) string {
	return testConfig(t) + "watch: {enabled: true, interval: 200ms}\nlookup: {token: lookup-token}\n"
}

// startDNDProxy runs the recipe on a free loopback port, asking lookupURL
// (followed by the extension) with token, giving up after timeout
// seconds, and stops it when the test ends. It skips the test when Kamailio or its http_client module is not
// installed. It returns the proxy's host:port.
func startDNDProxy(t *testing.T, lookupURL, token string, timeout int) string {
	t.Helper()
	if _, err := exec.LookPath("kamailio"); err != nil {
		t.Skip("kamailio is not installed: apt-get install kamailio kamailio-utils-modules (see .ci/debian-packages)")
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/kamailio/modules/http_client.so"); err != nil {
		t.Skip("kamailio's http_client module is not installed: apt-get install kamailio-utils-modules")
	}
	recipe, err := os.ReadFile(dndRecipe)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sipdialogtest.FreePort(t))
	cfg := string(recipe)
	for _, r := range [][2]string{
		{`#!substdef "!SIP_LISTEN!udp:127.0.0.1:5060!g"`, `#!substdef "!SIP_LISTEN!udp:` + addr + `!g"`},
		{`#!substdef "!SIP_DOMAIN!pbx.example!g"`, `#!substdef "!SIP_DOMAIN!` + sipdialogtest.Domain + `!g"`},
		{`#!substdef "!LOOKUP_URL!http://127.0.0.1:8080/v1/presence/ext:!g"`, `#!substdef "!LOOKUP_URL!` + lookupURL + `!g"`},
		{`#!substdef "!LOOKUP_TOKEN!change-me!g"`, `#!substdef "!LOOKUP_TOKEN!` + token + `!g"`},
		{`#!substdef "!LOOKUP_TIMEOUT!1!g"`, fmt.Sprintf(`#!substdef "!LOOKUP_TIMEOUT!%d!g"`, timeout)},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("the recipe lacks its site line %s", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kamailio.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "kamailio.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("kamailio", "-f", filepath.Join(dir, "kamailio.cfg"), "-DD", "-E",
		"-m", "64", "-M", "8", "-Y", dir, "-P", filepath.Join(dir, "kamailio.pid"), "-w", dir)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kamailio: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = log.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "kamailio.log"))
			t.Logf("kamailio log (tail):\n%s", sipdialogtest.Tail(string(b), 4000))
		}
	})
	waitSIP(t, addr, done)
	return addr
}

// waitSIP waits until the proxy at addr answers an OPTIONS, or fails the
// test when it exits first.
func waitSIP(t *testing.T, addr string, exited <-chan struct{}) {
	t.Helper()
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "kamailio to answer SIP", func() bool {
		select {
		case <-exited:
			t.Fatal("kamailio exited at start")
		default:
		}
		req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: sipdialogtest.Domain})
		req.SetDestination(addr)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		res, err := client.Do(ctx, req)
		return err == nil && res != nil
	})
}

// refused places a call to ext that the proxy must refuse, and returns
// its final status and Reason header. A call that rings instead fails the
// test once the caller gives up waiting for an answer.
func refused(t *testing.T, caller *sipdialogtest.Phone, ext string) (status int, reason string) {
	t.Helper()
	call := caller.Dial(ext)
	err := <-call.Answered // within sipdialogtest.Deadline
	var res *sipgo.ErrDialogResponse
	if !errors.As(err, &res) {
		t.Fatalf("call to %s was not refused: %v", ext, err)
	}
	if h := res.Res.GetHeader("Reason"); h != nil {
		reason = h.Value()
	}
	return res.Res.StatusCode, reason
}

// rings places a call to ext that must ring the callee's phone (it
// receives the INVITE), then answers and ends it.
func rings(t *testing.T, caller, callee *sipdialogtest.Phone, ext string) {
	t.Helper()
	call := caller.Dial(ext)
	callee.Answer() // fails the test unless the INVITE arrives
	call.HangUp(t)
}

// lookupPair waits until the lookup API says pair for ext:1001 (Alice):
// the proxy asks the same API, so its answer is then settled.
func lookupPair(t *testing.T, b *bridge.Bridge, pair string) {
	t.Helper()
	testpoll.UntilOK(t, "the lookup of ext:1001 to say "+pair, func() error {
		v, ok := lookupView(t, b, "ext:1001")
		if !ok || v.Availability+"/"+v.Activity != pair {
			return fmt.Errorf("it says %s/%s (found %v)", v.Availability, v.Activity, ok)
		}
		return nil
	})
}

// TestKamailioRoutesAroundTeamsDND: the documented Kamailio recipe, on a
// real Kamailio asking a real bridge (Graph emulator in process), with
// real SIP phones: Alice (extension 1001) sets Do not disturb in Teams and
// a call to her is answered 480 with a Reason saying so; presenting, 480
// saying that; back to Available, her phone rings. A registered extension
// the bridge does not know (1003, lookup 404) rings: the recipe fails open.
func TestKamailioRoutesAroundTeamsDND(t *testing.T) {
	b := startBridge(t, routingConfig(t))
	em := b.Emulator()
	if err := em.SetTeamsSession(aliceID, "Available", "Available"); err != nil {
		t.Fatal(err)
	}
	lookupPair(t, b, "Available/Available")
	// A generous timeout: on a busy machine a lookup slower than the
	// recipe's one second would fail open and let a call ring.
	pbx := startDNDProxy(t, "http://"+b.Addr()+"/v1/presence/ext:", "lookup-token", 10)
	alice := sipdialogtest.NewPhone(t, "1001", pbx)
	alice.Register()
	stranger := sipdialogtest.NewPhone(t, "1003", pbx)
	stranger.Register()
	caller := sipdialogtest.NewPhone(t, "1002", pbx)

	rings(t, caller, alice, "1001")

	if err := em.SetPreferred(aliceID, "DoNotDisturb", "DoNotDisturb", time.Hour); err != nil {
		t.Fatal(err)
	}
	lookupPair(t, b, "DoNotDisturb/DoNotDisturb")
	status, reason := refused(t, caller, "1001")
	if status != 480 || reason != `SIP;cause=480;text="Do not disturb in Teams"` {
		t.Fatalf("a call to Alice in Do not disturb: %d, Reason %q; want 480 with the Teams reason", status, reason)
	}
	rings(t, caller, stranger, "1003")

	if err := em.ClearPreferred(aliceID); err != nil {
		t.Fatal(err)
	}
	if err := em.SetTeamsSession(aliceID, "DoNotDisturb", "Presenting"); err != nil {
		t.Fatal(err)
	}
	lookupPair(t, b, "DoNotDisturb/Presenting")
	status, reason = refused(t, caller, "1001")
	if status != 480 || reason != `SIP;cause=480;text="Presenting in Teams"` {
		t.Fatalf("a call to Alice presenting: %d, Reason %q; want 480 with the Teams reason", status, reason)
	}

	if err := em.SetTeamsSession(aliceID, "Available", "Available"); err != nil {
		t.Fatal(err)
	}
	lookupPair(t, b, "Available/Available")
	rings(t, caller, alice, "1001")
}

// TestKamailioDNDFailsOpen: when the lookup fails, the recipe lets the
// call ring, even though every failing answer's body says Do not disturb:
// a 5xx, an answer slower than the recipe's timeout, a wrong token (401),
// a bridge that is not there. Each lookup that reached a server was a GET
// with the bearer token.
func TestKamailioDNDFailsOpen(t *testing.T) {
	const dnd = `{"user":"alice@contoso.example","availability":"DoNotDisturb","activity":"Presenting"}`
	refusedPort := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close() // nothing listens there from now on
		return addr
	}
	for _, c := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request) // nil: no server
	}{
		{"5xx", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(dnd))
		}},
		{"slower than the timeout", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // until the proxy gives up and hangs up
		}},
		{"wrong token", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(dnd))
		}},
		{"bridge not there", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			host := refusedPort()
			asked := make(chan *http.Request, 16)
			if c.answer != nil {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					asked <- r.Clone(context.Background())
					c.answer(w, r)
				}))
				t.Cleanup(srv.Close)
				host = srv.Listener.Addr().String()
			}
			pbx := startDNDProxy(t, "http://"+host+"/v1/presence/ext:", "lookup-token", 1)
			alice := sipdialogtest.NewPhone(t, "1001", pbx)
			alice.Register()
			caller := sipdialogtest.NewPhone(t, "1002", pbx)
			rings(t, caller, alice, "1001")
			if c.answer == nil {
				return
			}
			select {
			case r := <-asked:
				if r.Method != http.MethodGet || r.URL.Path != "/v1/presence/ext:1001" || r.Header.Get("Authorization") != "Bearer lookup-token" {
					t.Errorf("the proxy asked %s %s with Authorization %q; want GET /v1/presence/ext:1001 with the bearer token", r.Method, r.URL.Path, r.Header.Get("Authorization"))
				}
			default:
				t.Error("the proxy never asked the lookup API: the call rang for another reason")
			}
		})
	}
}

// TestOutputPairsThroughTheBridge: an output configured with pairs gets,
// through the whole bridge (Graph emulator, watcher, real NATS), Alice's
// Teams call and her Do not disturb, and Available/Available when she
// moves on to a meeting, which it does not send; the unfiltered output
// gets the meeting as it is.
func TestOutputPairsThroughTheBridge(t *testing.T) {
	b := startBridge(t, testConfig(t)+`watch: {enabled: true, interval: 200ms}
outputs:
  - {name: bus, type: nats, skip_sources: []}
  - name: pbx
    type: nats
    skip_sources: []
    pairs: [DoNotDisturb/*, Busy/InACall]
    nats: {stream: PRESENCE_TEAMS_PBX, subject_prefix: presence.pbx, bucket: PRESENCE_TEAMS_PBX_LATEST}
`)
	em := b.Emulator()
	pbxSays := func(pair string) {
		t.Helper()
		testpoll.UntilOK(t, "the pbx output to say "+pair, func() error {
			c, ok := latest(t, b, "PRESENCE_TEAMS_PBX", "presence.pbx", aliceID)
			if !ok || c.Availability+"/"+c.Activity != pair {
				return fmt.Errorf("it says %s/%s (found %v)", c.Availability, c.Activity, ok)
			}
			return nil
		})
	}
	if err := em.SetTeamsSession(aliceID, "Busy", "InACall"); err != nil {
		t.Fatal(err)
	}
	pbxSays("Busy/InACall")
	if err := em.SetTeamsSession(aliceID, "Busy", "InAMeeting"); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, "the meeting on the bus", func() bool {
		c, ok := latest(t, b, "PRESENCE_TEAMS", "presence.teams", aliceID)
		return ok && c.Availability == "Busy" && c.Activity == "InAMeeting"
	})
	pbxSays("Available/Available")
	if err := em.SetPreferred(aliceID, "DoNotDisturb", "DoNotDisturb", time.Hour); err != nil {
		t.Fatal(err)
	}
	pbxSays("DoNotDisturb/DoNotDisturb")
	if err := em.ClearPreferred(aliceID); err != nil {
		t.Fatal(err)
	}
	pbxSays("Available/Available")
}
