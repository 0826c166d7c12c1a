package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/bridge/admin"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

// withAdminListen gives a test configuration an operations listener.
func withAdminListen(yaml string) string {
	return strings.Replace(yaml, "admin: {token: admin-token}", `admin: {token: admin-token, listen: "127.0.0.1:0"}`, 1)
}

func getStatus(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// With admin.listen, /metrics, the admin API and the status page answer
// only there, and the webhooks only on http.listen.
func TestOperationsListener(t *testing.T) {
	b := startBridge(t, withAdminListen(testConfig(t))+"presence: {observe_interval: 0s}\n") // the one failure is for a write
	if b.AdminAddr() == b.Addr() {
		t.Fatalf("operations and webhooks share %s", b.Addr())
	}
	public, ops := "http://"+b.Addr(), "http://"+b.AdminAddr()
	for _, tc := range []struct {
		url    string
		status int
	}{
		{ops + "/metrics", 200},
		{ops + "/v1/admin/tenants", 200},
		{ops + "/", 200}, // the login form
		{public + "/metrics", 404},
		{public + "/v1/admin/tenants", 404},
		{public + "/", 404},
		{public + "/healthz", 200},
		{ops + "/v1/events", 404},
	} {
		if status, body := getStatus(t, tc.url, "admin-token"); status != tc.status {
			t.Errorf("GET %s: %d, want %d (%.200s)", tc.url, status, tc.status, body)
		}
	}
	if r := postEvent(t, b, callEvent("ops-1", "alice@contoso.example", "c1", "active", time.Now())); r.status != http.StatusAccepted {
		t.Fatalf("webhook on the public listener: %d %v", r.status, r.body)
	}
	waitPresence(t, b, aliceID, "Busy/InACall", 0)
}

// Without admin.listen everything stays on the one listener, as before.
func TestOperationsShareListenerByDefault(t *testing.T) {
	b := startBridge(t, testConfig(t))
	if b.AdminAddr() != b.Addr() {
		t.Fatalf("AdminAddr %s, Addr %s", b.AdminAddr(), b.Addr())
	}
	for _, path := range []string{"/metrics", "/v1/admin/tenants", "/"} {
		if status, _ := getStatus(t, "http://"+b.Addr()+path, "admin-token"); status != 200 {
			t.Errorf("GET %s: %d", path, status)
		}
	}
}

// userView fetches GET /v1/admin/users/{tenant}/{user}.
func userView(t *testing.T, b *bridge.Bridge, user string) (int, admin.UserView) {
	t.Helper()
	status, body := getStatus(t, "http://"+b.AdminAddr()+"/v1/admin/users/contoso.example/"+user, "admin-token")
	for _, secret := range []string{"admin-token", "demo-token", "demo-secret"} {
		if strings.Contains(body, secret) {
			t.Fatalf("the user view shows the secret %q", secret)
		}
	}
	var v admin.UserView
	if status == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("user view: %v in %s", err, body)
		}
	}
	return status, v
}

// hasEntry reports whether entries hold one matching want's set fields.
func hasEntry(entries []history.Entry, match func(history.Entry) bool) bool {
	for _, e := range entries {
		if match(e) {
			return true
		}
	}
	return false
}

