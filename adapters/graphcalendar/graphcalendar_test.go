package graphcalendar

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/adaptertest"
)

const clientState = "calendar-client-state"

// fetchFunc is a function-type Fetcher.
type fetchFunc func(userID, eventID string) (Meeting, error)

func (f fetchFunc) FetchEvent(_ context.Context, userID, eventID string) (Meeting, error) {
	return f(userID, eventID)
}

var calendar = fetchFunc(func(_, eventID string) (Meeting, error) {
	switch eventID {
	case "AAMkAGUwNjQ4ZjIxAAA=":
		return Meeting{ID: eventID, Start: time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), ShowAs: "busy"}, nil
	case "AAMkCancelled=":
		return Meeting{ID: eventID, Start: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), ShowAs: "busy", IsCancelled: true}, nil
	}
	return Meeting{}, ErrEventNotFound
})

func request(t *testing.T, body []byte, _ time.Time, signed bool) *http.Request {
	if !signed {
		body = []byte(`{"value":[{"changeType":"created","resource":"Users/u/Events/e","clientState":"guess"}]}`)
	}
	return adaptertest.JSONRequest(body)
}

func TestConformance(t *testing.T) {
	adaptertest.Run(t, adaptertest.Suite{
		New:       func(c adapters.SourceConfig) (adapters.Adapter, error) { return New(c, calendar) },
		Config:    adapters.SourceConfig{Name: "calendar", Secret: clientState},
		Request:   request,
		TokenOnly: true,
		Malformed: []byte(`{"value":[{"changeType":"created","resource":"Groups/x","clientState":"calendar-client-state"}]}`),
		InvalidText: []adaptertest.TextCase{
			{Name: "raw byte", Body: []byte(`{"value":[{"changeType":"deleted","resource":"Users/u` + "\xff" + `/Events/e","clientState":"calendar-client-state"}]}`), Field: "value[0].resource"},
			{Name: "lone surrogate", Body: []byte(`{"value":[{"changeType":"deleted","resource":"Users/u/Events/e\ud800","clientState":"calendar-client-state"}]}`), Field: "value[0].resource"},
		},
		Handshakes: []adaptertest.Handshake{{
			Name: "validationToken",
			Request: func(t *testing.T, _ time.Time, _ bool) *http.Request {
				return validation(http.MethodPost, "validationToken=Validation%3A+Testing+client+application")
			},
			Unproven: "Graph sends the validationToken before the subscription exists, without clientState or signature",
			Unsafe: []func(t *testing.T) *http.Request{
				func(t *testing.T) *http.Request {
					return validation(http.MethodPost, "validationToken="+strings.Repeat("a", 513))
				},
				func(t *testing.T) *http.Request {
					return validation(http.MethodPost, "validationToken=a%0D%0ASet-Cookie:+x")
				},
				func(t *testing.T) *http.Request {
					return validation(http.MethodPost, "validationToken=%3Cscript%3Ealert(1)%3C/script%3E")
				},
				func(t *testing.T) *http.Request { return validation(http.MethodPost, "validationToken=caf%C3%A9") },
				func(t *testing.T) *http.Request {
					return validation(http.MethodPost, "validationToken=a&validationToken=b")
				},
				func(t *testing.T) *http.Request { return validation(http.MethodGet, "validationToken=hello") },
			},
			Check: func(t *testing.T, w *httptest.ResponseRecorder) {
				if w.Code != 200 || w.Header().Get("Content-Type") != "text/plain; charset=utf-8" || w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Body.String() != "Validation: Testing client application" {
					t.Fatalf("answer %d %v %q", w.Code, w.Header(), w.Body)
				}
			},
		}},
	})
}

// validation is Graph's validation request for a new subscription.
func validation(method, query string) *http.Request {
	return httptest.NewRequest(method, "/v1/hooks/calendar?"+query, nil)
}

func TestFetchFailureAsksGraphToRetry(t *testing.T) {
	a, _ := New(adapters.SourceConfig{Name: "calendar", Secret: clientState}, fetchFunc(func(string, string) (Meeting, error) {
		return Meeting{}, errors.New("graph down")
	}))
	body := []byte(`{"value":[{"changeType":"updated","resource":"Users/u1/Events/e1","clientState":"calendar-client-state"}]}`)
	_, err := a.Decode(adaptertest.JSONRequest(body))
	var re *adapters.RequestError
	if !errors.As(err, &re) || re.Status != http.StatusServiceUnavailable {
		t.Fatalf("want 503, got %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	a, err := New(adapters.SourceConfig{Name: "calendar", Secret: clientState, Now: func() time.Time { return adaptertest.Now }}, calendar)
	if err != nil {
		f.Fatal(err)
	}
	adaptertest.Fuzz(f, a, func(t *testing.T, body []byte) *http.Request { return adaptertest.JSONRequest(body) })
}

func TestLifecycleNotificationsGoToTheHook(t *testing.T) {
	a, _ := New(adapters.SourceConfig{Name: "calendar", Secret: clientState}, calendar)
	var got []Lifecycle
	a.OnLifecycle(func(source string, n Lifecycle) {
		if source != "calendar" {
			t.Errorf("source %q", source)
		}
		got = append(got, n)
	})
	body := []byte(`{"value":[{"subscriptionId":"sub-1","subscriptionExpirationDateTime":"2026-11-23T11:00:00Z","tenantId":"t","clientState":"calendar-client-state","lifecycleEvent":"subscriptionRemoved"}]}`)
	events, err := a.Decode(adaptertest.JSONRequest(body))
	if err != nil || len(events) != 0 || len(got) != 1 || got[0] != (Lifecycle{SubscriptionID: "sub-1", Event: "subscriptionRemoved"}) {
		t.Fatalf("events %v, err %v, hook got %v", events, err, got)
	}
	forged := []byte(`{"value":[{"subscriptionId":"sub-1","clientState":"guess","lifecycleEvent":"subscriptionRemoved"}]}`)
	var re *adapters.RequestError
	if _, err := a.Decode(adaptertest.JSONRequest(forged)); !errors.As(err, &re) || re.Status != http.StatusUnauthorized || len(got) != 1 {
		t.Fatalf("forged lifecycle notification: %v, hook got %v", err, got)
	}
}
