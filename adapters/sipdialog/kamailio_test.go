package sipdialog

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters/sipdialog/sipdialogtest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// startSource runs a sipdialog source against k watching 1001 and 1002.
func startSource(t *testing.T, k *sipdialogtest.Kamailio, transport string, rec *recorder, lg *logs) {
	t.Helper()
	cfg := Config{
		PBX:             k.Addr(),
		Transport:       transport,
		Listen:          "127.0.0.1:0",
		Domain:          "pbx.test",
		User:            "bridge",
		Password:        sipdialogtest.BridgePassword,
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
	k := sipdialogtest.StartKamailio(t)
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
			t.Logf("bridge 1 log:\n%s", sipdialogtest.Tail(lg.text(), 6000))
			t.Logf("bridge 2 log:\n%s", sipdialogtest.Tail(lg2.text(), 3000))
		}
	})
	const alice, bob = "ext:1001", "bob@contoso.example"
	subscribed := func(l *logs, entity string) int {
		return l.count("sipdialog subscribed", "entity=sip:"+entity+"@pbx.test")
	}
	testpoll.Until(t, "both bridges' subscriptions", func() bool {
		return subscribed(lg, "1001") > 0 && subscribed(lg, "1002") > 0 && subscribed(lg2, "1001") > 0 && subscribed(lg2, "1002") > 0
	})

	p1, p2 := sipdialogtest.NewPhone(t, "1001", k.Addr()), sipdialogtest.NewPhone(t, "1002", k.Addr())
	p1.Register()
	p2.Register()

	// A call 1001 → 1002 rings both, then makes both busy.
	c := p1.Dial("1002")
	testpoll.Until(t, "ringing for 1001 and 1002", func() bool {
		_, a := rec.find(alice, "ringing")
		_, b := rec.find(bob, "ringing")
		return a && b
	})
	dlg := p2.Answer()
	testpoll.Until(t, "active for 1001 and 1002", func() bool {
		_, a := rec.find(alice, "active")
		_, b := rec.find(bob, "active")
		return a && b
	})
	first, _ := rec.find(alice, "active")

	// Hanging up clears both.
	c.HangUp(t)
	testpoll.Until(t, "ended for 1001 and 1002", func() bool {
		_, a := rec.find(alice, "ended")
		_, b := rec.find(bob, "ended")
		return a && b
	})
	_ = dlg

	// The second bridge saw the same call under the same event ids. It
	// must see the call's end for both; a state Kamailio passed through
	// quickly (ringing, answered at once) may reach one subscriber and
	// not the other, so the states before the end are not all required.
	testpoll.Until(t, "the second bridge's events", func() bool {
		return rec2.endedFor(first.CallID, alice, bob)
	})
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
	k.RPC("htable.seti", "drop", "s:1001", "2") // one refresh of each bridge
	testpoll.Until(t, "1001's subscription lost", func() bool { return lg.count("sipdialog subscription lost", "entity=sip:1001@pbx.test", "481") > 0 })
	testpoll.Until(t, "1001 subscribed again", func() bool { return subscribed(lg, "1001") > before })

	// A Kamailio restart is survived: subscriptions come back and the next
	// call is seen.
	b1, b2 := subscribed(lg, "1001"), subscribed(lg, "1002")
	k.Restart()
	testpoll.Until(t, "both subscribed again after the restart", func() bool {
		return subscribed(lg, "1001") > b1 && subscribed(lg, "1002") > b2
	})
	p1.Register()
	p2.Register()
	c = p1.Dial("1002")
	// Answered only once both ring, as in the first call: Kamailio can
	// lose the callee's dialog state when the answer overtakes the
	// ringing publication ("No E_Tag match").
	testpoll.Until(t, "a call after the restart, ringing for both", func() bool {
		_, a := rec.find(alice, "ringing", first.CallID)
		_, b := rec.find(bob, "ringing", first.CallID)
		return a && b
	})
	p2.Answer()
	testpoll.Until(t, "a call after the restart, active for both", func() bool {
		_, a := rec.find(alice, "active", first.CallID)
		_, b := rec.find(bob, "active", first.CallID)
		return a && b
	})
	second, _ := rec.find(alice, "active", first.CallID)
	select {
	case err := <-c.Answered:
		if err != nil {
			t.Fatalf("second call: %v", err)
		}
	case <-time.After(deadline):
		t.Fatal("second call never answered")
	}

	// A PBX that goes away during a call ends the call for both: nobody
	// stays in a call.
	k.Stop()
	testpoll.Until(t, "the second call ended for both after Kamailio stopped", func() bool {
		return rec.endedFor(second.CallID, alice, bob)
	})
	if lg.count("sipdialog entity unwatched, its calls end") == 0 {
		t.Error("the lapse was not logged")
	}
	if strings.Contains(lg.text(), sipdialogtest.BridgePassword) {
		t.Error("the password appears in the logs")
	}
}

// TestKamailioTCP watches a call through Kamailio over TCP.
func TestKamailioTCP(t *testing.T) {
	k := sipdialogtest.StartKamailio(t)
	rec, lg := &recorder{}, newLogs()
	startSource(t, k, "tcp", rec, lg)
	testpoll.Until(t, "both subscriptions", func() bool {
		return lg.count("sipdialog subscribed", "entity=sip:1001@pbx.test") > 0 && lg.count("sipdialog subscribed", "entity=sip:1002@pbx.test") > 0
	})
	p1, p2 := sipdialogtest.NewPhone(t, "1001", k.Addr()), sipdialogtest.NewPhone(t, "1002", k.Addr())
	p1.Register()
	p2.Register()
	c := p1.Dial("1002")
	// Answered before both rang, Kamailio may lose the callee's dialog
	// state (as in TestKamailio): wait for ringing first.
	testpoll.Until(t, "ringing for 1001 and 1002", func() bool {
		_, a := rec.find("ext:1001", "ringing")
		_, b := rec.find("bob@contoso.example", "ringing")
		return a && b
	})
	p2.Answer()
	testpoll.Until(t, "active for 1001 and 1002", func() bool {
		_, a := rec.find("ext:1001", "active")
		_, b := rec.find("bob@contoso.example", "active")
		return a && b
	})
	c.HangUp(t)
	testpoll.Until(t, "ended for 1001 and 1002", func() bool {
		_, a := rec.find("ext:1001", "ended")
		_, b := rec.find("bob@contoso.example", "ended")
		return a && b
	})
	if t.Failed() {
		t.Log(lg.text())
	}
}