// "Why is Alice busy?": the user view shows, by UPN, directory key or
// object id, the events that touched her with their outcome, the
// writer's set, the open call and when it will be dropped; a refused
// change shows Graph's error and request-id; an unknown user is 404 and a
// Graph that can not resolve one is 503.
func TestWhyIsAliceBusy(t *testing.T) {
	b := startBridge(t, withLookupUsers(testConfig(t), 1)+"presence: {observe_interval: 0s}\n") // the one failure is for a write
	started := time.Now().UTC().Truncate(time.Second)
	postEvent(t, b, callEvent("why-1", "ext:1001", "c1", "active", started))
	waitPresence(t, b, aliceID, "Busy/InACall", 0)

	for _, user := range []string{"alice@contoso.example", "ext:1001", aliceID} {
		var v admin.UserView
		waitFor(t, "alice's history by "+user, func() (bool, string) {
			var status int
			// The view reads the state before the history, so the set may
			// be in the history while the state read still shows the call
			// under way: wait for both.
			status, v = userView(t, b, user)
			return status == 200 && v.Pending == nil && hasEntry(v.History, func(e history.Entry) bool {
				return e.Decision == history.DecisionSet && e.Pair == "Busy/InACall"
			}), "status " + http.StatusText(status)
		})
		if !hasEntry(v.History, func(e history.Entry) bool {
			return e.Source == "demo" && e.ID == "why-1" && e.Type == "call" && e.State == "active" &&
				e.Outcome == "applied" && e.OccurredAt != nil && e.OccurredAt.Equal(started)
		}) {
			t.Fatalf("by %s: no entry for the event in %+v", user, v.History)
		}
		if v.UserID != aliceID || len(v.OpenCalls) != 1 || v.OpenCalls[0].DropAt == nil ||
			!v.OpenCalls[0].DropAt.Equal(v.OpenCalls[0].Updated.Add(4*time.Hour)) || v.Pending != nil {
			t.Fatalf("by %s: view %+v", user, v)
		}
	}

	b.Emulator().FailNext(1, http.StatusBadRequest)
	postEvent(t, b, callEvent("why-2", "bob@contoso.example", "c2", "active", time.Now()))
	waitFor(t, "bob's refusal in his history", func() (bool, string) {
		_, v := userView(t, b, "bob@contoso.example")
		return hasEntry(v.History, func(e history.Entry) bool {
			return e.Decision == history.DecisionRefused && e.Pair == "Busy/InACall" && strings.Contains(e.Detail, "400") && e.RequestID != ""
		}), "no refusal"
	})

	if status, _ := userView(t, b, "nobody@contoso.example"); status != http.StatusNotFound {
		t.Errorf("unknown user: %d, want 404", status)
	}
	if status, _ := getStatus(t, "http://"+b.AdminAddr()+"/v1/admin/users/fabrikam.example/alice@contoso.example", "admin-token"); status != http.StatusNotFound {
		t.Errorf("unknown tenant: %d, want 404", status)
	}
	b.Emulator().Outage(time.Hour)
	_, upn := lookupUser(0)
	if status, _ := userView(t, b, upn); status != http.StatusServiceUnavailable {
		t.Errorf("user not yet resolved while Graph is down: %d, want 503", status)
	}
}

// waitHistory waits until user's history holds an entry matching match.
func waitHistory(t *testing.T, b *bridge.Bridge, user, what string, match func(history.Entry) bool) {
	t.Helper()
	waitFor(t, what, func() (bool, string) {
		status, v := userView(t, b, user)
		return status == 200 && hasEntry(v.History, match), fmt.Sprintf("status %d, history %+v", status, v.History)
	})
}

// The writer's decisions show in the history: a failed call to retry
// (with its time) before the set that worked, and a status set by hand
// that the bridge leaves alone.
func TestWriterDecisionsInHistory(t *testing.T) {
	yaml := strings.Replace(testConfig(t), "admin: {token: admin-token}", "admin: {token: admin-token}\npresence: {observe_interval: 100ms}", 1)
	b := startBridge(t, yaml)
	em := b.Emulator()
	em.FailNext(1, http.StatusServiceUnavailable)
	postEvent(t, b, callEvent("dec-1", "bob@contoso.example", "c1", "active", time.Now()))
	waitPresence(t, b, bobID, "Busy/InACall", 0)
	waitHistory(t, b, "bob@contoso.example", "the retry, then the set", func(e history.Entry) bool {
		return e.Decision == history.DecisionSet
	})
	_, v := userView(t, b, "bob@contoso.example")
	retried := false
	for _, e := range v.History {
		if e.Decision == history.DecisionRetry {
			retried = e.Until != nil && !e.Until.Before(e.At) && strings.Contains(e.Detail, "503")
		}
		if e.Decision == history.DecisionSet && !retried {
			t.Fatalf("no retry with its time and Graph's 503 before the set: %+v", v.History)
		}
	}

	postEvent(t, b, callEvent("dec-2", "alice@contoso.example", "c2", "active", time.Now()))
	waitPresence(t, b, aliceID, "Busy/InACall", 0)
	if err := em.SetPreferred(aliceID, "DoNotDisturb", "DoNotDisturb", 0); err != nil {
		t.Fatal(err)
	}
	waitHistory(t, b, aliceID, "the manual status", func(e history.Entry) bool {
		return e.Decision == history.DecisionManual && e.Pair == "DoNotDisturb/DoNotDisturb"
	})
}

// A 429 holds a call back until its Retry-After, and the history says
// until when.
func TestThrottleInHistory(t *testing.T) {
	// No aggregate reads, so that the 429 meets the clear.
	yaml := strings.Replace(testConfig(t), "admin: {token: admin-token}", "admin: {token: admin-token}\npresence: {observe_interval: 0s}", 1)
	b := startBridge(t, yaml)
	postEvent(t, b, callEvent("thr-1", "bob@contoso.example", "c1", "active", time.Now()))
	waitPresence(t, b, bobID, "Busy/InACall", 0)
	b.Emulator().ForceThrottle(1, 2*time.Second)
	postEvent(t, b, callEvent("thr-2", "bob@contoso.example", "c1", "ended", time.Now()))
	waitHistory(t, b, bobID, "the throttled clear", func(e history.Entry) bool {
		return e.Decision == history.DecisionRetry && strings.Contains(e.Detail, "429") && e.Until != nil && !e.Until.Before(e.At.Add(time.Second))
	})
	waitHistory(t, b, bobID, "the clear", func(e history.Entry) bool { return e.Decision == history.DecisionClear })
}

