package adapters

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const validCall = `{"id":"e1","source":"demo","type":"call","user":"alice@contoso.example","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active"}`

func TestDecodeEventsAccepts(t *testing.T) {
	tests := []struct {
		name string
		body string
		want int
	}{
		{"one call", validCall, 1},
		{"batch", `{"events":[` + validCall + `,` + strings.Replace(validCall, `"e1"`, `"e2"`, 1) + `]}`, 2},
		{"conference held", `{"id":"e1","source":"demo","type":"call","user":"ext:1001","occurredAt":"2026-11-23T10:00:00+01:00","callId":"c1","state":"held","conference":true,"sequence":7}`, 1},
		{"meeting window", `{"id":"m1","source":"cal","type":"meeting","user":"bob@contoso.example","occurredAt":"2026-11-23T10:00:00Z","start":"2026-11-23T11:00:00Z","end":"2026-11-23T12:00:00Z","showAs":"busy"}`, 1},
		{"meeting started", `{"id":"m1","source":"cal","type":"meeting","user":"bob@contoso.example","occurredAt":"2026-11-23T10:00:00Z","state":"started"}`, 1},
		{"meeting resync", `{"id":"r1","source":"cal","type":"meeting","user":"bob@contoso.example","occurredAt":"2026-11-23T10:00:00Z","state":"resync"}`, 1},
		{"presence set", `{"id":"p1","source":"bus","type":"presence","user":"fa8bf3dc-eca7-46b7-bad1-db199b62afc3","occurredAt":"2026-11-23T10:00:00Z","state":"set","availability":"DoNotDisturb","activity":"Presenting","expiresAt":"2026-11-23T11:00:00Z"}`, 1},
		{"presence clear", `{"id":"p2","source":"bus","type":"presence","user":"alice@contoso.example","occurredAt":"2026-11-23T10:00:00Z","state":"clear"}`, 1},
		{"null optional", `{"id":"e1","source":"demo","type":"call","user":"a@b.c","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"ended","expiresAt":null}`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := DecodeEvents([]byte(tt.body))
			if err != nil {
				t.Fatalf("DecodeEvents: %v", err)
			}
			if len(events) != tt.want {
				t.Fatalf("got %d events, want %d", len(events), tt.want)
			}
		})
	}
}

