// Package generic takes the bridge's own canonical events on a source's
// webhook path, proven either by the Standard Webhooks signature scheme
// (webhook-id, webhook-timestamp, webhook-signature; whsec_ secrets) or by
// the source's bearer token.
package generic

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// Adapter decodes signed canonical events.
type Adapter struct {
	cfg adapters.SourceConfig
	key []byte // the Standard Webhooks key, or nil
}

var _ adapters.Adapter = (*Adapter)(nil)

// New returns the adapter. cfg.Secret, when set, must be a Standard
// Webhooks secret (whsec_ and base64 of 24 to 64 bytes); cfg.Token, when
// set, is accepted as a bearer token.
func New(cfg adapters.SourceConfig) (*Adapter, error) {
	a := &Adapter{cfg: cfg}
	if cfg.Secret != "" {
		key, err := DecodeSecret(cfg.Secret)
		if err != nil {
			return nil, err
		}
		a.key = key
	}
	if a.key == nil && cfg.Token == "" {
		return nil, fmt.Errorf("generic source %s: needs a whsec_ secret or a token", cfg.Name)
	}
	return a, nil
}

// DecodeSecret reads a whsec_ secret into its HMAC key.
func DecodeSecret(secret string) ([]byte, error) {
	raw, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, fmt.Errorf("secret must start with whsec_ (Standard Webhooks)")
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("secret after whsec_ must be base64: %w", err)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("secret must hold 24 to 64 bytes, not %d", len(key))
	}
	return key, nil
}

// Sign returns a webhook-signature header value for body, as a Standard
// Webhooks sender computes it.
func Sign(key []byte, id, timestamp string, body []byte) string {
	return "v1," + adapters.SignBase64(sha256.New, key, []byte(id+"."+timestamp+"."+string(body)))
}

// Decode verifies and decodes the request.
func (a *Adapter) Decode(r *http.Request) ([]adapters.Event, error) {
	if err := adapters.CheckMediaType(r, "application/json"); err != nil {
		return nil, err
	}
	body, err := adapters.ReadBody(r, a.cfg.BodyLimit)
	if err != nil {
		return nil, err
	}
	if err := a.authenticate(r, body); err != nil {
		return nil, err
	}
	events, err := adapters.DecodeEvents(body)
	if err != nil {
		return nil, adapters.Invalid(err)
	}
	for i, e := range events {
		if e.Source != a.cfg.Name {
			return nil, adapters.BadRequest("event %d names source %q; this hook is source %q", i, e.Source, a.cfg.Name)
		}
	}
	if err := adapters.CheckFuture(events, a.cfg.Clock(), a.cfg.MaxFutureSkew); err != nil {
		return nil, err
	}
	return events, nil
}

func (a *Adapter) authenticate(r *http.Request, body []byte) error {
	if scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && a.cfg.Token != "" && strings.EqualFold(scheme, "Bearer") {
		if subtle.ConstantTimeCompare([]byte(token), []byte(a.cfg.Token)) == 1 {
			return nil
		}
		return adapters.Unauthorized("wrong bearer token")
	}
	if a.key == nil {
		return adapters.Unauthorized("missing bearer token")
	}
	id, ts, sigs := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
	if id == "" || sigs == "" {
		return adapters.Unauthorized("missing webhook-id or webhook-signature")
	}
	if _, err := adapters.CheckTimestamp(ts, 1e9, a.cfg.Clock(), a.cfg.ReplayWindow); err != nil {
		return err
	}
	want := Sign(a.key, id, ts, body)
	// Several signatures are sent while a secret rotates; one match is
	// enough.
	for _, sig := range strings.Fields(sigs) {
		if adapters.Equal(sig, want) {
			return nil
		}
	}
	return adapters.Unauthorized("no webhook-signature matches")
}
