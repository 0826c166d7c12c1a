package history

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzEncode: whatever strings an entry carries (the event's fields come
// from senders, details from Graph), it encodes to valid JSON within
// maxEntrySize, or is dropped.
func FuzzEncode(f *testing.F) {
	f.Add("pbx", "ev-1", "active", "graph answered 400", "req-1")
	f.Add(strings.Repeat("<", 300), strings.Repeat("\x00", 300), strings.Repeat("é", 200), strings.Repeat("\"", 5000), "")
	f.Add("\xff\xfe", "a.b.>", "*", strings.Repeat("\u2028", 2000), strings.Repeat("x", 300))
	f.Fuzz(func(t *testing.T, source, id, state, detail, requestID string) {
		e := Entry{At: time.Unix(0, 0), Source: source, ID: id, State: state, Detail: detail, RequestID: requestID, Type: "call", Outcome: "applied",
			Origin: state, Sources: []string{source, id, detail}, SequenceNumber: requestID}
		data, ok := encode(e)
		if !ok {
			return
		}
		if len(data) > maxEntrySize {
			t.Fatalf("%d bytes", len(data))
		}
		var back Entry
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		if len(source) <= 256 && strings.ToValidUTF8(source, "\ufffd") == source && back.Source != source {
			t.Fatalf("short source changed: %q to %q", source, back.Source)
		}
	})
}
