package state

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// TestCopyStateSharesNothing fills every field of a state, through every
// pointer and map, and checks that copyState's copy encodes the same,
// shares no pointer or map with the original and carries no monotonic
// clock reading. A field added to UserState is filled too, so a copy
// that forgets it fails here.
func TestCopyStateSharesNothing(t *testing.T) {
	var st UserState
	fill(reflect.ValueOf(&st).Elem())
	c := copyState(st)

	want, _ := json.Marshal(st)
	got, _ := json.Marshal(c)
	if string(got) != string(want) {
		t.Fatalf("copy encodes as\n%s\nwant\n%s", got, want)
	}
	original := map[uintptr]string{}
	walk(reflect.ValueOf(st), "state", func(path string, v reflect.Value) {
		original[v.Pointer()] = path
	}, nil)
	walk(reflect.ValueOf(c), "state", func(path string, v reflect.Value) {
		if was, shared := original[v.Pointer()]; shared {
			t.Errorf("%s is shared with the original (%s)", path, was)
		}
	}, func(path string, tm time.Time) {
		if tm != tm.Round(0) {
			t.Errorf("%s keeps a monotonic clock reading", path)
		}
	})
}

// fill sets every field reachable from v to a value that is not zero; a
// time is time.Now(), with its monotonic reading.
func fill(v reflect.Value) {
	if v.Type() == reflect.TypeOf(time.Time{}) {
		v.Set(reflect.ValueOf(time.Now()))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(1)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		key, value := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(key)
		fill(value)
		v.SetMapIndex(key, value)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	default:
		panic(fmt.Sprintf("fill: no value for %s", v.Type()))
	}
}

// walk calls ref for every non-nil pointer, map and slice reachable from
// v, and at for every time.
func walk(v reflect.Value, path string, ref func(string, reflect.Value), at func(string, time.Time)) {
	if v.Type() == reflect.TypeOf(time.Time{}) {
		if at != nil {
			at(path, v.Interface().(time.Time))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				walk(v.Field(i), path+"."+v.Type().Field(i).Name, ref, at)
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			ref(path, v)
			walk(v.Elem(), path, ref, at)
		}
	case reflect.Map:
		if !v.IsNil() {
			ref(path, v)
			for _, k := range v.MapKeys() {
				walk(v.MapIndex(k), path+"["+fmt.Sprint(k)+"]", ref, at)
			}
		}
	case reflect.Slice:
		if !v.IsNil() {
			ref(path, v)
			for i := range v.Len() {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), ref, at)
			}
		}
	}
}

