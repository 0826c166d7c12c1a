package sipdialog

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits on what a PBX may send in one dialog-info document.
const (
	// MaxDocumentSize bounds a dialog-info body in bytes.
	MaxDocumentSize = 64 << 10
	// MaxDialogs bounds the dialogs of one entity, in one document and in
	// what the source tracks for it.
	MaxDialogs = 64
	// maxAttr bounds an identifier taken from a document (id, call-id,
	// tags, entity, identities).
	maxAttr = 512
)

// Dialog states defined by RFC 4235.
const (
	StateTrying     = "trying"
	StateProceeding = "proceeding"
	StateEarly      = "early"
	StateConfirmed  = "confirmed"
	StateTerminated = "terminated"
)

// DialogInfo is one parsed dialog-info document (RFC 4235).
type DialogInfo struct {
	// Version orders the documents of one subscription.
	Version uint64
	// Full reports state="full": the document lists every dialog of the
	// entity. Otherwise it is partial and lists only changed dialogs.
	Full bool
	// Entity is the URI the document is about.
	Entity string
	// Dialogs are the dialogs the document lists.
	Dialogs []Dialog
}

// Dialog is one <dialog> element.
type Dialog struct {
	ID        string
	CallID    string
	LocalTag  string
	RemoteTag string
	// Direction is initiator, recipient or empty.
	Direction string
	// State is one of the RFC 4235 states, lower-case.
	State string
	// Local and Remote are the parties' identities, when given.
	Local  string
	Remote string
}

type xmlDialogInfo struct {
	XMLName xml.Name    `xml:"dialog-info"`
	Version string      `xml:"version,attr"`
	State   string      `xml:"state,attr"`
	Entity  string      `xml:"entity,attr"`
	Dialogs []xmlDialog `xml:"dialog"`
}

type xmlDialog struct {
	ID        string `xml:"id,attr"`
	CallID    string `xml:"call-id,attr"`
	LocalTag  string `xml:"local-tag,attr"`
	RemoteTag string `xml:"remote-tag,attr"`
	Direction string `xml:"direction,attr"`
	State     string `xml:"state"`
	Local     string `xml:"local>identity"`
	Remote    string `xml:"remote>identity"`
}

// ErrTooLarge is returned for a document over MaxDocumentSize or with more
// than MaxDialogs dialogs.
var ErrTooLarge = errors.New("dialog-info document too large")

// ParseDialogInfo reads a dialog-info document. It rejects documents over
// MaxDocumentSize bytes or with more than MaxDialogs dialogs, a missing or
// non-numeric version, a state other than full or partial, a dialog
// without an id, and a dialog state RFC 4235 does not define.
func ParseDialogInfo(body []byte) (*DialogInfo, error) {
	if len(body) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(body), MaxDocumentSize)
	}
	dec := xml.NewDecoder(io.LimitReader(bytes.NewReader(body), MaxDocumentSize))
	dec.Strict = true
	var doc xmlDialogInfo
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse dialog-info: %w", err)
	}
	if len(doc.Dialogs) > MaxDialogs {
		return nil, fmt.Errorf("%w: %d dialogs, at most %d", ErrTooLarge, len(doc.Dialogs), MaxDialogs)
	}
	version, err := strconv.ParseUint(strings.TrimSpace(doc.Version), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("parse dialog-info: version %q is not a non-negative integer", clip(doc.Version))
	}
	info := &DialogInfo{Version: version, Entity: strings.TrimSpace(doc.Entity)}
	switch strings.TrimSpace(doc.State) {
	case "full":
		info.Full = true
	case "partial":
	default:
		return nil, fmt.Errorf("parse dialog-info: state %q is neither full nor partial", clip(doc.State))
	}
	for i, d := range doc.Dialogs {
		dialog := Dialog{
			ID:        strings.TrimSpace(d.ID),
			CallID:    strings.TrimSpace(d.CallID),
			LocalTag:  strings.TrimSpace(d.LocalTag),
			RemoteTag: strings.TrimSpace(d.RemoteTag),
			Direction: strings.TrimSpace(d.Direction),
			State:     strings.ToLower(strings.TrimSpace(d.State)),
			Local:     strings.TrimSpace(d.Local),
			Remote:    strings.TrimSpace(d.Remote),
		}
		if dialog.ID == "" {
			return nil, fmt.Errorf("parse dialog-info: dialog %d has no id", i)
		}
		switch dialog.State {
		case StateTrying, StateProceeding, StateEarly, StateConfirmed, StateTerminated:
		default:
			return nil, fmt.Errorf("parse dialog-info: dialog %d has unknown state %q", i, clip(dialog.State))
		}
		switch dialog.Direction {
		case "", "initiator", "recipient":
		default:
			return nil, fmt.Errorf("parse dialog-info: dialog %d has unknown direction %q", i, clip(dialog.Direction))
		}
		for _, s := range []string{dialog.ID, dialog.CallID, dialog.LocalTag, dialog.RemoteTag, dialog.Local, dialog.Remote} {
			if len(s) > maxAttr {
				return nil, fmt.Errorf("%w: dialog %d has a value over %d bytes", ErrTooLarge, i, maxAttr)
			}
		}
		info.Dialogs = append(info.Dialogs, dialog)
	}
	if len(info.Entity) > maxAttr {
		return nil, fmt.Errorf("%w: entity over %d bytes", ErrTooLarge, maxAttr)
	}
	return info, nil
}

// clip shortens a value quoted in an error.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
