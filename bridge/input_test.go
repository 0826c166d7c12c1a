package bridge_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/twilio"
	"github.com/presence-bridge/presence-bridge/adapters/webex"
	"github.com/presence-bridge/presence-bridge/adapters/zoomphone"
	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/internal/natstest"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// exchange sends req and reads the JSON answer (an empty body reads as no
// fields).
func exchange(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header}
	if len(bytes.TrimSpace(raw)) > 0 && json.Unmarshal(raw, &r.body) != nil {
		t.Fatalf("answer %d is not a JSON object: %q", resp.StatusCode, raw)
	}
	return r
}

// errorFields returns the field names of a JSON error answer.
func errorFields(r response) []string {
	e, _ := r.body["error"].(map[string]any)
	fields, _ := e["fields"].([]any)
	var names []string
	for _, f := range fields {
		m, _ := f.(map[string]any)
		names = append(names, strings.TrimSpace(m["field"].(string)))
	}
	return names
}

func hookRequest(b *bridge.Bridge, path, contentType string, body []byte) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, "http://"+b.Addr()+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	return req
}

// TestZoomValidationIsNoSigningOracle reproduces the exploit of issue 9:
// an unsigned endpoint.url_validation whose plainToken is
// "v0:{timestamp}:{body}" used to be answered with HMAC(secret,
// plainToken), which is exactly the x-zm-signature of that body, and the
// forged event was then accepted. Now the validation is refused with 401,
// and the event signed with whatever came back is refused too.
func TestZoomValidationIsNoSigningOracle(t *testing.T) {
	b := startBridge(t, adaptersConfig(t))
	now := time.Now().UTC()
	ts := strconv.FormatInt(now.Unix(), 10)
	forged := []byte(`{"event":"phone.callee_answered","event_ts":` + strconv.FormatInt(now.UnixMilli(), 10) + `,"payload":{"account_id":"a","object":{"call_id":"forged","caller":{"phone_number":"+14155550100"},"callee":{"extension_number":1003}}}}`)
	validation, _ := json.Marshal(map[string]any{"event": "endpoint.url_validation", "payload": map[string]string{"plainToken": "v0:" + ts + ":" + string(forged)}})
	before := streamLastSeq(t, b)

	r := exchange(t, hookRequest(b, "/v1/hooks/zoom", "application/json", validation))
	if r.status != http.StatusUnauthorized || r.body["error"] == nil {
		t.Errorf("unsigned validation: %d %v, want 401 with a JSON error", r.status, r.body)
	}
	encrypted, _ := r.body["encryptedToken"].(string)
	req := hookRequest(b, "/v1/hooks/zoom", "application/json", forged)
	req.Header.Set("x-zm-request-timestamp", ts)
	req.Header.Set("x-zm-signature", "v0="+encrypted)
	if r := exchange(t, req); r.status != http.StatusUnauthorized {
		t.Fatalf("forged event: %d %v, want 401", r.status, r.body)
	}

	wrong := hookRequest(b, "/v1/hooks/zoom", "application/json", validation)
	wrong.Header.Set("x-zm-request-timestamp", ts)
	wrong.Header.Set("x-zm-signature", zoomphone.Signature("guessed-secret", ts, validation))
	if r := exchange(t, wrong); r.status != http.StatusUnauthorized || r.body["encryptedToken"] != nil {
		t.Fatalf("wrongly signed validation: %d %v, want 401", r.status, r.body)
	}
	if after := streamLastSeq(t, b); after != before {
		t.Fatalf("something was queued (stream sequence %d → %d)", before, after)
	}

	// Zoom's own validation, signed, is answered as before.
	genuine := []byte(`{"event":"endpoint.url_validation","payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"}}`)
	req = hookRequest(b, "/v1/hooks/zoom", "application/json", genuine)
	req.Header.Set("x-zm-request-timestamp", ts)
	req.Header.Set("x-zm-signature", zoomphone.Signature("zoom-secret", ts, genuine))
	r = exchange(t, req)
	if want := adapters.SignHex(sha256.New, []byte("zoom-secret"), []byte("qgg8vlvZRS6UYooatFL8Aw")); r.status != http.StatusOK || r.body["encryptedToken"] != want {
		t.Fatalf("signed validation: %d %v, want 200 with encryptedToken %s", r.status, r.body, want)
	}
}

