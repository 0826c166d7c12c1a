package ingest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// publishFunc is a Publisher made of a function.
type publishFunc func(ctx context.Context, events []adapters.Event) error

func (f publishFunc) Publish(ctx context.Context, events []adapters.Event) error {
	return f(ctx, events)
}

// TestDownAnswersAtOnce: while Down reports the connection lost, events
// are answered 503 with Retry-After and a JSON error, and never offered
// to the publisher; once it reports nothing, they are published again.
func TestDownAnswersAtOnce(t *testing.T) {
	var down error = errors.New("the NATS connection is lost (RECONNECTING); reconnecting")
	published := 0
	router := NewRouter(Options{
		Publisher: publishFunc(func(context.Context, []adapters.Event) error { published++; return nil }),
		Sources:   []Source{{Name: "demo", Token: "demo-token"}},
		Ready:     func(context.Context) error { return nil },
		Down:      func() error { return down },
	})
	post := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(`{"id":"e1","source":"demo","type":"call","user":"a@b.c","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active"}`))
		req.Header.Set("Authorization", "Bearer demo-token")
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		router.ServeHTTP(w, req)
		return w
	}
	w := post()
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), `"code":"queue_unavailable"`) || published != 0 {
		t.Fatalf("while down: %d %v %s after %d publishes, want 503 with Retry-After and nothing published", w.Code, w.Header(), w.Body, published)
	}
	down = nil
	if w := post(); w.Code != http.StatusAccepted || published != 1 {
		t.Fatalf("once back: %d %s after %d publishes", w.Code, w.Body, published)
	}
}