// realClock is the wall clock, with monotonic readings.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// TestRememberedStateAppliesAsStored: a store starting from the states it
// remembers ends, event after event, where a store that reads and decodes
// every state ends, with the wall clock (monotonic readings) and event
// times in another zone; and what it remembers is what the bucket holds.
func TestRememberedStateAppliesAsStored(t *testing.T) {
	ctx := context.Background()
	remembering := openStore(t, Options{Clock: realClock{}})
	reading := openStore(t, Options{Clock: realClock{}})
	zone := time.FixedZone("CET", 3600)
	m := func(min int) time.Time { return time.Now().Add(time.Duration(min) * time.Minute).In(zone) }
	p := func(t time.Time) *time.Time { return &t }
	events := []adapters.Event{
		{ID: "1", Source: "pbx", Type: "call", CallID: "c1", State: "ringing", OccurredAt: m(-3)},
		{ID: "2", Source: "pbx", Type: "call", CallID: "c1", State: "active", OccurredAt: m(-2), Sequence: 2},
		{ID: "3", Source: "cal", Type: "meeting", OccurredAt: m(-2), Start: p(m(-1)), End: p(m(30)), ShowAs: "busy"},
		{ID: "4", Source: "bus", Type: "presence", State: "set", Availability: "Away", Activity: "Away", OccurredAt: m(-1), ExpiresAt: p(m(20))},
		{ID: "5", Source: "pbx", Type: "call", CallID: "c2", State: "active", Conference: true, OccurredAt: m(-1)},
		{ID: "2", Source: "pbx", Type: "call", CallID: "c1", State: "active", OccurredAt: m(-2), Sequence: 2}, // a duplicate
		{ID: "6", Source: "pbx", Type: "call", CallID: "c1", State: "ended", OccurredAt: m(0)},
		{ID: "7", Source: "bus", Type: "presence", State: "clear", OccurredAt: m(0)},
		{ID: "8", Source: "cal", Type: "meeting", State: "ended", OccurredAt: m(0)},
	}
	for i, ev := range events {
		if err := remembering.Apply(ctx, "contoso.example", "u1", ev); err != nil {
			t.Fatal(err)
		}
		reading.recent.drop(UserKey("contoso.example", "u1"))
		if err := reading.Apply(ctx, "contoso.example", "u1", ev); err != nil {
			t.Fatal(err)
		}
		entry, err := remembering.KV().Get(ctx, UserKey("contoso.example", "u1"))
		if err != nil {
			t.Fatal(err)
		}
		remembered, rev, ok := remembering.Recent(entry.Key(), entry.Revision(), nil)
		if !ok || rev != entry.Revision() {
			t.Fatalf("after event %d the store remembers revision %d, not the stored %d", i, rev, entry.Revision())
		}
		if _, newer, ok := remembering.Recent(entry.Key(), entry.Revision()-1, nil); ok || newer != entry.Revision() {
			t.Fatalf("asked for an older revision after event %d: given it %v, told of %d, want none and %d", i, ok, newer, entry.Revision())
		}
		if got, _ := json.Marshal(remembered); string(got) != string(entry.Value()) {
			t.Fatalf("after event %d the store remembers\n%s\nthe bucket holds\n%s", i, got, entry.Value())
		}
		other, err := reading.KV().Get(ctx, UserKey("contoso.example", "u1"))
		if err != nil {
			t.Fatal(err)
		}
		if !sameClaims(t, entry.Value(), other.Value()) {
			t.Fatalf("after event %d, from the remembered state:\n%s\nfrom the stored one:\n%s", i, entry.Value(), other.Value())
		}
	}
}

// sameClaims compares two encoded states but for the times the bridge
// took from its own clock (Updated, SourceSeen), which two stores take a
// moment apart.
func sameClaims(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y UserState
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*UserState{&x, &y} {
		s.SourceSeen = nil
		for _, c := range s.Calls {
			c.Updated = time.Time{}
		}
		for _, c := range s.Meetings {
			c.Updated = time.Time{}
		}
		for _, c := range s.Presence {
			c.Updated = time.Time{}
		}
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

// benchState is a user in one call, as most states are.
func benchState() UserState {
	now := time.Now()
	ev := adapters.Event{ID: "e-123456", Source: "pbx", Type: "call", User: "alice@contoso.example", State: "active", CallID: "c-1", OccurredAt: now}
	return UserState{Tenant: "contoso.example", UserID: "10ad0000-0000-4000-8000-000000000001",
		Calls:      map[string]*CallClaim{"pbx/c-1": {Source: "pbx", State: "active", OccurredAt: now, Updated: now}},
		SourceSeen: map[string]time.Time{"pbx": now},
		Told:       &Told{Pair: inACall, At: now, Expires: now.Add(time.Hour)},
		LastEvent:  &ev}
}

// BenchmarkDecodeState is what an update cost to start before the store
// remembered decoded states: decoding the stored JSON.
func BenchmarkDecodeState(b *testing.B) {
	data, err := json.Marshal(benchState())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := decode(data, "u1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCopyState is what it costs now: a copy of the remembered state.
func BenchmarkCopyState(b *testing.B) {
	st := benchState()
	for b.Loop() {
		_ = copyState(st)
	}
}