// startClockedAdminBridge is startClockedBridge with the admin API on,
// before the writer's budget, empty at first, has any fake time to fill.
func startClockedAdminBridge(t *testing.T) (*bridge.Bridge, *emulator.FakeClock) {
	t.Helper()
	clock := emulator.NewFakeClock(time.Now().Add(-3 * time.Hour).Truncate(time.Minute))
	cfg, err := config.Parse([]byte(clockedConfig(t)+"admin: {token: admin-token}\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := bridge.New(cfg, slog.New(slog.DiscardHandler), bridge.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop(context.Background()) })
	waitFor(t, "the tenant's writer", func() (bool, string) { return b.Writing("contoso.example"), "no writer" })
	return b, clock
}

// A session refreshed before it expires shows as a keep-alive.
func TestKeepAliveInHistory(t *testing.T) {
	b, clock := startClockedAdminBridge(t)
	clock.Advance(time.Second)
	postSourceEvent(t, b, "demo", "ka-1", "alice@contoso.example", "c1", "active", clock.Now())
	waitHistory(t, b, aliceID, "the set", func(e history.Entry) bool { return e.Decision == history.DecisionSet })
	clock.Advance(11 * time.Minute) // past two thirds of the 15-minute expiration
	waitHistory(t, b, aliceID, "the keep-alive", func(e history.Entry) bool {
		return e.Decision == history.DecisionKeepAlive && e.Pair == "Busy/InACall"
	})
}

// A change undone before the budget let it go costs no call and shows as
// coalesced: the budget is empty until the fake clock moves.
func TestCoalescedInHistory(t *testing.T) {
	b, clock := startClockedAdminBridge(t)
	postSourceEvent(t, b, "demo", "co-1", "bob@contoso.example", "c1", "active", clock.Now())
	waitHistory(t, b, bobID, "the call's event", func(e history.Entry) bool { return e.ID == "co-1" })
	postSourceEvent(t, b, "demo", "co-2", "bob@contoso.example", "c1", "ended", clock.Now().Add(time.Second))
	waitHistory(t, b, bobID, "the coalesced change", func(e history.Entry) bool { return e.Decision == history.DecisionCoalesced })
	_, v := userView(t, b, bobID)
	if hasEntry(v.History, func(e history.Entry) bool {
		return e.Decision == history.DecisionSet || e.Decision == history.DecisionClear
	}) {
		t.Fatalf("a call was sent for a change undone in time: %+v", v.History)
	}
}

// The status page's Replay button, on a real dead letter: logged in and
// with the form's CSRF field the letter is replayed, and Graph takes the
// change this time.
func TestStatusPageReplays(t *testing.T) {
	b := startBridge(t, withAdminListen(testConfig(t)))
	b.Emulator().FailNext(1, http.StatusBadRequest)
	postEvent(t, b, callEvent("page-1", "bob@contoso.example", "c1", "active", time.Now()))
	letters := waitDeadLetters(t, b, 1)
	ops := "http://" + b.AdminAddr()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login, err := noRedirect.PostForm(ops+"/login", url.Values{"token": {"admin-token"}})
	if err != nil {
		t.Fatal(err)
	}
	login.Body.Close()
	if len(login.Cookies()) != 1 {
		t.Fatalf("login: %d %v", login.StatusCode, login.Cookies())
	}
	req, _ := http.NewRequest(http.MethodGet, ops+"/", nil)
	req.AddCookie(login.Cookies()[0])
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	action := fmt.Sprintf(`action="/deadletters/%d/replay"><input type="hidden" name="csrf" value="`, letters[0].Seq)
	i := strings.Index(string(page), action)
	if i < 0 {
		t.Fatalf("no replay button for dead letter %d:\n%s", letters[0].Seq, page)
	}
	csrf := string(page[i+len(action) : i+len(action)+64])
	req, _ = http.NewRequest(http.MethodPost, fmt.Sprintf("%s/deadletters/%d/replay", ops, letters[0].Seq), strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(login.Cookies()[0])
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "replayed") {
		t.Fatalf("replay: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	waitPresence(t, b, bobID, "Busy/InACall", 0)
}
