// Package ringcentral turns RingCentral telephony session notifications
// into call events, one per party with an extension, proven by the
// Verification-Token header; it answers the Validation-Token handshake.
package ringcentral

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

var defaultStates = map[string]string{
	"Setup": "ringing", "Proceeding": "ringing", "Answered": "active",
	"Hold": "held", "Parked": "held",
	"Disconnected": "ended", "Gone": "ended", "VoiceMail": "ended",
}

// Adapter decodes RingCentral notifications.
type Adapter struct {
	cfg    adapters.SourceConfig
	states map[string]string
}

var (
	_ adapters.Adapter    = (*Adapter)(nil)
	_ adapters.Handshaker = (*Adapter)(nil)
)

// New returns the adapter; cfg.Secret is the subscription's verification
// token.
func New(cfg adapters.SourceConfig) (*Adapter, error) {
	if cfg.Secret == "" {
		return nil, fmt.Errorf("ringcentral source %s: needs the verification token", cfg.Name)
	}
	states, err := adapters.MapStates(defaultStates, cfg.States)
	if err != nil {
		return nil, fmt.Errorf("ringcentral source %s: %w", cfg.Name, err)
	}
	return &Adapter{cfg: cfg, states: states}, nil
}

// maxValidationToken bounds the Validation-Token echoed back; RingCentral
// refuses answers over 1024 bytes, headers included, and its tokens are
// far shorter.
const maxValidationToken = 256

// Handshake echoes Validation-Token when RingCentral creates the
// subscription, once the request is proven: RingCentral sends the
// subscription's Verification-Token with the validation request as with
// every notification, and it must match the configured one. Only short
// printable ASCII is echoed. Whatever is not answered here goes to Decode,
// which answers 401 (no or wrong Verification-Token) or 400.
func (a *Adapter) Handshake(w http.ResponseWriter, r *http.Request) bool {
	token := r.Header.Get("Validation-Token")
	if token == "" || !a.proven(r) || !adapters.Token(token, maxValidationToken) {
		return false
	}
	w.Header().Set("Validation-Token", token)
	w.WriteHeader(http.StatusOK)
	return true
}

// proven reports whether r carries the configured Verification-Token.
func (a *Adapter) proven(r *http.Request) bool {
	return adapters.Equal(r.Header.Get("Verification-Token"), a.cfg.Secret)
}

type notification struct {
	UUID  string `json:"uuid"`
	Event string `json:"event"`
	Body  struct {
		Sequence           int64  `json:"sequence"`
		SessionID          string `json:"sessionId"`
		TelephonySessionID string `json:"telephonySessionId"`
		EventTime          string `json:"eventTime"`
		Parties            []struct {
			ID          string `json:"id"`
			ExtensionID string `json:"extensionId"`
			Direction   string `json:"direction"`
			Status      struct {
				Code string `json:"code"`
			} `json:"status"`
		} `json:"parties"`
	} `json:"body"`
}

// Decode verifies and decodes a notification.
func (a *Adapter) Decode(r *http.Request) ([]adapters.Event, error) {
	body, err := adapters.ReadBody(r, a.cfg.BodyLimit)
	if err != nil {
		return nil, err
	}
	if !a.proven(r) {
		return nil, adapters.Unauthorized("Verification-Token missing or wrong")
	}
	if r.Header.Get("Validation-Token") != "" {
		// Proven, but Handshake would not echo it.
		return nil, adapters.BadRequest("Validation-Token must be 1 to %d printable ASCII characters", maxValidationToken)
	}
	if err := adapters.CheckMediaType(r, "application/json"); err != nil {
		return nil, err
	}
	if err := adapters.CheckJSONText(body); err != nil {
		return nil, err
	}
	var n notification
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, adapters.BadRequest("body is not a RingCentral notification: %v", err)
	}
	b := n.Body
	if b.TelephonySessionID == "" {
		return nil, adapters.BadRequest("notification without body.telephonySessionId")
	}
	occurred := a.cfg.Clock().UTC()
	if t, err := time.Parse(time.RFC3339Nano, b.EventTime); err == nil {
		occurred = t.UTC()
	}
	var events []adapters.Event
	for _, p := range b.Parties {
		state := a.states[p.Status.Code]
		if p.ExtensionID == "" || state == "" {
			continue // a party outside the account, or a status the bridge ignores
		}
		events = append(events, adapters.Event{
			ID:         b.TelephonySessionID + ":" + p.ID + ":" + strconv.FormatInt(b.Sequence, 10),
			Source:     a.cfg.Name,
			Type:       adapters.TypeCall,
			User:       adapters.NormalizeIdentity("rc:" + p.ExtensionID),
			OccurredAt: occurred,
			Sequence:   max(b.Sequence, 0),
			CallID:     b.TelephonySessionID,
			State:      state,
		})
	}
	return a.cfg.Valid(events)
}