func TestDecodeEventsRejects(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string // the exact error message
	}{
		{"empty", ``, "invalid event: body: empty"},
		{"malformed", `{"id":`, "invalid event: body: malformed JSON at byte 6"},
		{"not an object", `[1,2]`, "invalid event: body: must be a JSON object"},
		{"missing fields", `{"type":"call"}`, "invalid event: callId: required; id: required; occurredAt: required; source: required; state: required for type call (one of ringing active held ended); user: required"},
		{"unknown field", strings.Replace(validCall, `"state"`, `"colour":"red","state"`, 1), "invalid event: colour: unknown field"},
		{"every problem at once", strings.Replace(strings.Replace(validCall, `"state"`, `"colour":"red","state"`, 1), `"active"`, `"dancing"`, 1), "invalid event: colour: unknown field; state: must be one of ringing active held ended for type call"},
		{"unknown type", strings.Replace(validCall, `"type":"call"`, `"type":"fax"`, 1), "invalid event: type: must be one of call meeting presence"},
		{"unknown state", strings.Replace(validCall, `"active"`, `"dancing"`, 1), "invalid event: state: must be one of ringing active held ended for type call"},
		{"bad time", strings.Replace(validCall, `2026-11-23T10:00:00Z`, `yesterday`, 1), "invalid event: occurredAt: must be an RFC 3339 timestamp"},
		{"wrong type", strings.Replace(validCall, `"callId":"c1"`, `"callId":42`, 1), "invalid event: callId: must be a string"},
		{"negative sequence", strings.Replace(validCall, `"state"`, `"sequence":-1,"state"`, 1), "invalid event: sequence: must be at least 0"},
		{"bad source", strings.Replace(validCall, `"demo"`, `"Demo Source"`, 1), "invalid event: source: must be lower-case letters, digits, '-' or '_'"},
		{"long id", strings.Replace(validCall, `"e1"`, `"`+strings.Repeat("x", 257)+`"`, 1), "invalid event: id: longer than 256 characters"},
		{"unsettable pair", `{"id":"p1","source":"bus","type":"presence","user":"a@b.c","occurredAt":"2026-11-23T10:00:00Z","state":"set","availability":"Busy","activity":"InAMeeting"}`, `invalid event: availability: "Busy/InAMeeting" is not a settable pair (one of Available/Available, Busy/InACall, Busy/InAConferenceCall, Away/Away, DoNotDisturb/Presenting)`},
		{"resync with a window", `{"id":"r1","source":"cal","type":"meeting","user":"a@b.c","occurredAt":"2026-11-23T10:00:00Z","state":"resync","start":"2026-11-23T11:00:00Z","end":"2026-11-23T12:00:00Z"}`, "invalid event: state: resync carries no start, end or showAs"},
		{"window backwards", `{"id":"m1","source":"cal","type":"meeting","user":"a@b.c","occurredAt":"2026-11-23T10:00:00Z","start":"2026-11-23T12:00:00Z","end":"2026-11-23T11:00:00Z"}`, "invalid event: end: must be after start"},
		{"empty batch", `{"events":[]}`, "invalid event: events: empty"},
		{"batch beside", `{"events":[` + validCall + `],"extra":1}`, "invalid event: extra: unknown field beside events"},
		{"batch member", `{"events":[` + validCall + `,{"id":"x"}]}`, "invalid event: events[1].occurredAt: required; events[1].source: required; events[1].type: required; events[1].user: required"},
		{"batch of scalars", `{"events":[1]}`, "invalid event: events: must be an array of event objects"},
		{"year 1", strings.Replace(validCall, `2026-11-23T10:00:00Z`, `0001-01-01T00:00:00Z`, 1), "invalid event: occurredAt: out of range (0001-01-01T00:00:00Z is no time an event happened)"},
		{"year 1 in a batch", `{"events":[` + strings.Replace(validCall, `2026-11-23T10:00:00Z`, `0001-01-01T00:00:00Z`, 1) + `]}`, "invalid event: events[0].occurredAt: out of range (0001-01-01T00:00:00Z is no time an event happened)"},
		{"duplicate key", strings.Replace(validCall, `"id":"e1"`, `"id":"e1","id":"e2"`, 1), "invalid event: id: duplicate key"},
		{"duplicate key escaped", strings.Replace(validCall, `"id":"e1"`, `"id":"e1","\u0069d":"e2"`, 1), "invalid event: id: duplicate key"},
		{"duplicate key in another case", strings.Replace(validCall, `"id":"e1"`, `"id":"e1","ID":"e2"`, 1), "invalid event: ID: duplicate key"},
		{"duplicate key last", strings.Replace(validCall, `"state":"active"`, `"state":"active","state":"ended"`, 1), "invalid event: state: duplicate key"},
		{"duplicate key in a batch", `{"events":[` + validCall + `,` + strings.Replace(validCall, `"user"`, `"user":"mallory@contoso.example","user"`, 1) + `]}`, "invalid event: events[1].user: duplicate key"},
		{"duplicate batch", `{"events":[` + validCall + `],"events":[` + validCall + `]}`, "invalid event: events: duplicate key"},
		{"duplicate key nested", strings.Replace(validCall, `"state"`, `"x":{"a":1,"b":[{"c":1,"c":2}]},"state"`, 1), "invalid event: x.b[0].c: duplicate key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEvents([]byte(tt.body))
			var invalid *InvalidError
			if !errors.As(err, &invalid) {
				t.Fatalf("want *InvalidError, got %v", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tt.want)
			}
		})
	}
}

func TestDecodeEventsBatchLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for i := range MaxBatchSize + 1 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(validCall)
	}
	b.WriteString("]}")
	_, err := DecodeEvents([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "more than 500 events") {
		t.Fatalf("want batch limit error, got %v", err)
	}
}

func TestDecodeEventsFields(t *testing.T) {
	events, err := DecodeEvents([]byte(validCall))
	if err != nil {
		t.Fatal(err)
	}
	e := events[0]
	want := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	if e.Key() != "demo:e1" || e.CallID != "c1" || e.State != CallActive || !e.OccurredAt.Equal(want) {
		t.Errorf("decoded %+v", e)
	}
}

