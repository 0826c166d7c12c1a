// Package twilio turns Twilio Voice status callbacks (and conference
// participant callbacks) into call events, proven by X-Twilio-Signature.
package twilio

import (
	"crypto/sha1"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// defaultStates maps CallStatus and conference participant events to call
// states; an empty state is ignored.
var defaultStates = map[string]string{
	"queued": "", "initiated": "ringing", "ringing": "ringing",
	"in-progress": "active", "answered": "active",
	"completed": "ended", "busy": "ended", "failed": "ended", "no-answer": "ended", "canceled": "ended",
	"participant-join": "active", "participant-leave": "ended",
	"participant-hold": "held", "participant-unhold": "active",
}

// Adapter decodes Twilio callbacks.
type Adapter struct {
	cfg    adapters.SourceConfig
	states map[string]string
}

var (
	_ adapters.Adapter   = (*Adapter)(nil)
	_ adapters.Responder = (*Adapter)(nil)
)

// New returns the adapter; cfg.Secret is the account's Auth Token and
// cfg.PublicURL the callback URL exactly as configured at Twilio.
func New(cfg adapters.SourceConfig) (*Adapter, error) {
	if cfg.Secret == "" || cfg.PublicURL == "" {
		return nil, fmt.Errorf("twilio source %s: needs the Auth Token as secret and public_url", cfg.Name)
	}
	if u, err := url.Parse(cfg.PublicURL); err != nil || u.Host == "" {
		return nil, fmt.Errorf("twilio source %s: public_url %q is not a URL", cfg.Name, cfg.PublicURL)
	}
	states, err := adapters.MapStates(defaultStates, cfg.States)
	if err != nil {
		return nil, fmt.Errorf("twilio source %s: %w", cfg.Name, err)
	}
	return &Adapter{cfg: cfg, states: states}, nil
}

// Signature computes X-Twilio-Signature: base64 HMAC-SHA1 of the full URL
// followed by every POST parameter as name and value, sorted by name.
func Signature(authToken, fullURL string, params url.Values) string {
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, name := range names {
		values := append([]string(nil), params[name]...)
		sort.Strings(values)
		for _, v := range values {
			b.WriteString(name + v)
		}
	}
	return adapters.SignBase64(sha1.New, []byte(authToken), []byte(b.String()))
}

// Decode verifies and decodes a callback.
func (a *Adapter) Decode(r *http.Request) ([]adapters.Event, error) {
	body, err := adapters.ReadBody(r, a.cfg.BodyLimit)
	if err != nil {
		return nil, err
	}
	var form url.Values
	if r.Method == http.MethodPost {
		if err := adapters.CheckMediaType(r, "application/x-www-form-urlencoded"); err != nil {
			return nil, err
		}
		form, err = url.ParseQuery(string(body))
		if err != nil {
			return nil, adapters.BadRequest("body is not form-encoded: %v", err)
		}
	}
	if !a.verify(r, form) {
		return nil, adapters.Unauthorized("X-Twilio-Signature missing or wrong")
	}
	params := r.URL.Query()
	for _, values := range []url.Values{params, form} {
		if err := adapters.CheckFormText(values); err != nil {
			return nil, err
		}
	}
	for k, v := range form {
		params[k] = v
	}
	return a.events(params)
}

// verify checks the signature against the public URL with and without the
// scheme's default port, as Twilio may sign either.
func (a *Adapter) verify(r *http.Request, form url.Values) bool {
	got := r.Header.Get("X-Twilio-Signature")
	if got == "" {
		return false
	}
	base, _ := url.Parse(a.cfg.PublicURL)
	base.RawQuery = r.URL.RawQuery
	for _, candidate := range urlVariants(base) {
		if adapters.Equal(got, Signature(a.cfg.Secret, candidate, form)) {
			return true
		}
	}
	return false
}

func urlVariants(u *url.URL) []string {
	port := map[string]string{"https": "443", "http": "80"}[u.Scheme]
	with, without := *u, *u
	if u.Port() == "" && port != "" {
		with.Host = u.Host + ":" + port
	} else if u.Port() == port {
		without.Host = u.Hostname()
	}
	return []string{u.String(), with.String(), without.String()}
}

func (a *Adapter) events(p url.Values) ([]adapters.Event, error) {
	callSid := p.Get("CallSid")
	kind := p.Get("StatusCallbackEvent")
	conference := strings.HasPrefix(kind, "participant-")
	status := p.Get("CallStatus")
	if conference {
		status = kind
	}
	if callSid == "" || status == "" {
		if strings.HasPrefix(kind, "conference-") {
			return nil, nil // conference start and end concern no one person
		}
		return nil, adapters.BadRequest("callback without CallSid or CallStatus")
	}
	state, known := a.states[status]
	if !known {
		return nil, adapters.BadRequest("unknown CallStatus %q", status)
	}
	if state == "" {
		return nil, nil
	}
	if conference && p.Get("Hold") == "true" && state == adapters.CallActive {
		state = adapters.CallHeld
	}
	user := a.user(p, conference)
	if user == "" {
		return nil, nil // nobody of ours on this leg
	}
	seq, _ := strconv.ParseInt(p.Get("SequenceNumber"), 10, 64)
	if seq < 0 {
		seq = 0
	}
	occurred := a.cfg.Clock().UTC()
	if ts, err := time.Parse(time.RFC1123Z, p.Get("Timestamp")); err == nil {
		occurred = ts.UTC()
	}
	return a.cfg.Valid([]adapters.Event{{
		ID:         strings.Join([]string{callSid, status, p.Get("SequenceNumber")}, ":"),
		Source:     a.cfg.Name,
		Type:       adapters.TypeCall,
		User:       user,
		OccurredAt: occurred,
		Sequence:   seq,
		CallID:     callSid,
		State:      state,
		Conference: conference,
	}})
}

// user picks the party that is one of ours: the callee of inbound calls
// and of dialled child legs, the caller of calls placed through the API;
// a conference participant is named by its ParticipantLabel.
func (a *Adapter) user(p url.Values, conference bool) string {
	var raw string
	switch {
	case conference:
		raw = p.Get("ParticipantLabel")
	case p.Get("Direction") == "outbound-api":
		raw = p.Get("From")
	default:
		raw = p.Get("To")
	}
	if len(raw) > adapters.MaxUserLength {
		return ""
	}
	return adapters.NormalizeIdentity(raw)
}

// Respond answers Twilio with an empty TwiML document.
func (a *Adapter) Respond(w http.ResponseWriter, _ int) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("<Response/>"))
}
