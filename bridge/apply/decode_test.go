package apply

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
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

func BenchmarkDecode(b *testing.B) {
	data := publishedCall(b)
	b.ReportAllocs()
	for b.Loop() {
		if d := decode(data); d.err != nil || len(d.events) != 1 {
			b.Fatalf("decode: %v", d.err)
		}
	}
}
