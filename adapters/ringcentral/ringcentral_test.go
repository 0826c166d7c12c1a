package ringcentral

import (
	"net/http"
	"net/http/httptest"
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
		Handshakes: []adaptertest.Handshake{{
			Name: "Validation-Token",
			Request: func(t *testing.T) *http.Request {
				req := httptest.NewRequest(http.MethodPost, "/v1/hooks/rc", nil)
				req.Header.Set("Validation-Token", "6a4d9d1b-2c2f-4b3a-9c7e-0f1e2d3c4b5a")
				return req
			},
			Check: func(t *testing.T, w *httptest.ResponseRecorder) {
				if w.Code != 200 || w.Header().Get("Validation-Token") != "6a4d9d1b-2c2f-4b3a-9c7e-0f1e2d3c4b5a" {
					t.Fatalf("answer %d, Validation-Token %q", w.Code, w.Header().Get("Validation-Token"))
				}
			},
		}},
	})
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
