package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters/generic"
	"github.com/presence-bridge/presence-bridge/adapters/twilio"
	"github.com/presence-bridge/presence-bridge/adapters/webex"
	"github.com/presence-bridge/presence-bridge/adapters/zoomphone"
	"github.com/presence-bridge/presence-bridge/bridge"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// adaptersConfig adds one source of every type to the test configuration,
// and the directory entries that name Alice in each vendor's terms.
func adaptersConfig(t *testing.T) string {
	cfg := testConfig(t)
	cfg = strings.Replace(cfg, "roles: [Presence.ReadWrite.All, Presence.Read.All, User.Read.All]", "roles: [Presence.ReadWrite.All, Presence.Read.All, User.Read.All, Calendars.Read]", 1)
	var users strings.Builder
	for i := 2; i <= 6; i++ {
		fmt.Fprintf(&users, "          - {id: %s, user_principal_name: v%d@contoso.example}\n", vendorUser(i), i)
	}
	cfg = strings.Replace(cfg, "    admin: {writes: true}", strings.TrimSuffix(users.String(), "\n")+"\n    admin: {writes: true}", 1)
	cfg = strings.Replace(cfg, `directory:
  "ext:1001": alice@contoso.example`, `directory:
  "ext:1001": alice@contoso.example
  "tel:+1 555 123 0001": v2@contoso.example
  "ext:1003": v3@contoso.example
  "webex:Y2lzY29zcGFyazovL3VzL1BFT1BMRS9hbGljZQ": v4@contoso.example
  "rc:230919004": v5@contoso.example`, 1)
	return strings.Replace(cfg, "admin: {token: admin-token}", `  - {name: signed, type: generic, secret: `+whsec+`}
  - {name: twilio, type: twilio, secret: twilio-auth-token, public_url: "https://bridge.example.com/v1/hooks/twilio"}
  - {name: zoom, type: zoomphone, secret: zoom-secret}
  - {name: webex, type: webex, secret: webex-secret}
  - {name: rc, type: ringcentral, secret: rc-token}
  - {name: calendar, type: graphcalendar, secret: calendar-state}
admin: {token: admin-token}`, 1)
}

// vendorUser is the object id of the emulator user each vendor case uses.
func vendorUser(i int) string { return fmt.Sprintf("00000000-0000-0000-0000-%012d", i) }

type vendorCase struct {
	user   string
	name   string
	path   string
	status int
	want   string
	// build returns the vendor's request for body, signed or not.
	body  func(now time.Time) string
	build func(body []byte, signed bool) *http.Request
}

