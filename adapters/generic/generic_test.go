package generic

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/adaptertest"
)

// testSecret is whsec_ + base64 of 32 bytes.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func signed(t *testing.T, body []byte, at time.Time, sign bool) *http.Request {
	req := adaptertest.JSONRequest(body)
	if sign {
		key, err := DecodeSecret(testSecret)
		if err != nil {
			t.Fatal(err)
		}
		ts := strconv.FormatInt(at.Unix(), 10)
		req.Header.Set("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
		req.Header.Set("webhook-timestamp", ts)
		// A rotated-out signature first, then the valid one.
		req.Header.Set("webhook-signature", "v1,Zm9yZ2VkIHNpZ25hdHVyZQ== "+Sign(key, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, body))
	}
	return req
}

func TestConformance(t *testing.T) {
	adaptertest.Run(t, adaptertest.Suite{
		New:         func(c adapters.SourceConfig) (adapters.Adapter, error) { return New(c) },
		Config:      adapters.SourceConfig{Name: "pbx-main", Type: "generic", Secret: testSecret},
		Request:     signed,
		Timestamped: true,
		Malformed:   []byte(`{"id":`),
		InvalidText: []adaptertest.TextCase{
			{Name: "raw byte in user", Body: []byte(`{"id":"e1","source":"pbx-main","type":"call","user":"ext:10` + "\xff" + `01","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active"}`), Field: "user"},
			{Name: "lone surrogate in callId", Body: []byte(`{"id":"e1","source":"pbx-main","type":"call","user":"ext:1001","occurredAt":"2026-11-23T10:00:00Z","callId":"c\ud800","state":"active"}`), Field: "callId"},
			{Name: "in a batch", Body: []byte(`{"events":[{"id":"e1","source":"pbx-main","type":"call","user":"ext:1001","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active"},{"id":"e2","source":"pbx-main","type":"call","user":"` + "\xed\xa0\x80" + `","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active"}]}`), Field: "events[1].user"},
		},
	})
}

func TestBearerToken(t *testing.T) {
	a, err := New(adapters.SourceConfig{Name: "pbx-main", Token: "dialplan-token"})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"e1","source":"pbx-main","type":"call","user":"ext:1001","occurredAt":"2026-11-23T09:59:58Z","callId":"c","state":"ended"}`)
	for _, tt := range []struct {
		auth   string
		status int
	}{{"Bearer dialplan-token", 0}, {"Bearer nope", 401}, {"", 401}} {
		req := adaptertest.JSONRequest(body)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		_, err := a.Decode(req)
		if got := status(err); got != tt.status {
			t.Errorf("%q: status %d, want %d (%v)", tt.auth, got, tt.status, err)
		}
	}
	other := adaptertest.JSONRequest([]byte(`{"id":"e1","source":"other","type":"call","user":"ext:1001","occurredAt":"2026-11-23T09:59:58Z","callId":"c","state":"ended"}`))
	other.Header.Set("Authorization", "Bearer dialplan-token")
	if _, err := a.Decode(other); status(err) != 400 {
		t.Errorf("an event of another source: %v", err)
	}
}

func TestSecretFormat(t *testing.T) {
	for _, s := range []string{"secret", "whsec_not-base64!", "whsec_c2hvcnQ="} {
		if _, err := New(adapters.SourceConfig{Name: "x", Secret: s}); err == nil {
			t.Errorf("secret %q accepted", s)
		}
	}
}

func status(err error) int {
	if err == nil {
		return 0
	}
	if re, ok := err.(*adapters.RequestError); ok {
		return re.Status
	}
	return -1
}

func FuzzDecode(f *testing.F) {
	for _, s := range adaptertest.Seeds(f) {
		f.Add(s, "msg_1", "1795428000", "v1,abc")
	}
	a, err := New(adapters.SourceConfig{Name: "pbx-main", Secret: testSecret, Now: func() time.Time { return adaptertest.Now }})
	if err != nil {
		f.Fatal(err)
	}
	key, _ := DecodeSecret(testSecret)
	f.Fuzz(func(t *testing.T, body []byte, id, ts, sig string) {
		req := adaptertest.JSONRequest(body)
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", ts)
		req.Header.Set("webhook-signature", sig+" "+Sign(key, id, ts, body))
		events, err := a.Decode(req)
		if err == nil {
			for _, e := range events {
				if e.Validate("") != nil || e.Source != "pbx-main" {
					t.Fatalf("accepted an invalid event %+v", e)
				}
			}
		} else if status(err) <= 0 {
			t.Fatalf("error without a status: %v", err)
		}
	})
}
