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