// FuzzDecodeEvents checks that no input panics and that whatever decodes
// also validates and survives a JSON round trip.
func FuzzDecodeEvents(f *testing.F) {
	f.Add([]byte(validCall))
	f.Add([]byte(`{"events":[` + validCall + `]}`))
	f.Add([]byte(`{"id":"m1","source":"cal","type":"meeting","user":"a@b.c","occurredAt":"2026-11-23T10:00:00Z","start":"2026-11-23T11:00:00Z","end":"2026-11-23T12:00:00Z","showAs":"busy"}`))
	f.Add([]byte(`{"events":[{"id":null}]}`))
	f.Add([]byte(strings.Replace(validCall, `"c1"`, `"c1\ud800"`, 1)))
	f.Add([]byte(strings.Replace(validCall, "alice", "ali\xffce", 1)))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := DecodeEvents(body)
		if err != nil {
			return
		}
		if key, dup := duplicateByTokens(body); dup {
			t.Fatalf("accepted a body that gives %q twice: %q", key, body)
		}
		for i, e := range events {
			if err := e.Validate(""); err != nil {
				t.Fatalf("event %d decoded but does not validate: %v", i, err)
			}
			if strings.ContainsRune(e.User+e.CallID+e.ID, utf8.RuneError) && !bytes.ContainsRune(body, utf8.RuneError) && !bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
				t.Fatalf("event %d holds a U+FFFD the body did not: %q", i, body)
			}
		}
	})
}

// FuzzDecodeFastPathAgrees: whatever the fast path accepts (where
// DecodeEvents tries it: after the text check), the slow path (duplicate
// keys, then field by field decoding and the validator) accepts too, as
// the very same event.
func FuzzDecodeFastPathAgrees(f *testing.F) {
	for _, seed := range fastPathSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFastPathAgrees(t, body)
	})
}

// fastPathSeeds are bodies at the edges of what the fast path takes.
var fastPathSeeds = []string{
	`{"id":"e1","source":"pbx","type":"call","user":"alice@contoso.example","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active"}`,
	`{"ID":"e1","source":"pbx","type":"call","user":"alice@contoso.example","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active"}`,
	`{"id":"e1","source":"pbx","type":"meeting","user":"a","occurredAt":"2026-11-23T10:00:00Z","start":"2026-11-23T10:00:00Z","end":"2026-11-23T11:00:00Z","showAs":"busy"}`,
	`{"events":[{"id":"e1"}]}`,
	`{"id":"e1","source":"pbx","type":"call","user":"a","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active","x":{"id":1}}`,
	`{"id":"e1","id":"e2","source":"pbx","type":"call","user":"a","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active"}`,
	`{"id":"e1","source":"pbx","type":"call","user":"a","occurredAt":"2026-11-23T10:00:00Z","callId":"*","state":"ended","exceptCalls":["c2","c3"]}`,
	`{"id":"e1","source":"pbx","type":"call","user":"a","occurredAt":"2026-11-23T10:00:00Z","callId":"*","state":"ended","exceptCalls":[]}`,
	`{"id":"e1","source":"pbx","type":"call","user":"a\u00e9\n","occurredAt":"2026-11-23T10:00:00.123456789+05:30","callId":"c1","state":"held","sequence":9223372036854775807,"conference":true}`,
	`{"id":"e1","source":"pbx","type":"call","user":"a","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active","sequence":1e2}`,
	`{"id":"e1","source":"pbx","type":"call","user":"a","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active","sequence":01}`,
	`{"id":"e1","source":"pbx","type":"call","user":"a","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active"} {}`,
	`{"id":"e1","source":"pbx","type":"call","user":"a","occurredAt":"2026-11-23T10:00:00Z","callId":"c1","state":"active",}`,
	"{\"id\":\"e1\",\"source\":\"pbx\",\"type\":\"call\",\"user\":\"a\",\"occurredAt\":\"2026-11-23T10:00:00Z\",\"callId\":\"c1\",\"state\":\"active\"}\x00x",
	`{"id":"e1","source":"pbx","type":"presence","user":"a","occurredAt":"2026-11-23T10:00:00Z","state":"set","availability":"Busy","activity":"InACall","expiresAt":null,"conference":null}`,
	`{"id":"e1","source":"pbx","type":"meeting","user":"a","occurredAt":"2026-11-23T10:00:00Z","calendarEvent":"AAMk=="}`,
}

