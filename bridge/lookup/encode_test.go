package lookup

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/outputs"
)

// TestAppendViewIsEncodingJSON: the lookup's answer is byte for byte what
// encoding/json makes of the view (as gin's c.JSON answered before).
func TestAppendViewIsEncodingJSON(t *testing.T) {
	base := view(contoso, aliceID, "alice@contoso.example", "100", "Available")
	for _, c := range []struct {
		name   string
		change func(v *outputs.View)
	}{
		{"plain", func(*outputs.View) {}},
		{"sources", func(v *outputs.View) { v.Origin, v.Sources = outputs.OriginBridge, []string{"pbx", "cal"} }},
		{"empty sources", func(v *outputs.View) { v.Sources = []string{} }},
		{"html characters alone", func(v *outputs.View) { v.User = "a<b>&c@contoso.example" }},
		{"control character alone", func(v *outputs.View) { v.SequenceNumber = "1\t2" }},
		{"escaped", func(v *outputs.View) { v.User, v.Activity = `a"b\c<d>&é`+"\x01", "\u2028" }},
		{"zero times", func(v *outputs.View) { v.Since, v.SeenAt = time.Time{}, time.Time{} }},
		{"nanoseconds and a zone", func(v *outputs.View) {
			v.SeenAt = time.Date(2026, 1, 2, 3, 4, 5, 60, time.FixedZone("x", 5*3600+1800))
		}},
		{"year past 9999", func(v *outputs.View) { v.SeenAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := base
			c.change(&v)
			want, _ := json.Marshal(v)
			if got := appendView(nil, v); string(got) != string(want) {
				t.Fatalf("appendView\n %s\nencoding/json\n %s", got, want)
			}
		})
	}
}

// FuzzAppendView: for any strings and times, appendView is encoding/json.
func FuzzAppendView(f *testing.F) {
	f.Add("alice@contoso.example", "Available", "pbx", int64(0), "100")
	f.Add("<&>", "\x00\u2028", "", int64(-1), `"`)
	f.Fuzz(func(t *testing.T, user, activity, source string, nanos int64, seq string) {
		v := view(contoso, aliceID, user, seq, "Busy")
		v.Activity, v.SeenAt = activity, time.Unix(0, nanos).UTC()
		if source != "" {
			v.Sources = []string{source}
		}
		want, _ := json.Marshal(v)
		if got := appendView(nil, v); string(got) != string(want) {
			t.Fatalf("appendView\n %s\nencoding/json\n %s", got, want)
		}
	})
}
