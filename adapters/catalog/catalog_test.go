package catalog

import (
	"strings"
	"testing"

	"github.com/presence-bridge/presence-bridge/adapters/caldav"
	"github.com/presence-bridge/presence-bridge/adapters/sipdialog"
)

// TestRunner: each connect-out type builds from its own settings and
// refuses another's; webhook types build no runner.
func TestRunner(t *testing.T) {
	sip := sipdialog.Config{PBX: "127.0.0.1:5060", Listen: "127.0.0.1:0", Entities: []sipdialog.Entity{{Entity: "1001"}}}
	dav := caldav.Config{Calendars: []caldav.Calendar{{User: "alice@contoso.example", URL: "http://127.0.0.1:1/cal/"}}}
	for _, c := range []struct {
		typ      string
		settings any
		err      string
	}{
		{"sipdialog", sip, ""},
		{"caldav", dav, ""},
		{"sipdialog", dav, "sipdialog source s: settings are caldav.Config, not sipdialog.Config"},
		{"caldav", nil, "caldav source s: settings are <nil>, not caldav.Config"},
		{"generic", nil, `no runner for type "generic" (known: [caldav sipdialog])`},
	} {
		r, err := Runner(RunnerConfig{Name: "s", Type: c.typ, Settings: c.settings})
		if err == nil {
			// A sipdialog source watches its one entity, not yet subscribed.
			live, total, ok := Watched(r)
			if want := c.typ == "sipdialog"; ok != want || live != 0 || total != map[bool]int{true: 1}[want] {
				t.Errorf("%s: Watched = %d, %d, %v", c.typ, live, total, ok)
			}
		}
		switch {
		case c.err == "" && (err != nil || r == nil):
			t.Errorf("%s: %v", c.typ, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s with %T: error %v, want %q", c.typ, c.settings, err, c.err)
		}
	}
	if !ConnectsOut("caldav") || !ConnectsOut("sipdialog") || ConnectsOut("generic") {
		t.Error("ConnectsOut is wrong")
	}
	if got := strings.Join(Types(), ","); got != "caldav,generic,graphcalendar,ringcentral,sipdialog,twilio,webex,zoomphone" {
		t.Errorf("Types() = %s", got)
	}
}
