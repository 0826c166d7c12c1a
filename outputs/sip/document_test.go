package sip

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/outputstest"
)

// pidfOf is what a phone reads from a PIDF document.
type pidfOf struct {
	XMLName xml.Name `xml:"urn:ietf:params:xml:ns:pidf presence"`
	Entity  string   `xml:"entity,attr"`
	Basic   string   `xml:"urn:ietf:params:xml:ns:pidf tuple>status>basic"`
	Note    string   `xml:"urn:ietf:params:xml:ns:pidf tuple>note"`
	Person  struct {
		Activities struct {
			Any []struct{ XMLName xml.Name } `xml:",any"`
		} `xml:"urn:ietf:params:xml:ns:pidf:rpid activities"`
	} `xml:"urn:ietf:params:xml:ns:pidf:data-model person"`
	Change string `xml:"urn:x-presence-bridge:teams-change change"`
}

func parsePIDF(t testing.TB, doc []byte) pidfOf {
	t.Helper()
	var p pidfOf
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.Strict = true
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("PIDF does not parse: %v\n%s", err, doc)
	}
	return p
}

func (p pidfOf) activity() string {
	var names []string
	for _, a := range p.Person.Activities.Any {
		names = append(names, a.XMLName.Local)
	}
	return strings.Join(names, ",")
}

// TestMapping: the table of Teams pairs, read back from the documents the
// output builds as a phone reads them.
func TestMapping(t *testing.T) {
	m := NewMapping(nil)
	for _, c := range []struct {
		availability, activity string
		basic, rpid, note      string
		dialog                 bool
	}{
		{"Available", "Available", "open", "", "Available, Available", false},
		{"AvailableIdle", "Available", "open", "", "AvailableIdle, Available", false},
		{"Busy", "InACall", "open", "on-the-phone", "Busy, InACall", true},
		{"Busy", "InAConferenceCall", "open", "on-the-phone", "Busy, InAConferenceCall", true},
		{"Busy", "InAMeeting", "open", "meeting", "Busy, InAMeeting", false},
		{"Busy", "Busy", "open", "busy", "Busy, Busy", false},
		{"DoNotDisturb", "DoNotDisturb", "open", "busy", "Do not disturb", false},
		{"DoNotDisturb", "Presenting", "open", "busy", "Presenting", true},
		{"DoNotDisturb", "Focusing", "open", "busy", "Do not disturb", false},
		{"Away", "Away", "open", "away", "Away, Away", false},
		{"BeRightBack", "BeRightBack", "open", "away", "BeRightBack, BeRightBack", false},
		{"Offline", "OffWork", "closed", "", "Offline, OffWork", false},
		{"PresenceUnknown", "PresenceUnknown", "closed", "", "PresenceUnknown, PresenceUnknown", false},
		{"Sleeping", "Dreaming", "open", "", "Sleeping, Dreaming", false},
	} {
		rule := m.Rule(outputs.Pair{Availability: c.availability, Activity: c.activity})
		p := parsePIDF(t, BuildPIDF(Presence{Entity: "sip:1001@pbx.test", Rule: rule, Note: c.availability + ", " + c.activity}))
		if p.Basic != c.basic || p.activity() != c.rpid || p.Note != c.note || rule.Dialog != c.dialog || p.Entity != "sip:1001@pbx.test" {
			t.Errorf("%s/%s: basic %q activity %q note %q dialog %v, want %q %q %q %v",
				c.availability, c.activity, p.Basic, p.activity(), p.Note, rule.Dialog, c.basic, c.rpid, c.note, c.dialog)
		}
	}
	// An override replaces one row, and an availability row applies to
	// every activity the table does not name.
	m = NewMapping(map[string]Rule{"Busy/InAMeeting": {Basic: "open", Activity: "busy", Dialog: true}, "Away": {Basic: "closed"}})
	if r := m.Rule(outputs.Pair{Availability: "Busy", Activity: "InAMeeting"}); r != (Rule{Basic: "open", Activity: "busy", Dialog: true}) {
		t.Errorf("override %+v", r)
	}
	if r := m.Rule(outputs.Pair{Availability: "Away", Activity: "OutOfOffice"}); r != (Rule{Basic: "closed"}) {
		t.Errorf("availability row %+v", r)
	}
	if r := m.Rule(outputs.Pair{Availability: "Busy", Activity: "InACall"}); r.Activity != "on-the-phone" {
		t.Errorf("default row lost: %+v", r)
	}
}

// TestMappingProblems: every bad row is named with its key.
func TestMappingProblems(t *testing.T) {
	got := strings.Join(mappingProblems(map[string]Rule{
		"Bussy":              {Basic: "open"},
		"Busy/In A Call":     {Basic: "open"},
		"Away":               {Basic: "maybe"},
		"DoNotDisturb":       {Basic: "open", Activity: "dnd"},
		"Offline/OffWork":    {Basic: "closed", Note: strings.Repeat("n", MaxNote+1)},
		"Available/Anything": {Basic: "open", Activity: "on-the-phone"},
	}), "\n")
	for _, want := range []string{
		`mapping.Bussy: "Bussy" is not a Teams availability`,
		`mapping.Busy/In A Call: the activity must be a word of letters`,
		`mapping.Away.basic: must be open or closed (got "maybe")`,
		`mapping.DoNotDisturb.activity: "dnd" is not an RPID activity`,
		`mapping.Offline/OffWork.note: longer than 1024 bytes`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems\n%s\ndo not contain %q", got, want)
		}
	}
	if strings.Contains(got, "Available/Anything") {
		t.Errorf("a good row is reported: %s", got)
	}
}

