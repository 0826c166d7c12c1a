package webex

import (
	"net/http"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/adaptertest"
)

const secret = "webex-webhook-secret"

func request(t *testing.T, body []byte, _ time.Time, signed bool) *http.Request {
	req := adaptertest.JSONRequest(body)
	if signed {
		req.Header.Set("X-Spark-Signature", Signature(secret, body))
	}
	return req
}

func TestConformance(t *testing.T) {
	adaptertest.Run(t, adaptertest.Suite{
		New:       func(c adapters.SourceConfig) (adapters.Adapter, error) { return New(c) },
		Config:    adapters.SourceConfig{Name: "webex", Secret: secret},
		Request:   request,
		Malformed: []byte(`{"resource":"telephony_calls","actorId":"x","data":{"callId":"c","state":"teleported"}}`),
	})
}

func FuzzDecode(f *testing.F) {
	for _, s := range adaptertest.Seeds(f) {
		f.Add(s)
	}
	a, err := New(adapters.SourceConfig{Name: "webex", Secret: secret, Now: func() time.Time { return adaptertest.Now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := a.Decode(request(t, body, adaptertest.Now, true))
		if err != nil {
			if _, ok := err.(*adapters.RequestError); !ok {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		for _, e := range events {
			if err := e.Validate(""); err != nil {
				t.Fatalf("invalid event %+v: %v", e, err)
			}
		}
	})
}
