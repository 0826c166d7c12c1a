package emulator

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"
)

// faults are the failures injected through the admin API or the Go
// controls. Latency and outages apply to every Graph endpoint; the others
// to the presence endpoints only (where Graph's throttling applies too),
// after the token has been checked.
type faults struct {
	latency time.Duration
	// outageUntil: every Graph request before it answers 503.
	outageUntil time.Time
	// failNext requests answer failStatus.
	failNext   int
	failStatus int
	// failRate of the requests, drawn from rng, answer failRateStatus.
	failRate       float64
	failRateStatus int
	rng            *rand.Rand
	// throttleNext requests answer 429 with throttleRetryAfter.
	throttleNext       int
	throttleRetryAfter time.Duration
	// actionStatus is the success status of the presence actions; zero
	// is 200.
	actionStatus int
	// events are the faults of calendar event reads (eventreads.go).
	events eventReadFaults
}

// FaultsView is the injected faults as GET /_emulator/faults shows them.
type FaultsView struct {
	Latency            string     `json:"latency"`
	OutageUntil        *time.Time `json:"outageUntil,omitempty"`
	FailNext           int        `json:"failNext"`
	FailStatus         int        `json:"failStatus,omitempty"`
	FailRate           float64    `json:"failRate"`
	FailRateStatus     int        `json:"failRateStatus,omitempty"`
	ThrottleNext       int        `json:"throttleNext"`
	ThrottleRetryAfter string     `json:"throttleRetryAfter,omitempty"`
	ActionStatus       int        `json:"actionStatus"`
}

// failureStatus keeps an injected status within 400-599; anything else
// becomes 503.
func failureStatus(status int) int {
	if status < 400 || status > 599 {
		return http.StatusServiceUnavailable
	}
	return status
}

// FailNext makes the next n presence requests (after their token is
// checked) fail with status, 503 if status is not a 4xx or 5xx. A 503
// carries Retry-After: 1. n = 0 cancels.
func (e *Emulator) FailNext(n, status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.failNext, e.faults.failStatus = max(0, n), failureStatus(status)
}

// FailRate makes a fraction (0 to 1) of the presence requests fail with
// status, drawn from a random source seeded with seed, so that a run is
// reproducible. A fraction of 0 turns it off.
func (e *Emulator) FailRate(fraction float64, status int, seed uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !(fraction > 0) {
		fraction = 0
	}
	e.faults.failRate, e.faults.failRateStatus = min(fraction, 1), failureStatus(status)
	e.faults.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// ForceThrottle makes the next n presence requests answer 429
// TooManyRequests with Retry-After set to retryAfter in seconds, fraction
// kept (2.128); a zero retryAfter sends no Retry-After at all. n = 0
// cancels.
func (e *Emulator) ForceThrottle(n int, retryAfter time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.throttleNext, e.faults.throttleRetryAfter = max(0, n), max(0, retryAfter)
}

// Outage makes every Graph endpoint answer 503 serviceNotAvailable (with
// Retry-After: 1) for d from now on the emulator's clock; d <= 0 ends an
// outage. The token endpoint keeps working.
func (e *Emulator) Outage(d time.Duration) {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.outageUntil = time.Time{}
	if d > 0 {
		e.faults.outageUntil = now.Add(d)
	}
}

// SetLatency delays every Graph request by d of real time before it is
// served; 0 removes the delay.
func (e *Emulator) SetLatency(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.latency = max(0, d)
}

// actionStatuses are the success statuses SetActionStatus takes: Graph
// promises any 2XX for its actions, and its documentation shows 200, 202
// and 204.
var actionStatuses = []int{http.StatusOK, http.StatusAccepted, http.StatusNoContent}

// SetActionStatus makes every successful presence action (setPresence,
// clearPresence, the preferred presence, status message and work location
// actions) answer status with no body: 200 (the default), 202 or 204, so
// that clients are tested against each.
func (e *Emulator) SetActionStatus(status int) error {
	if !slices.Contains(actionStatuses, status) {
		return fmt.Errorf("action status %d: want 200, 202 or 204", status)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.actionStatus = status
	return nil
}

// actionStatus is the success status of a presence action now.
func (e *Emulator) actionStatus() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return max(e.faults.actionStatus, http.StatusOK)
}

// ClearFaults removes every injected fault.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.releaseEventReads()
	held := e.faults.events.held // still counted down by the reads let go
	e.faults = faults{}
	e.faults.events.held = held
}

