package adapters

import (
	"encoding/json"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// TestDecodeFastPath: the bodies senders and the bridge itself send take
// the fast path; whatever it must not judge is left to the slow path; and
// either way DecodeEvents answers as the slow path alone does.
func TestDecodeFastPath(t *testing.T) {
	published := func(e Event) string {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	start := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	end := start.Add(time.Hour)
	call := strings.TrimSuffix(validCall, "}")
	tests := []struct {
		name string
		body string
		fast bool
	}{
		{"call", validCall, true},
		{"call with spaces", " {\n\t\"id\" : \"e1\" , \"source\":\"demo\",\"type\":\"call\",\"user\":\"a\",\"occurredAt\":\"2026-11-23T10:00:00Z\",\"callId\":\"c1\",\"state\":\"active\"\r\n} ", true},
		{"published call", published(validEvent()), true},
		{"published meeting window", published(Event{ID: "m1", Source: "cal", Type: TypeMeeting, User: "bob", OccurredAt: start, Start: &start, End: &end, ShowAs: "busy"}), true},
		{"published presence", published(Event{ID: "p1", Source: "bus", Type: TypePresence, User: "bob", OccurredAt: start, State: PresenceSet, Availability: "Busy", Activity: "InACall", ExpiresAt: &end, Sequence: 9}), true},
		{"published every call ended", published(Event{ID: "a1", Source: "pbx", Type: TypeCall, User: "bob", OccurredAt: start, CallID: AllCalls, State: CallEnded, ExceptCalls: []string{"c2", "c3"}, Conference: true}), true},
		{"user given twice, escaped", call + `,"user":"al\u00efce\n\"x\"\/"}`, false},
		{"escaped values", strings.Replace(validCall, `"alice@contoso.example"`, `"al\u00efce\n\"x\"\/\ud83d\ude00"`, 1), true},
		{"time with offset and fraction", strings.Replace(validCall, `2026-11-23T10:00:00Z`, `2026-11-23T10:00:00.123456789+05:30`, 1), true},
		{"largest sequence", call + `,"sequence":9223372036854775807}`, true},
		{"nulls", call + `,"expiresAt":null,"conference":null,"sequence":null,"exceptCalls":null}`, true},
		{"empty except calls", strings.Replace(validCall, `"callId":"c1","state":"active"`, `"callId":"*","state":"ended","exceptCalls":[]`, 1), true},
		{"upper case key", strings.Replace(validCall, `"id"`, `"ID"`, 1), false},
		{"escaped key", strings.Replace(validCall, `"id"`, `"\u0069d"`, 1), false},
		{"repeated key", strings.Replace(validCall, `"id":"e1"`, `"id":"e1","id":"e2"`, 1), false},
		{"unknown key", call + `,"colour":"red"}`, false},
		{"batch", `{"events":[` + validCall + `]}`, false},
		{"trailing NUL", validCall + "\x00", false},
		{"NUL and more", validCall + "\x00{}", false},
		{"trailing object", validCall + `{}`, false},
		{"trailing comma", call + `,}`, false},
		{"control character in a value", strings.Replace(validCall, `"c1"`, "\"c\x01\"", 1), false},
		{"control character between values", strings.Replace(validCall, `,"state"`, "\x01,\"state\"", 1), false},
		{"sequence with exponent", call + `,"sequence":1e2}`, false},
		{"sequence with fraction", call + `,"sequence":1.0}`, false},
		{"sequence with leading zero", call + `,"sequence":01}`, false},
		{"sequence too large", call + `,"sequence":9223372036854775808}`, false},
		{"sequence negative", call + `,"sequence":-1}`, false},
		{"sequence as string", call + `,"sequence":"1"}`, false},
		{"conference as string", call + `,"conference":"true"}`, false},
		{"time without zone", strings.Replace(validCall, `2026-11-23T10:00:00Z`, `2026-11-23T10:00:00`, 1), false},
		{"time with a space", strings.Replace(validCall, `2026-11-23T10:00:00Z`, `2026-11-23 10:00:00Z`, 1), false},
		{"time on no day", strings.Replace(validCall, `2026-11-23T10:00:00Z`, `2026-02-30T10:00:00Z`, 1), false},
		{"time as number", strings.Replace(validCall, `"2026-11-23T10:00:00Z"`, `1795000000`, 1), false},
		{"year 1", strings.Replace(validCall, `2026-11-23T10:00:00Z`, `0001-01-01T00:00:00Z`, 1), false},
		{"call id null", strings.Replace(validCall, `"c1"`, `null`, 1), false},
		{"object in a value", strings.Replace(validCall, `"c1"`, `{"a":1,"a":2}`, 1), false},
		{"list of lists", strings.Replace(validCall, `"callId":"c1","state":"active"`, `"callId":"*","state":"ended","exceptCalls":[["c"]]`, 1), false},
		{"unclosed", strings.TrimSuffix(validCall, "}"), false},
		{"id not ASCII", strings.Replace(validCall, `"e1"`, `"é1"`, 1), false},
		{"state unknown", strings.Replace(validCall, `"active"`, `"Active"`, 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			if _, ok := decodeOne([]byte(strings.TrimSpace(tt.body))); ok != tt.fast {
				t.Errorf("fast path took it: %v, want %v", ok, tt.fast)
			}
			got, gotErr := DecodeEvents(body)
			want, wantErr := decodeSlow([]byte(strings.TrimSpace(tt.body)))
			if errorText(gotErr) != errorText(wantErr) {
				t.Fatalf("DecodeEvents and the slow path differ\n got: %v\nwant: %v", gotErr, wantErr)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d events, the slow path %d", len(got), len(want))
			}
			for i := range got {
				if !sameEvent(got[i], want[i]) {
					t.Errorf("event %d: got %#v, the slow path %#v", i, got[i], want[i])
				}
			}
			if tt.fast && gotErr != nil {
				t.Errorf("refused: %v", gotErr)
			}
		})
	}
}

// TestDecodeFastPathTimes: goccy/go-json reads times as encoding/json
// does, through time.Time's own UnmarshalJSON.
func TestDecodeFastPathTimes(t *testing.T) {
	for _, ts := range []string{"2026-11-23T10:00:00Z", "2026-11-23T10:00:00.5-08:00", "2026-11-23T10:00:00+00:00", "9999-12-31T23:59:59.999999999Z", "0001-01-01T00:00:01Z", "2026-11-23t10:00:00z"} {
		body := strings.Replace(validCall, "2026-11-23T10:00:00Z", ts, 1)
		var want Event
		wantErr := json.Unmarshal([]byte(body), &want)
		fast, ok := decodeOne([]byte(body))
		if ok != (wantErr == nil) {
			t.Errorf("%s: fast path took it: %v; encoding/json: %v", ts, ok, wantErr)
			continue
		}
		if ok && !sameEvent(fast, want) {
			t.Errorf("%s: fast path read %v, encoding/json %v", ts, fast.OccurredAt, want.OccurredAt)
		}
	}
}

// TestOwnStringsKeepsNothingOfTheBody: every string of an event, whatever
// fields it has now or later (found by reflection), gets bytes of its
// own, none of the buffer it was decoded from.
func TestOwnStringsKeepsNothingOfTheBody(t *testing.T) {
	body := strings.Repeat("abcdefgh", 1<<10)
	inBody := func(s string) bool {
		p, lo := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(body)))
		return len(s) > 0 && p >= lo && p < lo+uintptr(len(body))
	}
	var e Event
	v := reflect.ValueOf(&e).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); {
		case f.Kind() == reflect.String:
			f.SetString(body[i : i+3])
		case f.Type() == reflect.TypeOf([]string(nil)):
			f.Set(reflect.ValueOf([]string{body[i : i+4], body[i+1 : i+6]}))
		}
	}
	want := e
	want.ExceptCalls = slices.Clone(e.ExceptCalls)
	e.ownStrings()
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("ownStrings changed the event:\n%+v\nwant\n%+v", e, want)
	}
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case f.Kind() == reflect.String && inBody(f.String()):
			t.Errorf("%s still shares the body's bytes", v.Type().Field(i).Name)
		case f.Type() == reflect.TypeOf([]string(nil)):
			for _, s := range f.Interface().([]string) {
				if inBody(s) {
					t.Errorf("%s still shares the body's bytes", v.Type().Field(i).Name)
				}
			}
		}
	}
}

// TestPaddedEventsKeepNoBody: events decoded from bodies padded to 64 KiB
// of spaces keep about their own size, not their bodies.
func TestPaddedEventsKeepNoBody(t *testing.T) {
	body := []byte(strings.Replace(validCall, "{", "{"+strings.Repeat(" ", 64<<10), 1))
	const n = 200
	kept := make([][]Event, 0, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		events, err := DecodeEvents(body)
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, events)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > n*4<<10 {
		t.Errorf("%d decoded events keep %d bytes, %d each; their bodies were %d bytes", n, grown, grown/n, len(body))
	}
	runtime.KeepAlive(kept)
}
