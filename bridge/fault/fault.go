// Package fault is the bridge's one classification of failures. Every
// stage asks Of what to do about an error, whether it came from Graph, the
// state store or the stage itself: try again later, wait for Graph's
// throttle, pause the tenant, or give the change up to the dead letters.
package fault

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient"
)

// Class says what to do about a failure.
type Class int

// The classes.
const (
	// Retry failures may pass by trying again later: Graph's 5xx and
	// 408, timeouts, network errors, a Graph token that can not be had
	// (a wrong or expired secret is an outage to fix in the
	// configuration, not a reason to drop events), an open breaker, a
	// store that is not answering.
	Retry Class = iota
	// Throttled is Graph's 429: wait for the Retry-After.
	Throttled
	// Refused concerns the whole tenant, not one user: a token Graph does
	// not accept (401) or a permission the application lacks (403). The
	// writer pauses the tenant and probes; desired states wait.
	Refused
	// Permanent failures never pass: Graph's 400 and 404 about one user,
	// an unknown user, an invalid event, a state that can not fit. The
	// event goes to the dead letters.
	Permanent
)

// String names the class.
func (c Class) String() string {
	switch c {
	case Retry:
		return "retry"
	case Throttled:
		return "throttled"
	case Refused:
		return "refused"
	case Permanent:
		return "permanent"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Error is a failure a stage has classified itself.
type Error struct {
	Class Class
	// After is the least delay before trying again (Graph's Retry-After,
	// the time until a breaker lets a probe through).
	After time.Duration
	// Reason says in a few words why, for dead letters and logs, such as
	// "unknown user".
	Reason string
	// GraphError is Graph's error, when Graph gave one.
	GraphError string
	// Quiet means the cause has been logged once already (an open
	// breaker), so each event turned away need not be logged again.
	Quiet bool
	Err   error
}

func (e *Error) Error() string {
	if e.Reason == "" {
		return e.Err.Error()
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Permanently marks err as a change that can never be made, for reason.
func Permanently(reason string, err error) *Error {
	return &Error{Class: Permanent, Reason: reason, Err: err}
}

// Later marks err as worth retrying after at least after.
func Later(after time.Duration, err error) *Error {
	return &Error{Class: Retry, After: after, Err: err}
}

// Of classifies err and returns the least delay before trying again. It is
// the only place that decides; graphclient reports facts (the status, Graph's
// error code, Retry-After, whether an answer came) and no policy.
//
// An *Error keeps the class it was given. Graph's answers are sorted by
// their status (see ofStatus). A token the identity platform does not give,
// whatever its status, is Retry with its Retry-After: a wrong or expired
// secret is an outage to fix in the configuration, not a reason to drop
// events, and the token endpoint's 429 is not Graph's presence budget. A call
// the client refused before any request (an invalid argument, a cloud
// without presence) is Permanent. Anything else, network errors and
// timeouts included, is Retry, since losing an event is worse than trying
// it again.
func Of(err error) (Class, time.Duration) {
	var ferr *Error
	if errors.As(err, &ferr) {
		return ferr.Class, ferr.After
	}
	var gerr *graphclient.Error
	if errors.As(err, &gerr) {
		return ofStatus(gerr.StatusCode), gerr.RetryAfter
	}
	var tokenErr *graphclient.TokenError
	if errors.As(err, &tokenErr) {
		return Retry, tokenErr.RetryAfter
	}
	if errors.Is(err, graphclient.ErrInvalidArgument) || errors.Is(err, graphclient.ErrPresenceUnavailable) {
		return Permanent, 0
	}
	return Retry, 0
}

// ofStatus sorts a status Graph answered with: 401 and 403 refuse the
// tenant (the token or the application's permission, never one user), 429
// is Graph's throttle, 408 and 5xx may pass, and every other status (400,
// 404, 409, ...) is about this change and will not.
func ofStatus(status int) Class {
	switch {
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return Refused
	case status == http.StatusTooManyRequests:
		return Throttled
	case status == http.StatusRequestTimeout, status >= 500:
		return Retry
	}
	return Permanent
}

// GraphError returns Graph's error text carried by err, or "".
func GraphError(err error) string {
	var ferr *Error
	if errors.As(err, &ferr) && ferr.GraphError != "" {
		return ferr.GraphError
	}
	var gerr *graphclient.Error
	if errors.As(err, &gerr) {
		return gerr.Error()
	}
	return ""
}
