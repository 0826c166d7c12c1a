package state

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestEncodeAsEncodingJSON: encode writes, byte for byte, what
// encoding/json writes of a state (what every bridge wrote so far), and
// each decoding reads what the other writes into the same state: a
// cluster that runs both versions during an upgrade reads each other's
// states. The states are many and varied: every field filled (a field
// added to UserState and not to the encoder fails here), maps and slices
// nil, empty or with nil claims, zero, UTC and other zones' times, and
// strings that need escaping.
func TestEncodeAsEncodingJSON(t *testing.T) {
	var full UserState
	fill(reflect.ValueOf(&full).Elem())
	states := []UserState{{}, full, benchState()}
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var st UserState
		randomFill(reflect.ValueOf(&st).Elem(), r, stringPool, 0)
		states = append(states, st)
	}
	for i, st := range states {
		checkCodec(t, i, st)
	}
}

// checkCodec checks that encode writes what json.Marshal writes of st,
// and that decode and json.Unmarshal read it (and each other's) alike.
func checkCodec(t *testing.T, i int, st UserState) {
	t.Helper()
	got, err := encode(st)
	if err != nil {
		t.Fatalf("state %d: %v", i, err)
	}
	want, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("state %d: encoding/json: %v", i, err)
	}
	if string(got) != string(want) {
		t.Fatalf("state %d encodes as\n%s\nencoding/json:\n%s", i, got, want)
	}
	ours, err := decode(got, "u")
	if err != nil {
		t.Fatalf("state %d: decode: %v\n%s", i, err, got)
	}
	var theirs UserState
	if err := json.Unmarshal(got, &theirs); err != nil {
		t.Fatalf("state %d: encoding/json decoding: %v", i, err)
	}
	if !reflect.DeepEqual(ours, theirs) {
		t.Fatalf("state %d decoded as\n%#v\nencoding/json decodes\n%#v", i, ours, theirs)
	}
	again, err := encode(ours)
	if stdAgain, _ := json.Marshal(theirs); err != nil || string(again) != string(stdAgain) {
		t.Fatalf("state %d decoded encodes as\n%s (%v)\nencoding/json:\n%s", i, again, err, stdAgain)
	}
}

// TestEncodeRefusesWhatEncodingJSONRefuses: a time without an RFC 3339
// form fails encoding, as with encoding/json, rather than being written
// as a state nobody could read.
func TestEncodeRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, at := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)} {
		st := UserState{SourceSeen: map[string]time.Time{"pbx": at}}
		if _, err := json.Marshal(st); err == nil {
			t.Fatalf("encoding/json encodes %v", at)
		}
		if b, err := encode(st); err == nil {
			t.Fatalf("%v encoded as %s", at, b)
		}
	}
}

// TestDecodeRefusesWhatIsNoState: bytes that are no state fail decoding,
// as with encoding/json.
func TestDecodeRefusesWhatIsNoState(t *testing.T) {
	for _, data := range []string{"", "{", `{"tenant":1}`, `{"calls":[]}`, `{"sourceSeen":{"pbx":"yesterday"}}`, `[]`, `{"told":{"at":"2026-13-01T00:00:00Z"}}`} {
		var std UserState
		stdErr := json.Unmarshal([]byte(data), &std)
		if stdErr == nil {
			t.Fatalf("encoding/json decodes %q", data)
		}
		_, err := decode([]byte(data), "u")
		if err == nil {
			t.Errorf("%q decoded as a state", data)
		} else if want := "decode state of u: " + stdErr.Error(); err.Error() != want {
			t.Errorf("%q: error %q, want encoding/json's %q", data, err, want)
		}
	}
}

