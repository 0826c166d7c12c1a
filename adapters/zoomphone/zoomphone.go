// Package zoomphone turns Zoom Phone webhooks (phone.caller_* and
// phone.callee_* events) into call events, proven by x-zm-signature, and
// answers Zoom's endpoint URL validation.
package zoomphone

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// defaultStates maps each event to the call state of the party it is
// about; an empty state is ignored.
var defaultStates = map[string]string{
	"phone.callee_ringing": "ringing", "phone.callee_answered": "active", "phone.callee_ended": "ended",
	"phone.callee_missed": "ended", "phone.callee_rejected": "ended",
	"phone.callee_hold": "held", "phone.callee_unhold": "active",
	"phone.caller_ringing": "ringing", "phone.caller_connected": "active", "phone.caller_ended": "ended",
	"phone.caller_hold": "held", "phone.caller_unhold": "active",
}

// Adapter decodes Zoom Phone webhooks.
type Adapter struct {
	cfg    adapters.SourceConfig
	states map[string]string
}

var (
	_ adapters.Adapter    = (*Adapter)(nil)
	_ adapters.Handshaker = (*Adapter)(nil)
)

// New returns the adapter; cfg.Secret is the app's secret token.
func New(cfg adapters.SourceConfig) (*Adapter, error) {
	if cfg.Secret == "" {
		return nil, fmt.Errorf("zoomphone source %s: needs the secret token", cfg.Name)
	}
	states, err := adapters.MapStates(defaultStates, cfg.States)
	if err != nil {
		return nil, fmt.Errorf("zoomphone source %s: %w", cfg.Name, err)
	}
	return &Adapter{cfg: cfg, states: states}, nil
}

// Signature is the x-zm-signature value for a body sent at timestamp.
func Signature(secret, timestamp string, body []byte) string {
	return "v0=" + adapters.SignHex(sha256.New, []byte(secret), []byte("v0:"+timestamp+":"+string(body)))
}

type party struct {
	PhoneNumber     string      `json:"phone_number"`
	ExtensionNumber json.Number `json:"extension_number"`
	UserID          string      `json:"user_id"`
	Name            string      `json:"name"`
}

type webhook struct {
	Event   string `json:"event"`
	EventTS int64  `json:"event_ts"`
	Payload struct {
		AccountID  string `json:"account_id"`
		PlainToken string `json:"plainToken"`
		Object     struct {
			CallID string `json:"call_id"`
			Caller party  `json:"caller"`
			Callee party  `json:"callee"`
		} `json:"object"`
	} `json:"payload"`
}

// validationEvent is the event Zoom sends to validate the endpoint URL.
const validationEvent = "endpoint.url_validation"

// maxPlainToken bounds the plainToken echoed back; Zoom's are a couple of
// dozen characters.
const maxPlainToken = 128

// Handshake answers endpoint.url_validation with the plain token and its
// HMAC, as Zoom expects, but only once the request is proven by a valid
// x-zm-signature within the replay window. The answer is HMAC-SHA256 under
// the same secret that signs events, so answering an unproven request
// would sign any "v0:{timestamp}:{body}" a stranger sends as plainToken.
// As a second fence, a plainToken must be short printable ASCII without
// ':', which every signed message holds. Whatever is not answered here
// goes to Decode, which answers 401 or 400.
func (a *Adapter) Handshake(w http.ResponseWriter, r *http.Request) bool {
	body, err := adapters.ReadBody(r, a.cfg.BodyLimit)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil || !bytes.Contains(body, []byte(validationEvent)) || a.verify(r, body) != nil {
		return false
	}
	var hook webhook
	if json.Unmarshal(body, &hook) != nil || hook.Event != validationEvent || !plainToken(hook.Payload.PlainToken) {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"plainToken":     hook.Payload.PlainToken,
		"encryptedToken": adapters.SignHex(sha256.New, []byte(a.cfg.Secret), []byte(hook.Payload.PlainToken)),
	})
	return true
}

// plainToken reports whether Zoom's validation token may be answered.
func plainToken(s string) bool {
	return adapters.Token(s, maxPlainToken) && !strings.Contains(s, ":")
}

func (a *Adapter) verify(r *http.Request, body []byte) error {
	ts := r.Header.Get("x-zm-request-timestamp")
	if _, err := adapters.CheckTimestamp(ts, time.Second, a.cfg.Clock(), a.cfg.ReplayWindow); err != nil {
		return err
	}
	if !adapters.Equal(r.Header.Get("x-zm-signature"), Signature(a.cfg.Secret, ts, body)) {
		return adapters.Unauthorized("x-zm-signature missing or wrong")
	}
	return nil
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
	if err := a.verify(r, body); err != nil {
		return nil, err
	}
	if err := adapters.CheckJSONText(body); err != nil {
		return nil, err
	}
	var hook webhook
	if err := json.Unmarshal(body, &hook); err != nil {
		return nil, adapters.BadRequest("body is not a Zoom webhook: %v", err)
	}
	if hook.Event == "" {
		return nil, adapters.BadRequest("body is not a Zoom webhook: no event")
	}
	if hook.Event == validationEvent {
		// Signed, but Handshake would not answer it.
		return nil, adapters.BadRequest("payload.plainToken must be 1 to %d printable ASCII characters other than ':'", maxPlainToken)
	}
	state, known := a.states[hook.Event]
	if !known || state == "" {
		return nil, nil // an event the bridge does not use
	}
	obj := hook.Payload.Object
	if obj.CallID == "" {
		return nil, adapters.BadRequest("%s without payload.object.call_id", hook.Event)
	}
	p := obj.Callee
	if strings.HasPrefix(hook.Event, "phone.caller_") {
		p = obj.Caller
	}
	user := identity(p)
	if user == "" {
		return nil, adapters.BadRequest("%s names no extension, user or number", hook.Event)
	}
	occurred := a.cfg.Clock().UTC()
	if hook.EventTS > 0 {
		occurred = time.UnixMilli(hook.EventTS).UTC()
	}
	return a.cfg.Valid([]adapters.Event{{
		ID:         hook.Event + ":" + obj.CallID + ":" + strconv.FormatInt(hook.EventTS, 10),
		Source:     a.cfg.Name,
		Type:       adapters.TypeCall,
		User:       user,
		OccurredAt: occurred,
		CallID:     obj.CallID,
		State:      state,
	}})
}

// identity prefers the extension, then the Zoom user id, then the number.
func identity(p party) string {
	var id string
	switch {
	case p.ExtensionNumber != "":
		id = "ext:" + p.ExtensionNumber.String()
	case p.UserID != "":
		id = "zoom:" + p.UserID
	case p.PhoneNumber != "":
		id = p.PhoneNumber
	}
	if len(id) > adapters.MaxUserLength {
		return ""
	}
	return adapters.NormalizeIdentity(id)
}