func TestAdaptersEndToEnd(t *testing.T) {
	b := startBridge(t, adaptersConfig(t))
	now := time.Now().UTC()
	ts := strconv.FormatInt(now.Unix(), 10)
	jsonReq := func(path string, body []byte) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, "http://"+b.Addr()+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return req
	}
	if err := b.Emulator().SetEvent(emulator.CalendarEvent{ID: "AAMk1", User: vendorUser(6), Start: now.Add(-time.Minute), End: now.Add(time.Hour), ShowAs: "busy"}); err != nil {
		t.Fatal(err)
	}
	cases := []vendorCase{
		{
			user: aliceID, name: "generic", path: "/v1/hooks/signed", status: 202, want: "Busy/InACall",
			body: func(now time.Time) string {
				return `{"id":"g1","source":"signed","type":"call","user":"ext:1001","occurredAt":"` + now.Format(time.RFC3339) + `","callId":"g","state":"active"}`
			},
			build: func(body []byte, signed bool) *http.Request {
				req := jsonReq("/v1/hooks/signed", body)
				if signed {
					key, _ := generic.DecodeSecret(whsec)
					req.Header.Set("webhook-id", "msg_1")
					req.Header.Set("webhook-timestamp", ts)
					req.Header.Set("webhook-signature", generic.Sign(key, "msg_1", ts, body))
				}
				return req
			},
		},
		{
			user: vendorUser(2), name: "twilio", path: "/v1/hooks/twilio", status: 200, want: "Busy/InACall",
			body: func(time.Time) string {
				return "CallSid=CA1&CallStatus=in-progress&Direction=inbound&From=%2B14155550100&SequenceNumber=1&To=%2B15551230001"
			},
			build: func(body []byte, signed bool) *http.Request {
				req, _ := http.NewRequest(http.MethodPost, "http://"+b.Addr()+"/v1/hooks/twilio", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if signed {
					form, _ := url.ParseQuery(string(body))
					req.Header.Set("X-Twilio-Signature", twilio.Signature("twilio-auth-token", "https://bridge.example.com/v1/hooks/twilio", form))
				}
				return req
			},
		},
		{
			user: vendorUser(3), name: "zoomphone", path: "/v1/hooks/zoom", status: 202, want: "Busy/InACall",
			body: func(now time.Time) string {
				return `{"event":"phone.callee_answered","event_ts":` + strconv.FormatInt(now.UnixMilli(), 10) + `,"payload":{"account_id":"a","object":{"call_id":"z1","caller":{"phone_number":"+14155550100"},"callee":{"extension_number":1003}}}}`
			},
			build: func(body []byte, signed bool) *http.Request {
				req := jsonReq("/v1/hooks/zoom", body)
				if signed {
					req.Header.Set("x-zm-request-timestamp", ts)
					req.Header.Set("x-zm-signature", zoomphone.Signature("zoom-secret", ts, body))
				}
				return req
			},
		},
		{
			user: vendorUser(4), name: "webex", path: "/v1/hooks/webex", status: 202, want: "Busy/InACall",
			body: func(now time.Time) string {
				return `{"id":"w","resource":"telephony_calls","event":"updated","actorId":"Y2lzY29zcGFyazovL3VzL1BFT1BMRS9hbGljZQ","data":{"callId":"wc1","state":"connected","eventTimestamp":"` + now.Format(time.RFC3339) + `"}}`
			},
			build: func(body []byte, signed bool) *http.Request {
				req := jsonReq("/v1/hooks/webex", body)
				if signed {
					req.Header.Set("X-Spark-Signature", webex.Signature("webex-secret", body))
				}
				return req
			},
		},
		{
			user: vendorUser(5), name: "ringcentral", path: "/v1/hooks/rc", status: 202, want: "Busy/InACall",
			body: func(now time.Time) string {
				return `{"uuid":"1","event":"/restapi/v1.0/account/~/telephony/sessions","body":{"sequence":1,"telephonySessionId":"s-1","eventTime":"` + now.Format(time.RFC3339) + `","parties":[{"id":"p1","extensionId":"230919004","status":{"code":"Answered"}}]}}`
			},
			build: func(body []byte, signed bool) *http.Request {
				req := jsonReq("/v1/hooks/rc", body)
				if signed {
					req.Header.Set("Verification-Token", "rc-token")
				}
				return req
			},
		},
		{
			user: vendorUser(6), name: "graphcalendar", path: "/v1/hooks/calendar", status: 202, want: "Busy/InAConferenceCall",
			body: func(now time.Time) string {
				return `{"value":[{"subscriptionId":"s","changeType":"created","clientState":"calendar-state","resource":"Users/` + vendorUser(6) + `/Events/AAMk1","resourceData":{"id":"AAMk1"}}]}`
			},
			build: func(body []byte, signed bool) *http.Request {
				if !signed {
					body = bytes.Replace(body, []byte("calendar-state"), []byte("guessed-state"), 1)
				}
				return jsonReq("/v1/hooks/calendar", body)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body(time.Now().UTC()))
			before := streamLastSeq(t, b)
			for _, attempt := range []struct {
				name string
				req  *http.Request
			}{
				{"unsigned", tc.build(body, false)},
				{"altered", alter(tc.name, tc.build(body, true))},
			} {
				if status := send(t, attempt.req); status != http.StatusUnauthorized {
					t.Fatalf("%s request: status %d, want 401", attempt.name, status)
				}
			}
			if after := streamLastSeq(t, b); after != before {
				t.Fatalf("a rejected request was queued (stream sequence %d → %d)", before, after)
			}
			if status := send(t, tc.build(body, true)); status != tc.status {
				t.Fatalf("signed request: status %d, want %d", status, tc.status)
			}
			waitPresence(t, b, tc.user, tc.want, 3*time.Second)
		})
	}
	t.Run("handshakes", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+b.Addr()+"/v1/hooks/calendar?validationToken=hello+graph", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "hello graph" {
			t.Fatalf("graph validation: %d %q", resp.StatusCode, body)
		}
		req, _ = http.NewRequest(http.MethodPost, "http://"+b.Addr()+"/v1/hooks/rc", nil)
		req.Header.Set("Validation-Token", "rc-validation")
		req.Header.Set("Verification-Token", "rc-token")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Validation-Token") != "rc-validation" {
			t.Fatalf("ringcentral validation: %d %q", resp.StatusCode, resp.Header.Get("Validation-Token"))
		}
	})
}

// alter changes a signed request by one byte: the body for vendors that
// sign it; the shared token for RingCentral and Graph (its clientState),
// which prove the sender with a token and do not sign the body.
func alter(vendor string, req *http.Request) *http.Request {
	if vendor == "ringcentral" {
		token := []byte(req.Header.Get("Verification-Token"))
		token[len(token)/2] ^= 0x01
		req.Header.Set("Verification-Token", string(token))
		return req
	}
	body, _ := io.ReadAll(req.Body)
	if vendor == "graphcalendar" {
		i := bytes.Index(body, []byte(`"clientState":"`)) + len(`"clientState":"`)
		body[i] ^= 0x01
	} else {
		body[len(body)/2] ^= 0x01
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	return req
}

func send(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func streamLastSeq(t *testing.T, b *bridge.Bridge) uint64 {
	t.Helper()
	s, err := b.Queue().JetStream().Stream(context.Background(), "PRESENCE_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}
