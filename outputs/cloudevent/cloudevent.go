// Package cloudevent encodes a presence change as a CloudEvents 1.0
// structured JSON message, and decodes one back for receivers and tests.
package cloudevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/presence-bridge/presence-bridge/outputs"
)

// The fixed attributes of every event.
const (
	SpecVersion = "1.0"
	// DataContentType is the media type of the data attribute.
	DataContentType = "application/json"
	// MediaType is the media type of a whole structured message.
	MediaType = "application/cloudevents+json"
)

// MaxSize is the largest message Decode reads.
const MaxSize = 64 << 10

// Event is a change as a CloudEvent: the context attributes and, as data,
// the person's view plus the previous pair.
type Event struct {
	SpecVersion string `json:"specversion"`
	// ID is the change's stable id (outputs.Change.ID).
	ID string `json:"id"`
	// Source is "presence-bridge/<tenant>".
	Source string `json:"source"`
	// Type is outputs.ChangeType.
	Type string `json:"type"`
	// Time is when the watcher first saw the new pair (the view's since).
	Time time.Time `json:"time"`
	// Subject is the person's object id.
	Subject         string         `json:"subject"`
	DataContentType string         `json:"datacontenttype"`
	Data            outputs.Change `json:"data"`
}

// Source returns the source attribute of a tenant's events.
func Source(tenant string) string { return "presence-bridge/" + tenant }

// New returns the event of c.
func New(c outputs.Change) Event {
	return Event{
		SpecVersion:     SpecVersion,
		ID:              c.ID,
		Source:          Source(c.Tenant),
		Type:            outputs.ChangeType,
		Time:            c.Since.UTC(),
		Subject:         c.View.ID,
		DataContentType: DataContentType,
		Data:            c,
	}
}

// Encode returns c as a structured JSON message, or why c can not be
// published.
func Encode(c outputs.Change) ([]byte, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	data, err := json.Marshal(New(c))
	if err != nil {
		return nil, fmt.Errorf("encode change %s: %w", c.ID, err)
	}
	return data, nil
}

// Decode reads a message Encode wrote and returns its change, id included.
// It refuses a message over MaxSize, one that is not JSON, and one whose
// attributes are not those of a presence change or disagree with its data.
// Unknown attributes (CloudEvents extensions) are ignored.
func Decode(data []byte) (outputs.Change, error) {
	if len(data) > MaxSize {
		return outputs.Change{}, fmt.Errorf("cloudevent: %d bytes, more than %d", len(data), MaxSize)
	}
	var e Event
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&e); err != nil {
		return outputs.Change{}, fmt.Errorf("cloudevent: %w", err)
	}
	if dec.More() {
		return outputs.Change{}, errors.New("cloudevent: data after the event")
	}
	c := e.Data
	c.ID = e.ID
	for _, a := range []struct{ name, got, want string }{
		{"specversion", e.SpecVersion, SpecVersion},
		{"type", e.Type, outputs.ChangeType},
		{"datacontenttype", e.DataContentType, DataContentType},
		{"source", e.Source, Source(c.Tenant)},
		{"subject", e.Subject, c.View.ID},
	} {
		if a.got != a.want {
			return outputs.Change{}, fmt.Errorf("cloudevent: %s is %q, want %q", a.name, a.got, a.want)
		}
	}
	if !e.Time.Equal(c.Since) {
		return outputs.Change{}, fmt.Errorf("cloudevent: time %s is not the data's since %s", e.Time.Format(time.RFC3339Nano), c.Since.Format(time.RFC3339Nano))
	}
	if err := c.Check(); err != nil {
		return outputs.Change{}, fmt.Errorf("cloudevent: %w", err)
	}
	return c, nil
}
