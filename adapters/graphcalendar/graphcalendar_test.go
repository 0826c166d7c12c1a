package graphcalendar

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/adaptertest"
)

const clientState = "calendar-client-state"

func request(t *testing.T, body []byte, _ time.Time, signed bool) *http.Request {
	if !signed {
		body = []byte(`{"value":[{"changeType":"created","resource":"Users/u/Events/e","clientState":"guess"}]}`)
	}
	return adaptertest.JSONRequest(body)
}

func TestConformance(t *testing.T) {
	adaptertest.Run(t, adaptertest.Suite{
		New:       func(c adapters.SourceConfig) (adapters.Adapter, error) { return New(c) },
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

// TestDecodeQueuesAReadNotAWindow: a created or updated event becomes a
// meeting naming the event to read, each notification with its own id; a
// deleted one ends the meeting at once.
func TestDecodeQueuesAReadNotAWindow(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	a, _ := New(adapters.SourceConfig{Name: "calendar", Secret: clientState, Now: func() time.Time { return now }})
	decode := func(change string) adapters.Event {
		t.Helper()
		body := []byte(`{"value":[{"changeType":"` + change + `","resource":"Users/u1/Events/e1","clientState":"calendar-client-state"}]}`)
		events, err := a.Decode(adaptertest.JSONRequest(body))
		if err != nil || len(events) != 1 {
			t.Fatalf("%s: %v, %v", change, events, err)
		}
		return events[0]
	}
	first := decode("updated")
	want := adapters.Event{ID: first.ID, Source: "calendar", Type: adapters.TypeMeeting, User: "u1", OccurredAt: now, CalendarEvent: "e1"}
	if !reflect.DeepEqual(first, want) || !strings.HasPrefix(first.ID, "graph-event:e1:read-") {
		t.Fatalf("updated: %+v", first)
	}
	now = now.Add(time.Millisecond)
	if again := decode("updated"); again.ID == first.ID {
		t.Fatalf("a later notification of the same event has the same id %s: JetStream would drop it", again.ID)
	}
	ended := decode("deleted")
	if ended.State != adapters.MeetingEnded || ended.CalendarEvent != "" || ended.ID != "graph-event:e1:ended" {
		t.Fatalf("deleted: %+v", ended)
	}
}

// TestScheduled: what the apply stage makes of the event it read.
func TestScheduled(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	ref := adapters.Event{ID: "graph-event:e1:read-x", Source: "calendar", Type: adapters.TypeMeeting, User: "u1", OccurredAt: at, CalendarEvent: "e1"}
	start, end := at.Add(time.Hour), at.Add(2*time.Hour)
	berlin := time.FixedZone("CET", 3600)
	for _, c := range []struct {
		name string
		m    Meeting
		want adapters.Event
		err  string
	}{
		{"window", Meeting{Start: start.In(berlin), End: end, ShowAs: "busy"},
			adapters.Event{ID: "graph-event:e1:aff60b61c78f9c9e", Source: "calendar", Type: adapters.TypeMeeting, User: "u1", OccurredAt: at, Start: &start, End: &end, ShowAs: "busy"}, ""},
		{"unknown showAs", Meeting{Start: start, End: end, ShowAs: "elsewhere"},
			adapters.Event{ID: "graph-event:e1:b684f15202f5c3ae", Source: "calendar", Type: adapters.TypeMeeting, User: "u1", OccurredAt: at, Start: &start, End: &end, ShowAs: "unknown"}, ""},
		{"cancelled", Meeting{Start: start, End: end, ShowAs: "busy", IsCancelled: true},
			adapters.Event{ID: "graph-event:e1:ended", Source: "calendar", Type: adapters.TypeMeeting, User: "u1", OccurredAt: at, State: adapters.MeetingEnded}, ""},
		{"backwards", Meeting{Start: end, End: start}, adapters.Event{}, "calendar event e1 ends before it starts"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Scheduled(ref, c.m)
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) || got.Validate("") != nil {
				t.Fatalf("got %+v, %v\nwant %+v", got, err, c.want)
			}
		})
	}
}

// TestDecodingNeverCallsGraph: the adapter does not even link a Graph
// client (go list -deps).
func TestDecodingNeverCallsGraph(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasSuffix(dep, "/graphclient") || strings.Contains(dep, "/graphclient/") {
			t.Fatalf("graphcalendar depends on %s", dep)
		}
	}
}

func FuzzDecode(f *testing.F) {
	a, err := New(adapters.SourceConfig{Name: "calendar", Secret: clientState, Now: func() time.Time { return adaptertest.Now }})
	if err != nil {
		f.Fatal(err)
	}
	adaptertest.Fuzz(f, a, func(t *testing.T, body []byte) *http.Request { return adaptertest.JSONRequest(body) })
}

func TestLifecycleNotificationsGoToTheHook(t *testing.T) {
	a, _ := New(adapters.SourceConfig{Name: "calendar", Secret: clientState})
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
