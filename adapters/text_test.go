package adapters

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestJSONTextProblem(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string // "" for no problem, else "field: problem"
	}{
		{"plain", `{"user":"alice","n":1}`, ""},
		{"real non-ASCII", `{"user":"zoë 日本"}`, ""},
		{"escaped pair", `{"user":"\ud83d\ude00"}`, ""},
		{"escaped backslash then ud800", `{"user":"a\\ud800"}`, ""},
		{"escaped BMP character", `{"user":"caf\u00e9"}`, ""},
		{"not JSON", "{\"user\":\xff", ""},
		{"raw byte", "{\"user\":\"a\xffb\"}", "user: is not valid UTF-8 (byte 10)"},
		{"encoded surrogate", "{\"user\":\"\xed\xa0\x80\"}", "user: is not valid UTF-8 (byte 9)"},
		{"truncated sequence", "{\"callId\":\"\xe2\x82\"}", "callId: is not valid UTF-8 (byte 11)"},
		{"lone high surrogate", `{"callId":"x\ud800"}`, "callId: escapes a lone UTF-16 surrogate (byte 12)"},
		{"lone low surrogate", `{"callId":"\uDC00x"}`, "callId: escapes a lone UTF-16 surrogate (byte 11)"},
		{"high then no low", `{"callId":"\ud800\u0041"}`, "callId: escapes a lone UTF-16 surrogate (byte 11)"},
		{"two highs", `{"callId":"\ud800\ud800"}`, "callId: escapes a lone UTF-16 surrogate (byte 11)"},
		{"nested", `{"payload":{"object":{"call_id":"1","callee":{"name":"\udfff"}}}}`, "payload.object.callee.name: escapes a lone UTF-16 surrogate (byte 54)"},
		{"in an array", `{"events":[{"user":"a"},{"user":"b","callId":"` + "\xff" + `"}]}`, "events[1].callId: is not valid UTF-8 (byte 46)"},
		{"after arrays of scalars", `{"a":[1,true,null,"x"],"b":["` + "\xff" + `"]}`, "b[0]: is not valid UTF-8 (byte 29)"},
		{"a key", "{\"us\xffer\":\"alice\"}", "body: a key is not valid UTF-8 (byte 4)"},
		{"a nested key", "{\"a\":{\"\\udc00\":1}}", "a: a key escapes a lone UTF-16 surrogate (byte 7)"},
		{"top-level string", "\"\xff\"", "body: is not valid UTF-8 (byte 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := JSONTextProblem([]byte(tt.body))
			got := ""
			if p != nil {
				got = p.Error()
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestDecodeEventsRefusesBadText: text that encoding/json would quietly
// turn into U+FFFD is refused, naming the field.
func TestDecodeEventsRefusesBadText(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{"user", strings.Replace(validCall, "alice@", "ali\xffce@", 1), "invalid event: user: is not valid UTF-8 (byte 52)"},
		{"callId", strings.Replace(validCall, `"c1"`, `"c1\ud800"`, 1), "invalid event: callId: escapes a lone UTF-16 surrogate (byte 120)"},
		{"batch", `{"events":[` + validCall + `,` + strings.Replace(validCall, `"c1"`, "\"c\xc3\"", 1) + `]}`, "invalid event: events[1].callId: is not valid UTF-8 (byte 270)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEvents([]byte(tt.body))
			var invalid *InvalidError
			if !errors.As(err, &invalid) || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

// TestValidateRefusesBadText: events built from a vendor's fields are
// checked too.
func TestValidateRefusesBadText(t *testing.T) {
	e := Event{ID: "e1", Source: "demo", Type: TypeCall, User: "ext:\xff", OccurredAt: time.Now(), CallID: "c\xed\xa0\x80", State: CallActive}
	err := e.Validate("")
	if err == nil || err.Error() != "invalid event: user: is not valid UTF-8; callId: is not valid UTF-8" {
		t.Fatalf("got %v", err)
	}
}

func TestCheckFormText(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{"good", "To=%2B15551230001&From=client%3Azo%C3%AB", ""},
		{"escaped byte", "To=%2B1555%FF", "To: is not valid UTF-8"},
		{"raw byte", "From=\xff", "From: is not valid UTF-8"},
		{"encoded surrogate", "ParticipantLabel=%ED%A0%80", "ParticipantLabel: is not valid UTF-8"},
		{"name", "X%FF=1", `"X\xff": parameter name is not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values, _ := url.ParseQuery(tt.query)
			err := CheckFormText(values)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestToken(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"qgg8vlvZRS6UYooatFL8Aw", true},
		{"Validation: Testing client application reachability", true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"tab\there", false},
		{"café", false},
		{"del\x7f", false},
	}
	for _, tt := range tests {
		if got := Token(tt.s, 64); got != tt.want {
			t.Errorf("Token(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

// TestCheckFuture: occurredAt is bounded; a meeting's window and an
// expiry far ahead are not.
func TestCheckFuture(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	later := now.Add(365 * 24 * time.Hour)
	end := later.Add(time.Hour)
	far := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	call := Event{ID: "e", Source: "s", Type: TypeCall, User: "u", CallID: "c", State: CallActive}
	at := func(e Event, t time.Time) Event { e.OccurredAt = t; return e }
	tests := []struct {
		name   string
		events []Event
		skew   time.Duration
		want   string
	}{
		{"now", []Event{at(call, now)}, 0, ""},
		{"within the default skew", []Event{at(call, now.Add(5*time.Minute))}, 0, ""},
		{"past the default skew", []Event{at(call, now.Add(5*time.Minute+time.Second))}, 0, "invalid event: occurredAt: 2026-11-23T10:05:01Z is more than 5m0s ahead of the bridge's clock (2026-11-23T10:00:00Z)"},
		{"year 9999", []Event{at(call, far)}, 0, "invalid event: occurredAt: 9999-12-31T00:00:00Z is more than 5m0s ahead of the bridge's clock (2026-11-23T10:00:00Z)"},
		{"configured skew", []Event{at(call, now.Add(2*time.Minute))}, time.Minute, "invalid event: occurredAt: 2026-11-23T10:02:00Z is more than 1m0s ahead of the bridge's clock (2026-11-23T10:00:00Z)"},
		{"in a batch", []Event{at(call, now), at(call, far)}, 0, "invalid event: events[1].occurredAt: 9999-12-31T00:00:00Z is more than 5m0s ahead of the bridge's clock (2026-11-23T10:00:00Z)"},
		{"meeting a year ahead", []Event{{ID: "m", Source: "s", Type: TypeMeeting, User: "u", OccurredAt: now, Start: &later, End: &end}}, 0, ""},
		{"expiry far ahead", []Event{{ID: "p", Source: "s", Type: TypePresence, User: "u", OccurredAt: now, State: PresenceClear, ExpiresAt: &far}}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFuture(tt.events, now, tt.skew)
			got := ""
			if err != nil {
				got = err.Error()
				var reqErr *RequestError
				if !errors.As(err, &reqErr) || reqErr.Status != 400 || !strings.HasSuffix(reqErr.Fields[0].Field, "occurredAt") {
					t.Fatalf("not a 400 naming occurredAt: %+v", err)
				}
			}
			if got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// FuzzJSONTextProblem checks JSONTextProblem against encoding/json: when
// it finds nothing in valid JSON, decoding must not have invented a U+FFFD
// that the input did not hold.
func FuzzJSONTextProblem(f *testing.F) {
	for _, s := range []string{validCall, `{"a":"\ud83d\ude00"}`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `["\\ud800",{"k":[1,"\udc00"]}]`, `"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p := JSONTextProblem(body)
		if p != nil {
			if p.Field == "" || p.Problem == "" {
				t.Fatalf("problem without a field: %+v", p)
			}
			return
		}
		var v any
		if json.Unmarshal(body, &v) != nil {
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("invalid UTF-8 in valid JSON not found: %q", body)
		}
		if holdsReplacement(v) && !bytes.ContainsRune(body, utf8.RuneError) && !bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
			t.Fatalf("decoding made a U+FFFD that was not found: %q", body)
		}
	})
}

func holdsReplacement(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.ContainsRune(v, utf8.RuneError)
	case []any:
		for _, e := range v {
			if holdsReplacement(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if strings.ContainsRune(k, utf8.RuneError) || holdsReplacement(e) {
				return true
			}
		}
	}
	return false
}
