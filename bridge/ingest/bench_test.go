package ingest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// BenchmarkPostEvent is one call event posted to /v1/events, from the
// request to the 202 (the publisher stores nothing).
func BenchmarkPostEvent(b *testing.B) {
	router := NewRouter(Options{
		Publisher: publishFunc(func(context.Context, []adapters.Event) error { return nil }),
		Sources:   []Source{{Name: "demo", Token: "demo-token"}},
		Ready:     func(context.Context) error { return nil },
	})
	const body = `{"id":"pbx-1:CA42:3","source":"demo","type":"call","user":"alice@contoso.example","occurredAt":"2026-11-23T10:00:00Z","callId":"CA42","state":"active"}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer demo-token")
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		router.ServeHTTP(w, req)
		if w.Code != http.StatusAccepted {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