// TestHandshakesNeedProof: RingCentral's echo needs the subscription's
// Verification-Token; Graph's, which carries no proof, echoes only a short
// plain token.
func TestHandshakesNeedProof(t *testing.T) {
	b := startBridge(t, adaptersConfig(t))
	rc := func(verification string) *http.Request {
		req := hookRequest(b, "/v1/hooks/rc", "application/json", nil)
		req.Header.Set("Validation-Token", "rc-validation")
		if verification != "" {
			req.Header.Set("Verification-Token", verification)
		}
		return req
	}
	for name, req := range map[string]*http.Request{"unproven": rc(""), "forged": rc("rc-tokem")} {
		if r := exchange(t, req); r.status != http.StatusUnauthorized || r.header.Get("Validation-Token") != "" {
			t.Errorf("ringcentral %s validation: %d, Validation-Token %q, want 401 and no echo", name, r.status, r.header.Get("Validation-Token"))
		}
	}
	if r := exchange(t, rc("rc-token")); r.status != http.StatusOK || r.header.Get("Validation-Token") != "rc-validation" {
		t.Errorf("ringcentral validation: %d, Validation-Token %q", r.status, r.header.Get("Validation-Token"))
	}
	markup := hookRequest(b, "/v1/hooks/calendar?validationToken="+url.QueryEscape("<script>alert(1)</script>"), "text/plain", nil)
	if r := exchange(t, markup); r.status != http.StatusBadRequest || r.body["error"] == nil {
		t.Errorf("graph validation with markup: %d %v, want 400", r.status, r.body)
	}
}

// TestFutureOccurredAtRefused: an event dated 9999-12-31 is refused with
// 400 naming occurredAt (dead-lettered naming it on the bus), so that it
// can not lock the call: the real call that follows, active now and ended
// a second later, starts and ends.
func TestFutureOccurredAtRefused(t *testing.T) {
	b := startBridge(t, adaptersConfig(t))
	far := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	r := postEvent(t, b, callEvent("f1", "alice@contoso.example", "c1", "active", far))
	if r.status != http.StatusBadRequest || !strings.Contains(strings.Join(errorFields(r), " "), "occurredAt") {
		t.Errorf("/v1/events dated 9999: %d %v, want 400 naming occurredAt", r.status, r.body)
	}

	ts := strconv.FormatInt(time.Now().Unix(), 10)
	zoom := []byte(`{"event":"phone.callee_answered","event_ts":` + strconv.FormatInt(far.UnixMilli(), 10) + `,"payload":{"account_id":"a","object":{"call_id":"z9","callee":{"extension_number":1003}}}}`)
	req := hookRequest(b, "/v1/hooks/zoom", "application/json", zoom)
	req.Header.Set("x-zm-request-timestamp", ts)
	req.Header.Set("x-zm-signature", zoomphone.Signature("zoom-secret", ts, zoom))
	if r := exchange(t, req); r.status != http.StatusBadRequest || !strings.Contains(strings.Join(errorFields(r), " "), "occurredAt") {
		t.Errorf("zoom event dated 9999: %d %v, want 400 naming occurredAt", r.status, r.body)
	}

	now := time.Now()
	if r := postEvent(t, b, callEvent("f3", "alice@contoso.example", "c1", "active", now)); r.status != http.StatusAccepted {
		t.Fatalf("active: %d %v", r.status, r.body)
	}
	waitPresence(t, b, aliceID, "Busy/InACall", 30*time.Second)
	if r := postEvent(t, b, callEvent("f4", "alice@contoso.example", "c1", "ended", now.Add(time.Second))); r.status != http.StatusAccepted {
		t.Fatalf("ended: %d %v", r.status, r.body)
	}
	waitPresence(t, b, aliceID, "Offline/Offline", 30*time.Second)

	if err := b.Queue().Conn().Publish("presence.events.demo", []byte(callEvent("f2", "alice@contoso.example", "c1", "active", far))); err != nil {
		t.Fatal(err)
	}
	letters := waitDeadLetters(t, b, 1)
	if !strings.Contains(letters[0].Reason, "occurredAt") {
		t.Errorf("bus event dated 9999 dead-lettered with reason %q, want one naming occurredAt", letters[0].Reason)
	}
}

