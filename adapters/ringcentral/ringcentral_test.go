package ringcentral

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/adaptertest"
)

const token = "rc-verification-token"

func request(t *testing.T, body []byte, _ time.Time, signed bool) *http.Request {
	req := adaptertest.JSONRequest(body)
	if signed {
		req.Header.Set("Verification-Token", token)
	}
	return req
}

func TestConformance(t *testing.T) {
	adaptertest.Run(t, adaptertest.Suite{
		New:       func(c adapters.SourceConfig) (adapters.Adapter, error) { return New(c) },
		Config:    adapters.SourceConfig{Name: "rc", Secret: token},
		Request:   request,
		TokenOnly: true,
		Malformed: []byte(`{"body":{"parties":"none"}}`),
		InvalidText: []adaptertest.TextCase{
			{Name: "raw byte", Body: []byte(`{"body":{"telephonySessionId":"s-1","parties":[{"id":"p","extensionId":"23` + "\xc0\xaf" + `","status":{"code":"Answered"}}]}}`), Field: "body.parties[0].extensionId"},
			{Name: "lone surrogate", Body: []byte(`{"body":{"telephonySessionId":"s-\uDE00","parties":[]}}`), Field: "body.telephonySessionId"},
		},
		Handshakes: []adaptertest.Handshake{{
			Name: "Validation-Token",
			Request: func(t *testing.T, _ time.Time, proven bool) *http.Request {
				return validation(validationToken, proven, token)
			},
			Forged: func(t *testing.T) *http.Request { return validation(validationToken, true, token+"x") },
			Unsafe: []func(t *testing.T) *http.Request{
				func(t *testing.T) *http.Request { return validation(strings.Repeat("a", 257), true, token) },
				func(t *testing.T) *http.Request { return validation("bell\a", true, token) },
				func(t *testing.T) *http.Request { return validation("caf\u00e9", true, token) },
			},
			Check: func(t *testing.T, w *httptest.ResponseRecorder) {
				if w.Code != 200 || w.Header().Get("Validation-Token") != validationToken {
					t.Fatalf("answer %d, Validation-Token %q", w.Code, w.Header().Get("Validation-Token"))
				}
			},
		}},
	})
}

const validationToken = "6a4d9d1b-2c2f-4b3a-9c7e-0f1e2d3c4b5a"

// validation is RingCentral's validation request for a new subscription,
// with the subscription's Verification-Token when proven.
func validation(echo string, proven bool, verification string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/v1/hooks/rc", nil)
	req.Header.Set("Validation-Token", echo)
	if proven {
		req.Header.Set("Verification-Token", verification)
	}
	return req
}

// TestWrongToken: RingCentral signs no body, so the token is the whole
// proof; it must stay secret and the hook be served over TLS.
func TestWrongToken(t *testing.T) {
	a, _ := New(adapters.SourceConfig{Name: "rc", Secret: token})
	req := adaptertest.JSONRequest([]byte(`{}`))
	req.Header.Set("Verification-Token", token+"x")
	if _, err := a.Decode(req); err == nil {
		t.Fatal("a wrong token was accepted")
	}
}

func FuzzDecode(f *testing.F) {
	a, err := New(adapters.SourceConfig{Name: "rc", Secret: token, Now: func() time.Time { return adaptertest.Now }})
	if err != nil {
		f.Fatal(err)
	}
	adaptertest.Fuzz(f, a, func(t *testing.T, body []byte) *http.Request { return request(t, body, adaptertest.Now, true) })
}