// TestHostileText: a status note, an entity and a change with XML
// metacharacters, invalid UTF-8 and 10 KB of text make well-formed
// documents that say the same thing, cut to the bounds.
func TestHostileText(t *testing.T) {
	hostile := `</note></tuple><tuple id="x"><status><basic>closed</basic></status>&amp;<![CDATA[` + "\xff\xfe\x00\x1b" + strings.Repeat("é", 5000)
	c := outputstest.Change("contoso.example", "00000000-0000-4000-8000-00000000a11c", 1)
	c.User = `a"<b>&'c`
	for _, compact := range []bool{false, true} {
		doc := BuildPIDF(Presence{Entity: `sip:1001@pbx.test"><x`, Rule: Rule{Basic: "open", Activity: "busy"}, Note: hostile, Change: &c, Compact: compact})
		p := parsePIDF(t, doc)
		limit := MaxNote
		if compact {
			limit = MaxCompactNote
		}
		if p.Basic != "open" || p.activity() != "busy" || len(p.Note) > limit || !utf8.ValidString(p.Note) || !strings.HasPrefix(p.Note, "</note></tuple>") {
			t.Errorf("compact %v: basic %q activity %q note %d bytes %q", compact, p.Basic, p.activity(), len(p.Note), p.Note[:min(40, len(p.Note))])
		}
		if p.Entity != `sip:1001@pbx.test"><x` {
			t.Errorf("entity %q", p.Entity)
		}
		if compact != (p.Change == "") || !compact && !strings.Contains(p.Change, `"user":"a\"\u003cb\u003e\u0026'c"`) {
			t.Errorf("compact %v: change %q", compact, p.Change)
		}
	}
	d := BuildDialogInfo(Dialog{Entity: "sip:1001@pbx.test&<", ID: "teams-\xff<>&", Confirmed: true, Version: 7})
	var info struct {
		Version string `xml:"version,attr"`
		Entity  string `xml:"entity,attr"`
		Dialog  struct {
			ID    string `xml:"id,attr"`
			State string `xml:"state"`
		} `xml:"dialog"`
	}
	if err := xml.Unmarshal(d, &info); err != nil || info.Version != "7" || info.Entity != "sip:1001@pbx.test&<" || info.Dialog.ID != "teams-<>&" || info.Dialog.State != "confirmed" {
		t.Errorf("dialog-info %+v (%v):\n%s", info, err, d)
	}
}

// FuzzBuilders: whatever text goes into a document, it parses back
// (strict XML), within its bounds, with the state it was built with.
func FuzzBuilders(f *testing.F) {
	f.Add("sip:1001@pbx.test", "In a call", "teams-1", "on-the-phone", true)
	f.Add("<&>\"'", "\xff\xfe]]>", "\x00", "x", false)
	f.Add(strings.Repeat("a", 600), strings.Repeat("€", 4000), strings.Repeat("b", 300), "busy", true)
	f.Fuzz(func(t *testing.T, entity, note, id, activity string, open bool) {
		basic := "closed"
		if open {
			basic = "open"
		}
		c := outputstest.Change("contoso.example", "u", 1)
		c.User = note
		for _, compact := range []bool{false, true} {
			p := parsePIDF(t, BuildPIDF(Presence{Entity: entity, Rule: Rule{Basic: basic, Activity: activity}, Note: note, Change: &c, Compact: compact}))
			if p.Basic != basic || len(p.Note) > MaxNote || !utf8.ValidString(p.Note) || len(p.Entity) > maxEntity {
				t.Fatalf("basic %q note %d bytes entity %d bytes", p.Basic, len(p.Note), len(p.Entity))
			}
			if want := activityName(activity); activity != "" && p.activity() != want {
				t.Fatalf("activity %q, want %q", p.activity(), want)
			}
		}
		var info struct {
			Dialog []struct {
				ID    string `xml:"id,attr"`
				State string `xml:"state"`
			} `xml:"dialog"`
		}
		d := BuildDialogInfo(Dialog{Entity: entity, ID: id, Confirmed: open, Version: 1})
		dec := xml.NewDecoder(bytes.NewReader(d))
		dec.Strict = true
		if err := dec.Decode(&info); err != nil {
			t.Fatalf("dialog-info does not parse: %v\n%s", err, d)
		}
		want := "terminated"
		if open {
			want = "confirmed"
		}
		if len(info.Dialog) != 1 || info.Dialog[0].State != want || len(info.Dialog[0].ID) > 128 {
			t.Fatalf("dialogs %+v", info.Dialog)
		}
	})
}
