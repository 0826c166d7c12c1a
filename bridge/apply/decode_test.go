package apply

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
)

// publishedCall is a call event as the bridge publishes it (json.Marshal
// of the canonical event).
func publishedCall(tb testing.TB) []byte {
	tb.Helper()
	data, err := json.Marshal(adapters.Event{
		ID: "pbx-1:CA42:3", Source: "demo", Type: adapters.TypeCall, User: "alice@contoso.example",
		OccurredAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), CallID: "CA42", State: adapters.CallActive,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// TestStreamMessagesDecoded: an event the bridge published is applied as
// it was published; a stream message that is no valid event is
// dead-lettered with the problem named, never applied and never a panic.
func TestStreamMessagesDecoded(t *testing.T) {
	good := publishedCall(t)
	tests := []struct {
		name   string
		data   string
		reason string // in the dead letter; "" when applied
	}{
		{"published", string(good), ""},
		{"published with an offset", strings.Replace(string(good), "10:00:00Z", "10:00:00.5+01:00", 1), ""},
		{"empty", "", "body: empty"},
		{"not JSON", "garbage", "body: malformed JSON"},
		{"cut short", string(good[:len(good)-1]), "body: malformed JSON"},
		{"trailing NUL", string(good) + "\x00", "body: malformed JSON"},
		{"trailing object", string(good) + "{}", "body: malformed JSON"},
		{"repeated key", strings.Replace(string(good), `"id":`, `"id":"x","id":`, 1), "id: duplicate key"},
		{"upper case key", strings.Replace(string(good), `"id":`, `"ID":`, 1), "ID: unknown field"},
		{"unknown key", strings.Replace(string(good), `"id":`, `"colour":"red","id":`, 1), "colour: unknown field"},
		{"invalid event", strings.Replace(string(good), `"active"`, `"dancing"`, 1), "state: must be one of ringing active held ended for type call"},
		{"not UTF-8", strings.Replace(string(good), "alice", "ali\xffce", 1), "user: is not valid UTF-8"},
		{"two events", `{"events":[` + string(good) + `,` + string(good) + `]}`, "a bus message carries one event, not 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var letters []eventlog.DeadLetter
			w, applied := testWorker(t, Options{DeadLetters: deadLetterFunc(func(_ context.Context, d eventlog.DeadLetter) error {
				mu.Lock()
				defer mu.Unlock()
				letters = append(letters, d)
				return nil
			})}, nil)
			msg := &fakeMsg{delivered: 1, data: []byte(tt.data)}
			w.Handle(msg)
			settled, _, _ := msg.state()
			mu.Lock()
			defer mu.Unlock()
			if tt.reason == "" {
				if settled != "ack" || len(letters) != 0 || len(applied("alice@contoso.example")) != 1 {
					t.Fatalf("settled %q, dead letters %v, applied %v; want it applied and acked", settled, letters, applied("alice@contoso.example"))
				}
				return
			}
			if settled != "term" || len(letters) != 1 || !strings.Contains(letters[0].Reason, tt.reason) {
				t.Fatalf("settled %q, dead letters %+v; want one naming %q", settled, letters, tt.reason)
			}
			if got := applied("alice@contoso.example"); len(got) != 0 {
				t.Fatalf("applied %v", got)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	data := publishedCall(b)
	b.ReportAllocs()
	for b.Loop() {
		if d := decode(data); d.err != nil || len(d.events) != 1 {
			b.Fatalf("decode: %v", d.err)
		}
	}
}
