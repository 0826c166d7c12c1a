package emulator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// apiError is a Graph error answer: status, Graph's error code and message,
// and a Retry-After value when one goes with it.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter string
}

// Error describes the error for logs and tests.
func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message)
}

// Graph error constructors for the answers the emulator gives.
func badRequest(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

func notFound(code, message string) *apiError {
	return &apiError{status: http.StatusNotFound, code: code, message: message}
}

// errExpirationRange is Graph's answer to an expirationDuration out of
// PT5M..PT4H.
var errExpirationRange = &apiError{status: http.StatusBadRequest, code: "InvalidArgument", message: "The provided [ExpirationDuration] is out of range."}

// graphErrorBody is Graph's error shape.
type graphErrorBody struct {
	Error struct {
		Code       string     `json:"code"`
		Message    string     `json:"message"`
		InnerError innerError `json:"innerError"`
	} `json:"error"`
}

type innerError struct {
	Code            string `json:"code,omitempty"`
	Date            string `json:"date"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id,omitempty"`
	Status          string `json:"status,omitempty"`
}

// requestMeta is what the emulator knows of a request before a handler
// runs: its id and the emulator's time when it arrived.
type requestMeta struct {
	id              string
	clientRequestID string
	now             time.Time
	body            []byte // decompressed
}

type metaKey struct{}

// meta returns the request's id and arrival time.
func meta(r *http.Request) requestMeta {
	if m, ok := r.Context().Value(metaKey{}).(requestMeta); ok {
		return m
	}
	return requestMeta{id: newID(), now: time.Now()}
}

func withMeta(r *http.Request, m requestMeta) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), metaKey{}, m))
}

// graphDate is the format of innerError.date.
const graphDate = "2006-01-02T15:04:05"

// writeError answers err in Graph's error shape. The request-id header was
// set when the request arrived.
func writeError(w http.ResponseWriter, r *http.Request, err *apiError) {
	m := meta(r)
	var body graphErrorBody
	body.Error.Code, body.Error.Message = err.code, err.message
	body.Error.InnerError = innerError{Date: m.now.UTC().Format(graphDate), RequestID: m.id, ClientRequestID: m.clientRequestID}
	if err.status == http.StatusTooManyRequests {
		// Graph's throttling answer carries code and status instead.
		body.Error.InnerError.Code, body.Error.InnerError.Status, body.Error.InnerError.ClientRequestID = "429", "429", ""
	}
	if err.retryAfter != "" {
		w.Header().Set("Retry-After", err.retryAfter)
	}
	writeJSON(w, err.status, body)
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// identityErrorBody is the identity platform's error shape.
type identityErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
}

// writeIdentityError answers as the token endpoint does: an OAuth error
// with an AADSTS code. The description ends with the trace and correlation
// ids and the timestamp, as Entra's do.
func writeIdentityError(w http.ResponseWriter, r *http.Request, status int, code string, aadsts int, description string) {
	m := meta(r)
	ts := m.now.UTC().Format("2006-01-02 15:04:05Z")
	correlation := r.Header.Get("client-request-id")
	if correlation == "" {
		correlation = newID()
	}
	writeJSON(w, status, identityErrorBody{
		Error:            code,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, description, m.id, correlation, ts),
		ErrorCodes:       []int{aadsts},
		Timestamp:        ts,
		TraceID:          m.id,
		CorrelationID:    correlation,
	})
}

// newID returns a random GUID-shaped id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
