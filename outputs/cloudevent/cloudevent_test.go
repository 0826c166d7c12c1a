package cloudevent

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/outputstest"
)

var since = time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)

func change() outputs.Change {
	return outputs.Change{
		ID: outputs.ChangeID("contoso.example", "4ae1f0d6-0000-4000-8000-000000000001", "C0A1"),
		View: outputs.View{
			User: "alice@contoso.example", ID: "4ae1f0d6-0000-4000-8000-000000000001", Tenant: "contoso.example",
			Availability: "Busy", Activity: "InACall", Origin: outputs.OriginBridge, Sources: []string{"pbx"},
			Since: since, SeenAt: since.Add(time.Second), SequenceNumber: "C0A1",
		},
		Previous: &outputs.Pair{Availability: "Available", Activity: "Available"},
	}
}

// TestEncode: the attributes CloudEvents 1.0 requires, with the values the
// issue names, and data = the view plus previous.
func TestEncode(t *testing.T) {
	data, err := Encode(change())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"specversion": "1.0", "id": "contoso.example/4ae1f0d6-0000-4000-8000-000000000001/C0A1",
		"source": "presence-bridge/contoso.example", "type": "presence.teams.changed",
		"time": "2026-11-23T10:00:00.123456789Z", "subject": "4ae1f0d6-0000-4000-8000-000000000001",
		"datacontenttype": "application/json",
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	d, _ := got["data"].(map[string]any)
	for _, k := range []string{"user", "id", "tenant", "availability", "activity", "origin", "sources", "since", "seenAt", "sequenceNumber", "previous"} {
		if _, ok := d[k]; !ok {
			t.Errorf("data has no %s: %v", k, d)
		}
	}
	if p, _ := d["previous"].(map[string]any); p["availability"] != "Available" || p["activity"] != "Available" {
		t.Errorf("previous = %v", d["previous"])
	}
	back, err := Decode(data)
	if err != nil || !outputstest.Equal(back, change()) {
		t.Errorf("decode = %+v, %v", back, err)
	}
}

// TestDecodeRefuses: messages that are not presence changes, or whose
// attributes disagree with their data, are refused with the attribute
// named.
func TestDecodeRefuses(t *testing.T) {
	good, _ := Encode(change())
	edit := func(k string, v any) []byte {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		m[k] = v
		b, _ := json.Marshal(m)
		return b
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"not json", []byte("{"), "cloudevent:"},
		{"trailing", append(good, []byte(" {}")...), "data after the event"},
		{"oversized", []byte(`{"id":"` + strings.Repeat("a", MaxSize) + `"}`), "more than"},
		{"spec 0.3", edit("specversion", "0.3"), "specversion"},
		{"other type", edit("type", "com.example.other"), "type"},
		{"other source", edit("source", "presence-bridge/fabrikam.example"), "source"},
		{"other subject", edit("subject", "someone-else"), "subject"},
		{"xml", edit("datacontenttype", "application/xml"), "datacontenttype"},
		{"time", edit("time", "2020-01-01T00:00:00Z"), "time"},
		{"no id", edit("id", ""), "no id"},
	} {
		if _, err := Decode(c.data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

// FuzzRoundTrip: every change Encode accepts decodes to itself; every one
// it refuses fails Check; nothing panics.
func FuzzRoundTrip(f *testing.F) {
	c := change()
	f.Add(c.ID, c.User, c.View.ID, c.Tenant, c.Availability, c.Activity, c.Origin, "pbx,crm", c.SequenceNumber, since.UnixNano(), true)
	f.Add("x", "", "o.d", "a.b.c", "", "", "teams", "", "1", int64(0), false)
	f.Add("x", "\xff", "o", "t", "", "", "bridge", "", "1", int64(-1), false)
	f.Fuzz(func(t *testing.T, id, user, oid, tenant, availability, activity, origin, sources, seq string, nanos int64, prev bool) {
		in := outputs.Change{ID: id, View: outputs.View{
			User: user, ID: oid, Tenant: tenant, Availability: availability, Activity: activity, Origin: origin,
			Since: time.Unix(0, nanos).UTC(), SeenAt: time.Unix(0, nanos/2), SequenceNumber: seq,
		}}
		if sources != "" {
			in.Sources = strings.Split(sources, ",")
		}
		if prev {
			in.Previous = &outputs.Pair{Availability: activity, Activity: availability}
		}
		data, err := Encode(in)
		if err != nil {
			if in.Check() == nil {
				t.Fatalf("encode refused a valid change: %v", err)
			}
			return
		}
		out, err := Decode(data)
		if err != nil {
			t.Fatalf("decode of an encoded change: %v\n%s", err, data)
		}
		if !outputstest.Equal(in, out) {
			t.Fatalf("round trip:\n in  %+v\n out %+v", in, out)
		}
	})
}

// FuzzDecode: any bytes decode to a valid change or an error, and a
// decoded change encodes and decodes to itself.
func FuzzDecode(f *testing.F) {
	good, _ := Encode(change())
	f.Add(good)
	f.Add([]byte(`{"specversion":"1.0"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Encode(c)
		if err != nil {
			t.Fatalf("decoded change does not encode: %v", err)
		}
		back, err := Decode(again)
		if err != nil || !outputstest.Equal(c, back) {
			t.Fatalf("re-decode: %+v, %v (was %+v)", back, err, c)
		}
	})
}
