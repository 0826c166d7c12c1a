package adapters

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"
)

// Adapter authenticates and decodes one vendor's webhook requests.
type Adapter interface {
	// Decode proves that r came from the vendor and turns it into canonical
	// events. A nil slice with a nil error means the request was genuine but
	// carries nothing to do (a ping, an event type the bridge ignores).
	// Errors are *RequestError values carrying the HTTP status to answer.
	Decode(r *http.Request) ([]Event, error)
}

// Handshaker is implemented by adapters whose vendor validates the webhook
// URL before sending events (Zoom, RingCentral, Graph).
type Handshaker interface {
	// Handshake answers r when it is the vendor's validation request,
	// proven by whatever the vendor offers (a signature, a token), and
	// reports whether it did. It writes nothing otherwise: Decode then
	// answers, 401 for a request without its proof. An echo never carries
	// more than a short printable-ASCII token.
	Handshake(w http.ResponseWriter, r *http.Request) bool
}

// Responder is implemented by adapters whose vendor expects a particular
// answer once the events are safely queued; without it the bridge answers
// 202 with a JSON body.
type Responder interface {
	Respond(w http.ResponseWriter, accepted int)
}

// SourceConfig is what an adapter is built from: one entry of the bridge's
// sources list, with its secrets already resolved.
type SourceConfig struct {
	// Name is the source name stamped on every event.
	Name string
	// Type is the adapter type, such as "twilio".
	Type string
	// Secret is the vendor's signing secret, verification token or client
	// state, depending on the type.
	Secret string
	// Token is a bearer token accepted instead of a signature (generic).
	Token string
	// PublicURL is the hook's URL as the vendor calls it, for schemes that
	// sign the URL (Twilio).
	PublicURL string
	// States overrides the vendor-state to canonical-state mapping.
	States map[string]string
	// ReplayWindow bounds how far a signed timestamp may be from now.
	ReplayWindow time.Duration
	// BodyLimit bounds the request body in bytes.
	BodyLimit int64
	// MaxFutureSkew bounds how far ahead of now an event's occurredAt may
	// be; zero means DefaultMaxFutureSkew.
	MaxFutureSkew time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Clock returns the configured clock or time.Now.
func (c SourceConfig) Clock() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// RequestError is a rejected request: the HTTP status to answer, a short
// machine-readable code and a message naming the problem.
type RequestError struct {
	Status  int
	Code    string
	Message string
	// Fields lists per-field problems for invalid events.
	Fields []FieldError
}

func (e *RequestError) Error() string { return e.Message }

// BadRequest is a 400 for a malformed or invalid request.
func BadRequest(format string, args ...any) error {
	return &RequestError{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf(format, args...)}
}

// Unauthorized is a 401 for a missing, wrong or stale signature or token.
func Unauthorized(format string, args ...any) error {
	return &RequestError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: fmt.Sprintf(format, args...)}
}

// Invalid turns a decoding error into a 400 naming every bad field.
func Invalid(err error) error {
	var invalid *InvalidError
	if errors.As(err, &invalid) {
		return &RequestError{Status: http.StatusBadRequest, Code: "invalid_event", Message: invalid.Error(), Fields: invalid.Problems}
	}
	var reqErr *RequestError
	if errors.As(err, &reqErr) {
		return reqErr
	}
	return BadRequest("%v", err)
}

// CheckMediaType answers 415 unless r's Content-Type is want (parameters
// such as charset aside), so that a body is never read as a format its
// sender did not declare.
func CheckMediaType(r *http.Request, want string) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != want {
		return &RequestError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "Content-Type must be " + want}
	}
	return nil
}

// ReadBody reads r's body up to limit bytes (DefaultBodyLimit when limit is
// not positive) and answers 413 beyond it.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, BadRequest("read body: %v", err)
	}
	if int64(len(body)) > limit {
		return nil, tooLarge(limit)
	}
	return body, nil
}

func tooLarge(limit int64) error {
	return &RequestError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: fmt.Sprintf("body larger than %d bytes", limit)}
}

// Valid checks that the events an adapter built from a vendor's fields are
// valid canonical events dated no further ahead than MaxFutureSkew, and
// answers 400 naming the problem otherwise (an over-long call id, say).
func (c SourceConfig) Valid(events []Event) ([]Event, error) {
	for i, e := range events {
		if err := e.Validate(fmt.Sprintf("events[%d].", i)); err != nil {
			return nil, Invalid(err)
		}
	}
	if err := CheckFuture(events, c.Clock(), c.MaxFutureSkew); err != nil {
		return nil, err
	}
	return events, nil
}

// DefaultMaxFutureSkew is how far ahead of the bridge's clock an event's
// occurredAt may be by default: a sender's clock a little fast is fine, an
// event dated next year would make every real event after it look older.
const DefaultMaxFutureSkew = 5 * time.Minute

// CheckFuture refuses, with a 400 naming occurredAt, the first event dated
// more than skew (zero means DefaultMaxFutureSkew) after now. Only
// occurredAt is bounded: a meeting's start and end or an expiresAt may
// rightly lie far ahead.
func CheckFuture(events []Event, now time.Time, skew time.Duration) error {
	if skew <= 0 {
		skew = DefaultMaxFutureSkew
	}
	limit := now.Add(skew)
	for i, e := range events {
		if !e.OccurredAt.After(limit) {
			continue
		}
		field := "occurredAt"
		if len(events) > 1 {
			field = fmt.Sprintf("events[%d].occurredAt", i)
		}
		p := FieldError{Field: field, Problem: fmt.Sprintf("%s is more than %s ahead of the bridge's clock (%s)",
			e.OccurredAt.UTC().Format(time.RFC3339), skew, now.UTC().Format(time.RFC3339))}
		return &RequestError{Status: http.StatusBadRequest, Code: "invalid_event", Message: "invalid event: " + p.Error(), Fields: []FieldError{p}}
	}
	return nil
}
