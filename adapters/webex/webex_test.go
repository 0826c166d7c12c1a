package webex

import (
	"errors"
	"net/http"
	"strings"
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
		InvalidText: []adaptertest.TextCase{
			{Name: "raw byte", Body: []byte(`{"resource":"telephony_calls","actorId":"al` + "\xff" + `ce","data":{"callId":"c","state":"connected"}}`), Field: "actorId"},
			{Name: "lone surrogate", Body: []byte(`{"resource":"telephony_calls","actorId":"alice","data":{"callId":"c\udc00","state":"connected"}}`), Field: "data.callId"},
		},
	})
}

// TestYearOneIsOutOfRange: an eventTimestamp of year 1 is refused as out
// of range, naming it, not reported as a missing occurredAt.
func TestYearOneIsOutOfRange(t *testing.T) {
	a, err := New(adapters.SourceConfig{Name: "webex", Secret: secret, Now: func() time.Time { return adaptertest.Now }})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"resource":"telephony_calls","actorId":"alice","data":{"callId":"c","state":"connected","eventTimestamp":"0001-01-01T00:00:00Z"}}`)
	_, err = a.Decode(request(t, body, adaptertest.Now, true))
	var reqErr *adapters.RequestError
	if !errors.As(err, &reqErr) || reqErr.Status != http.StatusBadRequest || len(reqErr.Fields) != 1 || reqErr.Fields[0].Field != "data.eventTimestamp" || !strings.Contains(reqErr.Fields[0].Problem, "out of range") {
		t.Fatalf("year 1: %v, want 400 naming data.eventTimestamp out of range", err)
	}
}

func FuzzDecode(f *testing.F) {
	a, err := New(adapters.SourceConfig{Name: "webex", Secret: secret, Now: func() time.Time { return adaptertest.Now }})
	if err != nil {
		f.Fatal(err)
	}
	adaptertest.Fuzz(f, a, func(t *testing.T, body []byte) *http.Request { return request(t, body, adaptertest.Now, true) })
}