// Faults returns the injected faults.
func (e *Emulator) Faults() FaultsView {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.faults
	v := FaultsView{
		Latency: f.latency.String(), FailNext: f.failNext, FailRate: f.failRate, ThrottleNext: f.throttleNext,
		ActionStatus: max(f.actionStatus, http.StatusOK),
	}
	if f.failNext > 0 {
		v.FailStatus = f.failStatus
	}
	if f.failRate > 0 {
		v.FailRateStatus = f.failRateStatus
	}
	if f.throttleNext > 0 && f.throttleRetryAfter > 0 {
		v.ThrottleRetryAfter = retryAfterExact(f.throttleRetryAfter)
	}
	if e.clock.Now().Before(f.outageUntil) {
		until := f.outageUntil
		v.OutageUntil = &until
	}
	return v
}

// delay waits out the injected latency; it returns false if the request
// was cancelled meanwhile (the client gave up, or Close).
func (e *Emulator) delay(r *http.Request) bool {
	e.mu.Lock()
	d := e.faults.latency
	e.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// inOutage tells whether an injected outage is on at now.
func (e *Emulator) inOutage(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return now.Before(e.faults.outageUntil)
}

// admit applies Graph's throttling and the injected failures to a presence
// request by token c; a non-nil answer must be sent instead of serving
// it. Reads count against the read budget, actions against the write
// budget; every admitted or refused request counts against its limit.
func (e *Emulator) admit(r *http.Request, c *claims) *apiError {
	now := meta(r).now
	e.mu.Lock()
	defer e.mu.Unlock()
	budget := e.throttle
	if isPresenceRead(r.Method, r.URL.Path) {
		budget = e.readThrottle
	}
	ok, wait := budget.take(budgetKey(c.TenantID, c.AppID), now)
	f := &e.faults
	switch {
	case f.failNext > 0:
		f.failNext--
		return injected(f.failStatus)
	case f.failRate > 0 && f.rng != nil && f.rng.Float64() < f.failRate:
		return injected(f.failRateStatus)
	case f.throttleNext > 0:
		f.throttleNext--
		ra := ""
		if f.throttleRetryAfter > 0 {
			ra = retryAfterExact(f.throttleRetryAfter)
		}
		return errThrottled(ra)
	case !ok:
		return errThrottled(retryAfterSeconds(wait))
	}
	return nil
}

// injected is the answer of an injected failure with status, in Graph's
// shape with the code Graph uses for it.
func injected(status int) *apiError {
	err := &apiError{status: status, message: "Injected failure (graph emulator)."}
	switch status {
	case http.StatusBadRequest:
		err.code = "BadRequest"
	case http.StatusUnauthorized:
		err.code = "InvalidAuthenticationToken"
	case http.StatusForbidden:
		err.code, err.message = "Forbidden", ""
	case http.StatusNotFound:
		err.code = "itemNotFound"
	case http.StatusConflict:
		err.code = "Conflict"
	case http.StatusTooManyRequests:
		return errThrottled("1")
	case http.StatusBadGateway:
		err.code = "badGateway"
	case http.StatusServiceUnavailable:
		err.code, err.retryAfter = "serviceNotAvailable", "1"
	case http.StatusGatewayTimeout:
		err.code = "gatewayTimeout"
	default:
		err.code = "generalException"
	}
	return err
}