// checkFastPathAgrees fails t when DecodeEvents' fast path takes body but
// the slow path refuses it or reads another event.
func checkFastPathAgrees(t *testing.T, body []byte) {
	t.Helper()
	body = bytes.TrimSpace(body)
	if len(body) == 0 || JSONTextProblem(body) != nil {
		return // DecodeEvents refuses these before either path
	}
	fast, ok := decodeOne(body)
	if !ok {
		return
	}
	slow, err := decodeSlow(body)
	if err != nil {
		t.Fatalf("the fast path took %q, the slow path refused it: %v", body, err)
	}
	if len(slow) != 1 || !sameEvent(fast, slow[0]) {
		t.Fatalf("the two decodings of %q differ:\n%#v\n%#v", body, fast, slow)
	}
}

// sameEvent reports whether a and b hold the same values, times
// included with their offsets and zone names.
func sameEvent(a, b Event) bool {
	sameTime := func(x, y *time.Time) bool {
		if x == nil || y == nil {
			return x == nil && y == nil
		}
		xn, xo := x.Zone()
		yn, yo := y.Zone()
		return x.Equal(*y) && xn == yn && xo == yo && x.Location().String() == y.Location().String()
	}
	if !sameTime(&a.OccurredAt, &b.OccurredAt) || !sameTime(a.Start, b.Start) || !sameTime(a.End, b.End) || !sameTime(a.ExpiresAt, b.ExpiresAt) {
		return false
	}
	a.OccurredAt, a.Start, a.End, a.ExpiresAt = time.Time{}, nil, nil, nil
	b.OccurredAt, b.Start, b.End, b.ExpiresAt = time.Time{}, nil, nil, nil
	return reflect.DeepEqual(a, b)
}

// FuzzDuplicateKey: DuplicateKey finds a repeated key in valid JSON
// exactly when a walk of encoding/json's tokens does, comparing keys as
// encoding/json matches them to fields (bytes.EqualFold), and names it.
func FuzzDuplicateKey(f *testing.F) {
	f.Add([]byte(validCall))
	f.Add([]byte(`{"id":"a","id":"b"}`))
	f.Add([]byte(`{"id":"a","\u0069D":"b"}`))
	f.Add([]byte(`{"K":1,"\u212a":2}`))
	f.Add([]byte(`{"events":[{"a":1},{"a":1,"b":{"a":[1,{"c":"}","c":2}]}}]}`))
	f.Add([]byte(`[{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"A":18}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p := DuplicateKey(body)
		if !json.Valid(body) {
			return
		}
		key, dup := duplicateByTokens(body)
		if dup != (p != nil) {
			t.Fatalf("DuplicateKey says %v, the token walk says %v (%q) for %q", p, dup, key, body)
		}
		if p != nil && p.Field != key && !strings.HasSuffix(p.Field, "."+key) {
			t.Fatalf("DuplicateKey names %q, the repeated key is %q: %q", p.Field, key, body)
		}
	})
}

// duplicateByTokens walks body's tokens with encoding/json and returns
// the first key an object repeats (equal under bytes.EqualFold).
func duplicateByTokens(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		object, expectKey bool
		keys              []string
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				stack = append(stack, &frame{object: v == '{', expectKey: v == '{'})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].expectKey = true
				}
			}
			continue
		case string:
			if top != nil && top.object && top.expectKey {
				for _, k := range top.keys {
					if bytes.EqualFold([]byte(k), []byte(v)) {
						return v, true
					}
				}
				top.keys = append(top.keys, v)
				top.expectKey = false
				continue
			}
		}
		if top != nil && top.object {
			top.expectKey = true
		}
	}
}

func BenchmarkDecodeEvents(b *testing.B) {
	body := []byte(`{"id":"pbx-1:CA42:3","source":"demo","type":"call","user":"alice@contoso.example","occurredAt":"2026-11-23T10:00:00Z","callId":"CA42","state":"active"}`)
	for b.Loop() {
		if _, err := DecodeEvents(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDuplicateKey(b *testing.B) {
	body := []byte(`{"id":"pbx-1:CA42:3","source":"demo","type":"call","user":"alice@contoso.example","occurredAt":"2026-11-23T10:00:00Z","callId":"CA42","state":"active"}`)
	for b.Loop() {
		if DuplicateKey(body) != nil {
			b.Fatal("a duplicate in a body without one")
		}
	}
}