// FuzzEncodeState: states made of the fuzzer's strings, numbers and
// times encode as encoding/json encodes them and decode (both ways) to
// what was encoded.
func FuzzEncodeState(f *testing.F) {
	f.Add("pbx", "c<1>&\u2028", uint64(1), int64(1765000000), int64(5), int16(60))
	f.Add("\xff\x00\"\\", "é\t\n", uint64(7), int64(-62135596800), int64(0), int16(0))
	f.Fuzz(func(t *testing.T, a, b string, seed uint64, sec, nsec int64, zone int16) {
		at := time.Unix(sec%(300*365*86400), nsec).In(time.FixedZone("z", int(zone)*60))
		if at.Year() < 0 || at.Year() > 9999 {
			t.Skip()
		}
		pool := []string{a, b, "", a + b}
		var st UserState
		randomFill(reflect.ValueOf(&st).Elem(), rand.New(rand.NewPCG(seed, uint64(sec))), pool, 0)
		st.Tenant, st.UserID = a, b
		if st.Told != nil {
			st.Told.At = at
		}
		if st.SourceSeen != nil {
			st.SourceSeen[a] = at
		}
		checkCodec(t, 0, st)
	})
}

// stringPool are strings a state may hold: plain ones and ones JSON
// escapes (HTML characters, controls, quotes, invalid UTF-8, line and
// paragraph separators).
var stringPool = []string{"", "pbx", "contoso.example", "c-1", "<b>&</b>", "\"quoted\" \\", "\x00\x01\x1f\x7f", "\b\f\n\r\t",
	"\xff\xfe", "a\u2028b\u2029", "é日本🙂", "x\xc3", "10ad0000-0000-4000-8000-000000000001", strings.Repeat("y", 300)}

// randomFill sets v to a random value: pointers, maps and slices nil,
// empty or filled (map values nil too), strings from pool or random
// bytes, times zero, UTC, in another zone or with a monotonic reading.
func randomFill(v reflect.Value, r *rand.Rand, pool []string, depth int) {
	if v.Type() == reflect.TypeOf(time.Time{}) {
		v.Set(reflect.ValueOf(randomTime(r)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		if r.IntN(4) == 0 {
			b := make([]byte, r.IntN(12))
			for i := range b {
				b[i] = byte(r.UintN(256))
			}
			v.SetString(string(b))
		} else {
			v.SetString(pool[r.IntN(len(pool))])
		}
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 0)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt([]int64{0, 1, -1, r.Int64(), -r.Int64()}[r.IntN(5)])
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				randomFill(v.Field(i), r, pool, depth+1)
			}
		}
	case reflect.Pointer:
		if r.IntN(3) > 0 {
			v.Set(reflect.New(v.Type().Elem()))
			randomFill(v.Elem(), r, pool, depth+1)
		}
	case reflect.Map:
		switch r.IntN(4) {
		case 0:
			return
		case 1:
			v.Set(reflect.MakeMap(v.Type()))
			return
		}
		v.Set(reflect.MakeMap(v.Type()))
		for range 1 + r.IntN(4) {
			key, value := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			randomFill(key, r, pool, depth+1)
			if value.Kind() != reflect.Pointer || r.IntN(6) > 0 {
				randomFill(value, r, pool, depth+1)
			}
			v.SetMapIndex(key, value)
		}
	case reflect.Slice:
		switch r.IntN(4) {
		case 0:
			return
		case 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 1+r.IntN(3), 3))
		for i := range v.Len() {
			randomFill(v.Index(i), r, pool, depth+1)
		}
	}
}

func randomTime(r *rand.Rand) time.Time {
	switch r.IntN(6) {
	case 0:
		return time.Time{}
	case 1:
		return time.Now()
	case 2:
		return time.Unix(r.Int64N(4e9), 0).UTC()
	}
	at := time.Unix(r.Int64N(1e10)-2e9, r.Int64N(1e9))
	zones := []*time.Location{time.UTC, time.FixedZone("CET", 3600), time.FixedZone("", -(9*3600 + 30*60)), time.FixedZone("odd", 5*3600+45*60+30)}
	return at.In(zones[r.IntN(len(zones))])
}