// TestInvalidUTF8Refused: text encoding/json would have turned into U+FFFD
// is refused with 400 naming the field, on /v1/events and on a
// form-encoded webhook.
func TestInvalidUTF8Refused(t *testing.T) {
	b := startBridge(t, adaptersConfig(t))
	before := streamLastSeq(t, b)
	now := time.Now()
	for _, tc := range []struct {
		name, body, field string
	}{
		{"user", strings.Replace(callEvent("u1", "alice@contoso.example", "c1", "active", now), "alice@", "ali\xffce@", 1), "user"},
		{"callId", strings.Replace(callEvent("u2", "alice@contoso.example", "c1", "active", now), `"c1"`, `"c1\ud800"`, 1), "callId"},
	} {
		r := postEvent(t, b, tc.body)
		if fields := errorFields(r); r.status != http.StatusBadRequest || len(fields) != 1 || fields[0] != tc.field {
			t.Errorf("%s: %d %v, want 400 naming %s", tc.name, r.status, r.body, tc.field)
		}
	}
	body := []byte("CallSid=CA1&CallStatus=in-progress&Direction=inbound&From=%2B14155550100&To=%2B1555123%FF0001")
	req := hookRequest(b, "/v1/hooks/twilio", "application/x-www-form-urlencoded", body)
	form, _ := url.ParseQuery(string(body))
	req.Header.Set("X-Twilio-Signature", twilio.Signature("twilio-auth-token", "https://bridge.example.com/v1/hooks/twilio", form))
	if r := exchange(t, req); r.status != http.StatusBadRequest || len(errorFields(r)) != 1 || errorFields(r)[0] != "To" {
		t.Errorf("twilio: %d %v, want 400 naming To", r.status, r.body)
	}
	if after := streamLastSeq(t, b); after != before {
		t.Fatalf("bad text was queued (stream sequence %d → %d)", before, after)
	}
}

