package ingest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// TestPostEventsAnswers: what POST /v1/events answers, to the byte, for
// good and bad bodies and content types.
func TestPostEventsAnswers(t *testing.T) {
	const call = `{"id":"e1","source":"demo","type":"call","user":"a@b.c","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active"}`
	var published [][]adapters.Event
	router := NewRouter(Options{
		Publisher: publishFunc(func(_ context.Context, events []adapters.Event) error {
			published = append(published, events)
			return nil
		}),
		Sources: []Source{{Name: "demo", Token: "demo-token"}, {Name: "other", Token: "other-token"}},
		Ready:   func(context.Context) error { return nil },
	})
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		answer      string
	}{
		{"one call", "application/json", call, 202, `{"accepted":1,"ids":["e1"]}`},
		{"with charset", "application/json; charset=utf-8", call, 202, `{"accepted":1,"ids":["e1"]}`},
		{"upper case type", "Application/JSON", call, 202, `{"accepted":1,"ids":["e1"]}`},
		{"batch", "application/json", `{"events":[` + call + `,` + strings.Replace(call, `"e1"`, `"e2"`, 1) + `]}`, 202, `{"accepted":2,"ids":["e1","e2"]}`},
		{"text", "text/plain", call, 415, `{"error":{"code":"unsupported_media_type","message":"Content-Type must be application/json"}}`},
		{"no type", "", call, 415, `{"error":{"code":"unsupported_media_type","message":"Content-Type must be application/json"}}`},
		{"bad type", "application/json;;", call, 415, `{"error":{"code":"unsupported_media_type","message":"Content-Type must be application/json"}}`},
		{"unknown state", "application/json", strings.Replace(call, `"active"`, `"Active"`, 1), 400, `{"error":{"code":"invalid_event","message":"invalid event: state: must be one of ringing active held ended for type call","fields":[{"field":"state","problem":"must be one of ringing active held ended for type call"}]}}`},
		{"id not ASCII", "application/json", strings.Replace(call, `"e1"`, `"é1"`, 1), 400, `{"error":{"code":"invalid_event","message":"invalid event: id: must be printable ASCII","fields":[{"field":"id","problem":"must be printable ASCII"}]}}`},
		{"repeated key", "application/json", strings.Replace(call, `"id":"e1"`, `"id":"e1","id":"e2"`, 1), 400, `{"error":{"code":"invalid_event","message":"invalid event: id: duplicate key","fields":[{"field":"id","problem":"duplicate key"}]}}`},
		{"upper case key", "application/json", strings.Replace(call, `"id"`, `"ID"`, 1), 400, `{"error":{"code":"invalid_event","message":"invalid event: ID: unknown field; id: required","fields":[{"field":"ID","problem":"unknown field"},{"field":"id","problem":"required"}]}}`},
		{"trailing NUL", "application/json", call + "\x00", 400, `{"error":{"code":"invalid_event","message":"invalid event: body: malformed JSON at byte 124","fields":[{"field":"body","problem":"malformed JSON at byte 124"}]}}`},
		{"other source", "application/json", strings.Replace(call, `"demo"`, `"other"`, 1), 403, `{"error":{"code":"wrong_source","message":"the token belongs to source demo but the event names other","fields":[{"field":"source","problem":"not the token's source"}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			published = nil
			req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer demo-token")
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			w := httptest.NewRecorder()
			router.ServeHTTP(w, req)
			if w.Code != tt.status || w.Body.String() != tt.answer {
				t.Fatalf("answer %d %s\nwant   %d %s", w.Code, w.Body, tt.status, tt.answer)
			}
			if stored := len(published) == 1; stored != (tt.status == 202) {
				t.Fatalf("published %v for a %d answer", published, w.Code)
			}
		})
	}
}
