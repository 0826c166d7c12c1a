package sip

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/internal/testpoll"
	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/outputstest"
	"github.com/presence-bridge/presence-bridge/outputs/sip/siptest"
)

// clock is a fake clock for the refresh and backoff timing.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// start builds an output publishing to r for alice (1001) and bob (1002)
// on a fake clock.
func start(t *testing.T, r *siptest.Receiver, dialog bool) (*Output, *clock) {
	t.Helper()
	c := &clock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	out, err := newOutput(Config{Name: "phones", Server: r.Addr, Transport: "tcp", Domain: "pbx.test", Dialog: &dialog,
		Expires: time.Minute, Backoff: Backoff{Min: time.Second, Max: 4 * time.Second},
		Extensions: map[string]string{"alice@contoso.example": "1001", "bob@contoso.example": "1002"}}, nil, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	return out, c
}

func change(n int, availability, activity string) outputs.Change {
	c := outputstest.Change("contoso.example", "00000000-0000-4000-8000-00000000a11c", n)
	c.User = "alice@contoso.example"
	c.Availability, c.Activity = availability, activity
	return c
}

// TestPublicationLifecycle follows RFC 3903: an initial PUBLISH with a
// body, a modification with SIP-If-Match and a body, a refresh before
// Expires with SIP-If-Match and no body, removal with Expires: 0 at
// Close; nobody mapped, nothing sent.
func TestPublicationLifecycle(t *testing.T) {
	r := siptest.NewReceiver(t)
	out, clk := start(t, r, false)
	ctx := context.Background()
	if err := out.Publish(ctx, change(1, "Busy", "InACall")); err != nil {
		t.Fatal(err)
	}
	if err := out.Publish(ctx, change(2, "Away", "Away")); err != nil {
		t.Fatal(err)
	}
	stranger := change(3, "Busy", "InACall")
	stranger.User, stranger.View.ID = "eve@contoso.example", "00000000-0000-4000-8000-0000000000e1"
	if err := out.Publish(ctx, stranger); err != nil {
		t.Fatal(err)
	}
	got := r.Requests()
	if len(got) != 2 {
		t.Fatalf("%d PUBLISHes, want 2: %+v", len(got), got)
	}
	if g := got[0]; g.Entity != "1001" || g.Event != "presence" || g.IfMatch != "" || g.Expires != "60" || g.ContentType != ContentTypePIDF || !strings.Contains(g.Body, "on-the-phone") {
		t.Errorf("initial PUBLISH %+v", g)
	}
	if g := got[1]; g.IfMatch != "etag-1" || !strings.Contains(g.Body, "<rpid:away/>") {
		t.Errorf("modifying PUBLISH %+v", g)
	}
	// Refreshed before the minute runs out (after 40 s, RefreshIn).
	clk.Add(40 * time.Second)
	testpoll.Until(t, "a refresh", func() bool { return len(r.Requests()) == 3 })
	if g := r.Requests()[2]; g.IfMatch != "etag-2" || g.Body != "" || g.Expires != "60" {
		t.Errorf("refresh %+v", g)
	}
	out.Close()
	if g := r.Requests()[3]; g.IfMatch != "etag-3" || g.Expires != "0" || g.Body != "" {
		t.Errorf("removal %+v", g)
	}
}

// TestFaults: 412 publishes anew; 423 asks for Min-Expires; 489 and 503
// are errors, retried after backoff with the whole state.
func TestFaults(t *testing.T) {
	r := siptest.NewReceiver(t)
	out, clk := start(t, r, false)
	ctx := context.Background()
	if err := out.Publish(ctx, change(1, "Available", "Available")); err != nil {
		t.Fatal(err)
	}
	// The server lost the publication: 412, then an initial PUBLISH.
	r.SetAnswer(func(g siptest.Received) (int, map[string]string) {
		if g.IfMatch != "" {
			return 412, nil
		}
		return 0, nil
	})
	if err := out.Publish(ctx, change(2, "Busy", "InAMeeting")); err != nil {
		t.Fatal(err)
	}
	got := r.Requests()
	if g := got[len(got)-1]; g.IfMatch != "" || !strings.Contains(g.Body, "<rpid:meeting/>") || got[len(got)-2].IfMatch != "etag-1" {
		t.Errorf("after 412: %+v", got)
	}
	// 423 with Min-Expires: 120 → asked again for 120 s.
	r.SetAnswer(func(g siptest.Received) (int, map[string]string) {
		if g.Expires != "120" {
			return 423, map[string]string{"Min-Expires": "120"}
		}
		return 0, nil
	})
	if err := out.Publish(ctx, change(3, "Away", "Away")); err != nil {
		t.Fatal(err)
	}
	if g := r.Requests()[len(r.Requests())-1]; g.Expires != "120" {
		t.Errorf("after 423: %+v", g)
	}
	// 489 and 503: errors, then retried after backoff with the body.
	for _, code := range []int{489, 503} {
		r.SetAnswer(func(siptest.Received) (int, map[string]string) { return code, nil })
		if err := out.Publish(ctx, change(4, "Busy", "InACall")); err == nil || !strings.Contains(err.Error(), fmt.Sprint(code)) {
			t.Errorf("%d: error %v", code, err)
		}
	}
	r.SetAnswer(nil)
	before := len(r.Requests())
	clk.Add(10 * time.Second)
	testpoll.Until(t, "the retry", func() bool { return len(r.Requests()) > before })
	if g := r.Requests()[before]; !strings.Contains(g.Body, "on-the-phone") {
		t.Errorf("retry %+v", g)
	}
	s := out.Stats()
	if s.Responses["4xx"] < 3 || s.Responses["5xx"] != 1 || !strings.Contains(s.LastError, "503") {
		t.Errorf("stats %+v", s)
	}
}

// TestDialog: a Teams call publishes one confirmed dialog of the
// bridge's; its end, the same dialog terminated; the next call a new id;
// a meeting no dialog at all.
func TestDialog(t *testing.T) {
	r := siptest.NewReceiver(t)
	out, _ := start(t, r, true)
	ctx := context.Background()
	steps := []struct {
		availability, activity string
		want                   string // the dialog document's state, "" for none sent
	}{
		{"Busy", "InAMeeting", ""},
		{"Busy", "InACall", "confirmed"},
		{"Busy", "InAConferenceCall", ""},
		{"Available", "Available", "terminated"},
		{"Away", "Away", ""},
		{"DoNotDisturb", "Presenting", "confirmed"},
		{"Offline", "OffWork", "terminated"},
	}
	var ids []string
	for i, s := range steps {
		before := len(r.Requests())
		if err := out.Publish(ctx, change(i+1, s.availability, s.activity)); err != nil {
			t.Fatal(err)
		}
		var dialogs []siptest.Received
		for _, g := range r.Requests()[before:] {
			if g.Event == "dialog" {
				dialogs = append(dialogs, g)
			}
		}
		if s.want == "" {
			if len(dialogs) != 0 {
				t.Errorf("%s/%s: dialog published %+v", s.availability, s.activity, dialogs)
			}
			continue
		}
		if len(dialogs) != 1 || !strings.Contains(dialogs[0].Body, "<state>"+s.want+"</state>") || dialogs[0].ContentType != ContentTypeDialogInfo {
			t.Fatalf("%s/%s: dialog publications %+v, want one %s", s.availability, s.activity, dialogs, s.want)
		}
		id := dialogs[0].Body[strings.Index(dialogs[0].Body, `<dialog id="`)+12:]
		ids = append(ids, id[:strings.Index(id, `"`)])
	}
	if len(ids) != 4 || ids[0] != ids[1] || ids[2] != ids[3] || ids[0] == ids[2] || !strings.HasPrefix(ids[0], "teams-") {
		t.Errorf("dialog ids %v: want one per call, starting with teams-", ids)
	}
}

// TestForget: a person who leaves the watch has their Teams call ended
// and each publication (presence, dialog) removed with SIP-If-Match and
// Expires: 0; nothing more is refreshed for them, and their next change
// is an initial PUBLISH again. A failed removal is an error, not retried.
func TestForget(t *testing.T) {
	r := siptest.NewReceiver(t)
	out, clk := start(t, r, true)
	ctx := context.Background()
	if err := out.Publish(ctx, change(1, "Busy", "InACall")); err != nil {
		t.Fatal(err)
	}
	if got := r.Requests(); len(got) != 2 || got[0].Event != "presence" || got[1].Event != "dialog" {
		t.Fatalf("publications %+v", got)
	}
	if err := out.Forget(ctx, "contoso.example", "00000000-0000-4000-8000-000000000bbb"); err != nil {
		t.Fatalf("forget a person never published: %v", err)
	}
	if err := out.Forget(ctx, "contoso.example", "00000000-0000-4000-8000-00000000a11c"); err != nil {
		t.Fatal(err)
	}
	got := r.Requests()[2:]
	if len(got) != 3 {
		t.Fatalf("%d requests after Forget, want 3 (end the call, remove presence, remove dialog): %+v", len(got), got)
	}
	if g := got[0]; g.Event != "dialog" || g.IfMatch != "etag-2" || !strings.Contains(g.Body, "<state>terminated</state>") {
		t.Errorf("ending the call %+v", g)
	}
	if g := got[1]; g.Event != "presence" || g.IfMatch != "etag-1" || g.Expires != "0" || g.Body != "" {
		t.Errorf("presence removal %+v", g)
	}
	if g := got[2]; g.Event != "dialog" || g.IfMatch != "etag-3" || g.Expires != "0" || g.Body != "" {
		t.Errorf("dialog removal %+v", g)
	}
	// Nothing is refreshed for a person forgotten: bob's refresh comes,
	// alice's does not.
	bob := change(2, "Away", "Away")
	bob.User, bob.View.ID = "bob@contoso.example", "00000000-0000-4000-8000-000000000b0b"
	if err := out.Publish(ctx, bob); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	testpoll.Until(t, "bob's refresh", func() bool { return len(r.Requests()) >= 7 })
	for _, g := range r.Requests()[5:] {
		if g.Entity != "1002" {
			t.Errorf("request after Forget for %s: %+v", g.Entity, g)
		}
	}
	before := len(r.Requests())
	// The same change again (the person came back) publishes from scratch.
	if err := out.Publish(ctx, change(1, "Busy", "InACall")); err != nil {
		t.Fatal(err)
	}
	if g := r.Requests()[before:]; len(g) != 2 || g[0].IfMatch != "" || g[0].Body == "" || g[1].IfMatch != "" {
		t.Errorf("publishing again %+v", g)
	}
	// A removal the server refuses is an error.
	r.SetAnswer(func(siptest.Received) (int, map[string]string) { return 503, nil })
	if err := out.Forget(ctx, "contoso.example", "00000000-0000-4000-8000-00000000a11c"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("refused removal: error %v", err)
	}
}
