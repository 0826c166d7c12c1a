package twilio

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/adaptertest"
)

const (
	authToken = "12345"
	publicURL = "https://bridge.example.com/v1/hooks/twilio"
)

// TestDocumentedVector is Twilio's own example signature.
func TestDocumentedVector(t *testing.T) {
	params := url.Values{"Digits": {"1234"}, "CallSid": {"CA1234567890ABCDE"}, "To": {"+18005551212"}, "Caller": {"+14158675309"}, "From": {"+14158675309"}}
	if got := Signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params); got != "RSOYDt4T1cUTdK1PDd93/VVr8B8=" {
		t.Fatalf("signature %s", got)
	}
}

func request(t *testing.T, body []byte, _ time.Time, signed bool) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/v1/hooks/twilio", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signed {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			form = url.Values{}
		}
		req.Header.Set("X-Twilio-Signature", Signature(authToken, publicURL, form))
	}
	return req
}

func TestConformance(t *testing.T) {
	adaptertest.Run(t, adaptertest.Suite{
		New:       func(c adapters.SourceConfig) (adapters.Adapter, error) { return New(c) },
		Config:    adapters.SourceConfig{Name: "twilio", Secret: authToken, PublicURL: publicURL},
		Request:   request,
		Malformed: []byte("CallSid=CA1&CallStatus=exploded&To=%2B1555"),
		MediaType: "application/x-www-form-urlencoded",
		InvalidText: []adaptertest.TextCase{
			{Name: "escaped byte", Body: []byte("CallSid=CA1&CallStatus=ringing&Direction=inbound&To=%2B1555%FF"), Field: "To"},
			{Name: "raw byte", Body: []byte("CallSid=CA1&CallStatus=ringing&Direction=inbound&From=\xff&To=%2B15551230001"), Field: "From"},
			{Name: "encoded surrogate", Body: []byte("CallSid=CA1&StatusCallbackEvent=participant-join&ParticipantLabel=bob%ED%A0%80"), Field: "ParticipantLabel"},
		},
	})
}

// TestURLVariants: Twilio may sign the URL with the default port, and GET
// callbacks carry their parameters in the query.
func TestURLVariants(t *testing.T) {
	a, err := New(adapters.SourceConfig{Name: "twilio", Secret: authToken, PublicURL: publicURL})
	if err != nil {
		t.Fatal(err)
	}
	query := "CallSid=CA1&CallStatus=ringing&Direction=inbound&To=%2B15551230001"
	req := httptest.NewRequest(http.MethodGet, "/v1/hooks/twilio?"+query, nil)
	req.Header.Set("X-Twilio-Signature", Signature(authToken, "https://bridge.example.com:443/v1/hooks/twilio?"+query, nil))
	events, err := a.Decode(req)
	if err != nil || len(events) != 1 || events[0].User != "tel:+15551230001" || events[0].State != "ringing" {
		t.Fatalf("GET with port: %+v %v", events, err)
	}
}

func TestStateOverrides(t *testing.T) {
	if _, err := New(adapters.SourceConfig{Name: "t", Secret: "x", PublicURL: publicURL, States: map[string]string{"ringing": "dancing"}}); err == nil {
		t.Fatal("a bad override was accepted")
	}
	a, err := New(adapters.SourceConfig{Name: "t", Secret: "x", PublicURL: publicURL, States: map[string]string{"ringing": ""}})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("CallSid=CA1&CallStatus=ringing&Direction=inbound&To=%2B15551230001")
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	form, _ := url.ParseQuery(string(body))
	req.Header.Set("X-Twilio-Signature", Signature("x", publicURL, form))
	if events, err := a.Decode(req); err != nil || len(events) != 0 {
		t.Fatalf("ringing mapped to nothing: %+v %v", events, err)
	}
}

func FuzzDecode(f *testing.F) {
	a, err := New(adapters.SourceConfig{Name: "twilio", Secret: authToken, PublicURL: publicURL, Now: func() time.Time { return adaptertest.Now }})
	if err != nil {
		f.Fatal(err)
	}
	adaptertest.Fuzz(f, a, func(t *testing.T, body []byte) *http.Request { return request(t, body, adaptertest.Now, true) })
}