// TestIngestFailsFastWhileNATSIsDown: with publish_timeout at ten minutes,
// an event posted while the NATS connection is known lost is answered 503
// with Retry-After and a JSON error at once (the client gives up long
// before ten minutes); once NATS is back the same event is accepted and
// applied.
func TestIngestFailsFastWhileNATSIsDown(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.ServerAt(t, -1, dir)
	port := srv.Addr().(*net.TCPAddr).Port
	_, em := sharedParts(t)
	yaml := strings.Replace(clusterConfig(srv.ClientURL(), em.Addr()), "publish_timeout: 2s", "publish_timeout: 10m", 1)
	b := startClusterBridgeFrom(t, yaml)
	testpoll.Until(t, "the bridge to be ready", func() bool { return get(t, b, "/readyz") == http.StatusOK })

	srv.Shutdown()
	testpoll.Until(t, "/readyz to notice NATS is gone", func() bool { return get(t, b, "/readyz") == http.StatusServiceUnavailable })

	event := callEvent("down1", "alice@contoso.example", "c1", "active", time.Now())
	req, _ := http.NewRequest(http.MethodPost, "http://"+b.Addr()+"/v1/events", strings.NewReader(event))
	req.Header.Set("Authorization", "Bearer demo-token")
	req.Header.Set("Content-Type", "application/json")
	// Far below publish_timeout: only the fast path answers in time.
	client := &http.Client{Timeout: patience}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("no answer while NATS is down (the request waited for publish_timeout): %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var body struct {
		Error struct{ Code, Message string }
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || json.Unmarshal(raw, &body) != nil || body.Error.Code != "queue_unavailable" {
		t.Fatalf("while NATS is down: %d, Retry-After %q, %s; want 503 with Retry-After and a JSON error", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
	}

	natstest.ServerAt(t, port, dir)
	testpoll.Until(t, "the event to be accepted once NATS is back", func() bool {
		return postEvent(t, b, event).status == http.StatusAccepted
	})
	testpoll.Until(t, "alice to be in a call", func() bool {
		p, _ := em.Presence(aliceID)
		return p.Availability+"/"+p.Activity == "Busy/InACall"
	})
}

// get answers the status of a GET of path on b's HTTP port.
func get(t *testing.T, b *bridge.Bridge, path string) int {
	t.Helper()
	resp, err := http.Get("http://" + b.Addr() + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSmallInputHolesOverHTTP: through the bridge's own HTTP port, a
// repeated key (also in a batch, also in a vendor's signed body), a year-1
// occurredAt, signed junk and a text/plain webhook are each refused with
// the status and the field that name the problem, and nothing is queued.
func TestSmallInputHolesOverHTTP(t *testing.T) {
	b := startBridge(t, adaptersConfig(t))
	before := streamLastSeq(t, b)
	now := time.Now()
	call := callEvent("h1", "alice@contoso.example", "c1", "active", now)
	other := callEvent("h2", "bob@contoso.example", "c2", "active", now)
	webexHook := func(contentType, body string) *http.Request {
		req := hookRequest(b, "/v1/hooks/webex", contentType, []byte(body))
		req.Header.Set("X-Spark-Signature", webex.Signature("webex-secret", []byte(body)))
		return req
	}
	events := func(body string) *http.Request {
		req := hookRequest(b, "/v1/events", "application/json", []byte(body))
		req.Header.Set("Authorization", "Bearer demo-token")
		return req
	}
	const webexCall = `{"id":"w1","resource":"telephony_calls","event":"updated","actorId":"Y2lzY29zcGFyazovL3VzL1BFT1BMRS9hbGljZQ","data":{"callId":"c9","state":"connected"}}`
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
		field  string
	}{
		{"repeated id", events(strings.Replace(call, `"id":"h1"`, `"id":"h1","id":"h3"`, 1)), 400, "id"},
		{"repeated user in a batch", events(`{"events":[` + call + `,` + strings.Replace(other, `"user"`, `"user":"alice@contoso.example","user"`, 1) + `]}`), 400, "events[1].user"},
		{"repeated key escaped", events(strings.Replace(call, `"state"`, `"st\u0061te":"ended","state"`, 1)), 400, "state"},
		{"year 1", events(strings.Replace(call, now.UTC().Format(time.RFC3339Nano), "0001-01-01T00:00:00Z", 1)), 400, "occurredAt"},
		{"webex repeated actorId", webexHook("application/json", strings.Replace(webexCall, `"actorId"`, `"actorId":"bWFsbG9yeQ","actorId"`, 1)), 400, "actorId"},
		{"webex junk", webexHook("application/json", `{"hello":"world"}`), 400, ""},
		{"webex text/plain", webexHook("text/plain", webexCall), 415, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := exchange(t, tc.req)
			fields := errorFields(r)
			if r.status != tc.status || r.body["error"] == nil || tc.field != "" && (len(fields) != 1 || fields[0] != tc.field) {
				t.Fatalf("%d %v, want %d naming %q", r.status, r.body, tc.status, tc.field)
			}
			if tc.name == "year 1" && !strings.Contains(fmt.Sprint(r.body), "out of range") {
				t.Fatalf("%v, want occurredAt out of range", r.body)
			}
		})
	}
	if after := streamLastSeq(t, b); after != before {
		t.Fatalf("refused input was queued (stream sequence %d → %d)", before, after)
	}
	if r := exchange(t, webexHook("application/json; charset=utf-8", webexCall)); r.status != http.StatusAccepted {
		t.Fatalf("the genuine webex call: %d %v", r.status, r.body)
	}
}
