package adapters

import (
	"testing"
	"time"
)

func BenchmarkValidate(b *testing.B) {
	e := Event{
		ID: "pbx-1:CA42:3", Source: "demo", Type: TypeCall, User: "alice@contoso.example",
		OccurredAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), CallID: "CA42", State: CallActive,
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Validate(""); err != nil {
			b.Fatal(err)
		}
	}
}
