package zoomphone

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/adaptertest"
)

const secret = "zoom-secret-token"

func request(t *testing.T, body []byte, at time.Time, signed bool) *http.Request {
	req := adaptertest.JSONRequest(body)
	if signed {
		ts := strconv.FormatInt(at.Unix(), 10)
		req.Header.Set("x-zm-request-timestamp", ts)
		req.Header.Set("x-zm-signature", Signature(secret, ts, body))
	}
	return req
}

func TestConformance(t *testing.T) {
	validation := []byte(`{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1795428000000,"event":"endpoint.url_validation"}`)
	signedAsValidation := func(token string) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			body, _ := json.Marshal(map[string]any{"event": "endpoint.url_validation", "payload": map[string]string{"plainToken": token}})
			return request(t, body, adaptertest.Now, true)
		}
	}
	adaptertest.Run(t, adaptertest.Suite{
		New:         func(c adapters.SourceConfig) (adapters.Adapter, error) { return New(c) },
		Config:      adapters.SourceConfig{Name: "zoom", Secret: secret},
		Request:     request,
		Timestamped: true,
		Malformed:   []byte(`{"event":"phone.callee_answered","payload":{"object":{"call_id":"1","callee":{}}}}`),
		InvalidText: []adaptertest.TextCase{
			{Name: "raw byte", Body: []byte(`{"event":"phone.callee_answered","payload":{"object":{"call_id":"1","callee":{"user_id":"u` + "\xfe" + `"}}}}`), Field: "payload.object.callee.user_id"},
			{Name: "lone surrogate", Body: []byte(`{"event":"phone.callee_answered","payload":{"object":{"call_id":"\ud83d1","callee":{"extension_number":1001}}}}`), Field: "payload.object.call_id"},
		},
		Handshakes: []adaptertest.Handshake{{
			Name:    "endpoint.url_validation",
			Request: func(t *testing.T, at time.Time, proven bool) *http.Request { return request(t, validation, at, proven) },
			Forged: func(t *testing.T) *http.Request {
				req := request(t, validation, adaptertest.Now, true)
				req.Header.Set("x-zm-signature", Signature("another-secret", req.Header.Get("x-zm-request-timestamp"), validation))
				return req
			},
			Unsafe: []func(t *testing.T) *http.Request{
				// Even a proven request never gets an event's signature.
				signedAsValidation(`v0:1795428000:{"event":"phone.callee_answered"}`),
				signedAsValidation(strings.Repeat("a", 129)),
				signedAsValidation("tab\there"),
				signedAsValidation("caf\u00e9"),
			},
			Check: func(t *testing.T, w *httptest.ResponseRecorder) {
				var got map[string]string
				if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &got) != nil {
					t.Fatalf("answer %d %s", w.Code, w.Body)
				}
				want := adapters.SignHex(sha256.New, []byte(secret), []byte("qgg8vlvZRS6UYooatFL8Aw"))
				if got["plainToken"] != "qgg8vlvZRS6UYooatFL8Aw" || got["encryptedToken"] != want {
					t.Fatalf("answer %v, want encryptedToken %s", got, want)
				}
			},
		}},
	})
}

func FuzzDecode(f *testing.F) {
	a, err := New(adapters.SourceConfig{Name: "zoom", Secret: secret, Now: func() time.Time { return adaptertest.Now }})
	if err != nil {
		f.Fatal(err)
	}
	adaptertest.Fuzz(f, a, func(t *testing.T, body []byte) *http.Request { return request(t, body, adaptertest.Now, true) })
}
