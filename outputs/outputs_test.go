package outputs

import (
	"strings"
	"testing"
)

// TestSkips: skip_sources omitted skips every bridge change, [] skips
// none, a list skips bridge changes made by a named source; teams changes
// pass unless their tenant is left out.
func TestSkips(t *testing.T) {
	pbx := Change{View: View{Tenant: "a", Origin: OriginBridge, Sources: []string{"pbx"}}}
	cal := Change{View: View{Tenant: "a", Origin: OriginBridge, Sources: []string{"calendar"}}}
	teams := Change{View: View{Tenant: "a", Origin: OriginTeams}}
	for _, c := range []struct {
		name   string
		f      Filter
		change Change
		skip   bool
	}{
		{"nil skips a bridge change", Filter{}, pbx, true},
		{"nil passes a teams change", Filter{}, teams, false},
		{"empty passes a bridge change", Filter{SkipSources: []string{}}, pbx, false},
		{"named source skipped", Filter{SkipSources: []string{"pbx"}}, pbx, true},
		{"other source passes", Filter{SkipSources: []string{"pbx"}}, cal, false},
		{"teams passes a named list", Filter{SkipSources: []string{"pbx"}}, teams, false},
		{"other tenant skipped", Filter{Tenants: []string{"b"}, SkipSources: []string{}}, teams, true},
		{"own tenant passes", Filter{Tenants: []string{"a"}}, teams, false},
	} {
		if got := c.f.Skips(c.change); got != c.skip {
			t.Errorf("%s: Skips = %v", c.name, got)
		}
	}
}

// TestCheck: what Publish refuses, named.
func TestCheck(t *testing.T) {
	good := Change{ID: "t/u/1", View: View{ID: "u", Tenant: "t", Origin: OriginTeams, SequenceNumber: "1"}}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		edit func(*Change)
		want string
	}{
		{func(c *Change) { c.ID = "" }, "no id"},
		{func(c *Change) { c.Tenant = "" }, "no tenant"},
		{func(c *Change) { c.View.ID = "" }, "no user id"},
		{func(c *Change) { c.SequenceNumber = "" }, "no sequenceNumber"},
		{func(c *Change) { c.Origin = "pbx" }, "origin"},
		{func(c *Change) { c.Sources = []string{"\xff"} }, "UTF-8"},
		{func(c *Change) { c.Previous = &Pair{Activity: strings.Repeat("x", MaxField+1)} }, "at most"},
	} {
		bad := good
		c.edit(&bad)
		if err := bad.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

// TestApplyPairs: an output limited to some pairs sends those, sends the
// move from a sent pair to an unsent one (or from an unknown one) as
// Available/Available, and nothing while the person stays among unsent
// pairs; a person's own list narrows the output's, and an empty one sends
// nothing about them.
func TestApplyPairs(t *testing.T) {
	dndCalls := []string{"DoNotDisturb/*", "Busy/InACall"}
	at := func(user, avail, act string, prev *Pair) Change {
		return Change{ID: "x", View: View{User: user, ID: "id-" + user, Tenant: "a", Origin: OriginTeams, Availability: avail, Activity: act}, Previous: prev}
	}
	dnd, call, away, meeting := &Pair{"DoNotDisturb", "Presenting"}, &Pair{"Busy", "InACall"}, &Pair{"Away", "Away"}, &Pair{"Busy", "InAMeeting"}
	for _, c := range []struct {
		name   string
		f      Filter
		change Change
		send   bool
		want   Pair // the pair sent
	}{
		{"no pairs sends all", Filter{}, at("ann", "Away", "Away", call), true, Pair{"Away", "Away"}},
		{"dnd sent", Filter{Pairs: dndCalls}, at("ann", "DoNotDisturb", "Presenting", away), true, Pair{"DoNotDisturb", "Presenting"}},
		{"call sent", Filter{Pairs: dndCalls}, at("ann", "Busy", "InACall", nil), true, Pair{"Busy", "InACall"}},
		{"meeting after away not sent", Filter{Pairs: dndCalls}, at("ann", "Busy", "InAMeeting", away), false, Pair{}},
		{"meeting after a call cleared", Filter{Pairs: dndCalls}, at("ann", "Busy", "InAMeeting", call), true, Cleared},
		{"away after dnd cleared", Filter{Pairs: dndCalls}, at("ann", "Away", "Away", dnd), true, Cleared},
		{"first sighting unsent cleared", Filter{Pairs: dndCalls}, at("ann", "Away", "Away", nil), true, Cleared},
		{"wildcard activity", Filter{Pairs: []string{"*/InAMeeting"}}, at("ann", "Busy", "InAMeeting", away), true, Pair{"Busy", "InAMeeting"}},
		{"person narrows", Filter{Pairs: dndCalls, People: map[string][]string{"ann": {"DoNotDisturb/*"}}}, at("Ann", "Busy", "InACall", away), false, Pair{}},
		{"person narrows, dnd passes", Filter{Pairs: dndCalls, People: map[string][]string{"ann": {"DoNotDisturb/*"}}}, at("ann", "DoNotDisturb", "DoNotDisturb", away), true, Pair{"DoNotDisturb", "DoNotDisturb"}},
		{"person by object id", Filter{People: map[string][]string{"id-bob": {"DoNotDisturb/*"}}}, at("bob", "Busy", "InAMeeting", dnd), true, Cleared},
		{"person opted out", Filter{People: map[string][]string{"ann": {}}}, at("ann", "DoNotDisturb", "Presenting", meeting), false, Pair{}},
		{"other person untouched", Filter{People: map[string][]string{"ann": {}}}, at("bob", "Busy", "InAMeeting", nil), true, Pair{"Busy", "InAMeeting"}},
	} {
		got, ok := c.f.Apply(c.change)
		if ok != c.send {
			t.Errorf("%s: sent = %v", c.name, ok)
			continue
		}
		if ok && (Pair{got.Availability, got.Activity}) != c.want {
			t.Errorf("%s: sent %s/%s, want %+v", c.name, got.Availability, got.Activity, c.want)
		}
		if ok && (got.ID != c.change.ID || got.Previous != c.change.Previous) {
			t.Errorf("%s: id or previous changed: %+v", c.name, got)
		}
	}
}

// TestCheckPairPattern: what a pattern may be.
func TestCheckPairPattern(t *testing.T) {
	for pattern, ok := range map[string]bool{
		"DoNotDisturb/*": true, "Busy/InACall": true, "*/*": true, "*/InAMeeting": true,
		"DoNotDisturb": false, "/InACall": false, "Busy/": false, "Busy/In A Call": false,
		"Busy/InACall/x": false, "Do*/x": false, "": false,
	} {
		if err := CheckPairPattern(pattern); (err == nil) != ok {
			t.Errorf("%q: error %v", pattern, err)
		}
	}
}

// FuzzPairPattern: a pattern that passes the check matches the pair it
// names literally and never panics.
func FuzzPairPattern(f *testing.F) {
	for _, s := range []string{"DoNotDisturb/*", "Busy/InACall", "*/x", "a/b/c", "/", "\xff/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		if CheckPairPattern(pattern) != nil {
			return
		}
		a, b, _ := strings.Cut(pattern, "/")
		if !MatchPair(pattern, Pair{a, b}) {
			t.Errorf("%q does not match its own pair", pattern)
		}
	})
}
