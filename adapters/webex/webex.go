// Package webex turns Webex Calling telephony_calls webhooks into call
// events for the acting person, proven by X-Spark-Signature.
package webex

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

var defaultStates = map[string]string{
	"connecting": "ringing", "alerting": "ringing", "connected": "active",
	"held": "held", "remoteHeld": "held", "disconnected": "ended",
}

// Adapter decodes Webex Calling webhooks.
type Adapter struct {
	cfg    adapters.SourceConfig
	states map[string]string
}

var _ adapters.Adapter = (*Adapter)(nil)

// New returns the adapter; cfg.Secret is the webhook's secret.
func New(cfg adapters.SourceConfig) (*Adapter, error) {
	if cfg.Secret == "" {
		return nil, fmt.Errorf("webex source %s: needs the webhook secret", cfg.Name)
	}
	states, err := adapters.MapStates(defaultStates, cfg.States)
	if err != nil {
		return nil, fmt.Errorf("webex source %s: %w", cfg.Name, err)
	}
	return &Adapter{cfg: cfg, states: states}, nil
}

// Signature is the X-Spark-Signature of body.
func Signature(secret string, body []byte) string {
	return adapters.SignHex(sha1.New, []byte(secret), body)
}

type envelope struct {
	ID       string `json:"id"`
	Resource string `json:"resource"`
	Event    string `json:"event"`
	ActorID  string `json:"actorId"`
	Data     struct {
		CallID         string `json:"callId"`
		CallSessionID  string `json:"callSessionId"`
		Personality    string `json:"personality"`
		State          string `json:"state"`
		EventType      string `json:"eventType"`
		EventTimestamp string `json:"eventTimestamp"`
	} `json:"data"`
}

// Decode verifies and decodes a webhook.
func (a *Adapter) Decode(r *http.Request) ([]adapters.Event, error) {
	if err := adapters.CheckMediaType(r, "application/json"); err != nil {
		return nil, err
	}
	body, err := adapters.ReadBody(r, a.cfg.BodyLimit)
	if err != nil {
		return nil, err
	}
	if !adapters.Equal(r.Header.Get("X-Spark-Signature"), Signature(a.cfg.Secret, body)) {
		return nil, adapters.Unauthorized("X-Spark-Signature missing or wrong")
	}
	if err := adapters.CheckJSONText(body); err != nil {
		return nil, err
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, adapters.BadRequest("body is not a Webex webhook: %v", err)
	}
	if env.Resource == "" {
		return nil, adapters.BadRequest("body is not a Webex webhook: no resource")
	}
	if env.Resource != "telephony_calls" {
		return nil, nil
	}
	d := env.Data
	state, known := a.states[d.State]
	switch {
	case d.CallID == "" || env.ActorID == "":
		return nil, adapters.BadRequest("telephony_calls event without data.callId or actorId")
	case !known:
		return nil, adapters.BadRequest("unknown call state %q", d.State)
	case state == "":
		return nil, nil
	case len(env.ActorID) > adapters.MaxUserLength-6:
		return nil, adapters.BadRequest("actorId too long")
	}
	occurred := a.cfg.Clock().UTC()
	if t, err := time.Parse(time.RFC3339Nano, d.EventTimestamp); err == nil {
		if t.IsZero() {
			p := adapters.FieldError{Field: "data.eventTimestamp", Problem: "out of range (" + d.EventTimestamp + " is no time an event happened)"}
			return nil, &adapters.RequestError{Status: http.StatusBadRequest, Code: "invalid_event", Message: "invalid event: " + p.Error(), Fields: []adapters.FieldError{p}}
		}
		occurred = t.UTC()
	}
	return a.cfg.Valid([]adapters.Event{{
		ID:         d.CallID + ":" + d.State + ":" + occurred.Format(time.RFC3339Nano),
		Source:     a.cfg.Name,
		Type:       adapters.TypeCall,
		User:       adapters.NormalizeIdentity("webex:" + env.ActorID),
		OccurredAt: occurred,
		CallID:     d.CallID,
		State:      state,
	}})
}
