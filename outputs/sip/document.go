package sip

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/presence-bridge/presence-bridge/outputs"
)

// Limits on what the documents carry, whatever Teams or the configuration
// say.
const (
	// MaxNote bounds a note in bytes.
	MaxNote = 1024
	// MaxCompactNote bounds a note in a compact document, which must fit
	// with the request in one UDP datagram (RFC 3261: 1300 bytes).
	MaxCompactNote = 160
	// maxEntity bounds an entity URI in bytes.
	maxEntity = 512
)

// Namespaces of the documents.
const (
	nsPIDF       = "urn:ietf:params:xml:ns:pidf"
	nsDataModel  = "urn:ietf:params:xml:ns:pidf:data-model"
	nsRPID       = "urn:ietf:params:xml:ns:pidf:rpid"
	nsDialogInfo = "urn:ietf:params:xml:ns:dialog-info"
	// NSChange is the namespace of the element that carries the whole
	// change (JSON, as the nats output's data) for applications that
	// want more than the status: <pb:change xmlns:pb="...">.
	NSChange = "urn:x-presence-bridge:teams-change"
)

// Content types of the bodies.
const (
	ContentTypePIDF       = "application/pidf+xml"
	ContentTypeDialogInfo = "application/dialog-info+xml"
)

// clean makes s safe to put in an XML document: invalid UTF-8 and
// characters XML 1.0 does not allow are dropped, and it is cut, at a
// character boundary, to at most limit bytes.
func clean(s string, limit int) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF {
			return r
		}
		return -1
	}, s)
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// escape writes s, cleaned and cut to limit, as XML character data or an
// attribute value.
func escape(b *bytes.Buffer, s string, limit int) {
	_ = xml.EscapeText(b, []byte(clean(s, limit)))
}

// Presence is what a PIDF document says about one entity.
type Presence struct {
	// Entity is the presentity's URI.
	Entity string
	Rule   Rule
	// Note is the note when the rule has none.
	Note string
	// Change, when set, is carried whole in a <pb:change> element,
	// unless Compact.
	Change *outputs.Change
	// Compact leaves the change out and cuts the note to MaxCompactNote,
	// so that the request fits in a UDP datagram.
	Compact bool
}

// BuildPIDF returns the PIDF document (RFC 3863) of p, with its RPID
// activity (RFC 4480) in a data-model person element (RFC 4479).
func BuildPIDF(p Presence) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<presence xmlns="` + nsPIDF + `" xmlns:dm="` + nsDataModel + `" xmlns:rpid="` + nsRPID + `" xmlns:pb="` + NSChange + `" entity="`)
	escape(&b, p.Entity, maxEntity)
	b.WriteString(`">`)
	basic := "open"
	if p.Rule.Basic == "closed" {
		basic = "closed"
	}
	note := p.Rule.Note
	if note == "" {
		note = p.Note
	}
	limit := MaxNote
	if p.Compact {
		limit = MaxCompactNote
	}
	note = clean(note, limit)
	b.WriteString(`<tuple id="teams"><status><basic>` + basic + `</basic></status>`)
	if note != "" {
		b.WriteString(`<note>`)
		escape(&b, note, MaxNote)
		b.WriteString(`</note>`)
	}
	b.WriteString(`</tuple><dm:person id="teams-person">`)
	if p.Rule.Activity != "" {
		b.WriteString(`<rpid:activities><rpid:`)
		escape(&b, activityName(p.Rule.Activity), 64)
		b.WriteString(`/></rpid:activities>`)
	}
	if note != "" {
		b.WriteString(`<dm:note>`)
		escape(&b, note, MaxNote)
		b.WriteString(`</dm:note>`)
	}
	b.WriteString(`</dm:person>`)
	if p.Change != nil && !p.Compact {
		data, err := json.Marshal(struct {
			ID string `json:"changeId"`
			*outputs.Change
		}{p.Change.ID, p.Change})
		if err == nil {
			b.WriteString(`<pb:change>`)
			// A Check'ed change is bounded (outputs.MaxField per field);
			// the cut only guards against a caller that did not check.
			escape(&b, string(data), 64<<10)
			b.WriteString(`</pb:change>`)
		}
	}
	b.WriteString("</presence>\n")
	return b.Bytes()
}

// activityName keeps an activity usable as an element name: a known RPID
// activity, else "unknown".
func activityName(a string) string {
	for _, known := range activities {
		if a == known {
			return a
		}
	}
	return "unknown"
}

// Dialog is what a dialog-info document says about one entity: one dialog
// of the bridge's, confirmed or terminated.
type Dialog struct {
	Entity string
	// ID is the dialog's id; it starts with sipua.DialogPrefix.
	ID string
	// Confirmed is true while the Teams call lasts, false once it ended.
	Confirmed bool
	// Version numbers the documents of one entity.
	Version uint64
}

// BuildDialogInfo returns the dialog-info document (RFC 4235) of d, in
// full state.
func BuildDialogInfo(d Dialog) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<dialog-info xmlns="` + nsDialogInfo + `" version="` + strconv.FormatUint(d.Version, 10) + `" state="full" entity="`)
	escape(&b, d.Entity, maxEntity)
	b.WriteString(`"><dialog id="`)
	escape(&b, d.ID, 128)
	b.WriteString(`" direction="recipient"><state>`)
	if d.Confirmed {
		b.WriteString("confirmed")
	} else {
		b.WriteString("terminated")
	}
	b.WriteString("</state></dialog></dialog-info>\n")
	return b.Bytes()
}
