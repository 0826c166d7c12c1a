package emulator

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// faults are the failures injected through the admin API.
type faults struct {
	failNext      int
	failStatus    int
	throttleNext  int
	throttleAfter time.Duration
	outageUntil   time.Time
	latency       time.Duration
}

// window is one fixed throttling window of one application.
type window struct {
	start time.Time
	count int
}

// admit applies injected faults and Graph's throttling to a presence
// request, answering it itself and returning false when it must fail.
// Throttled requests still count against the limit, as in Graph.
func (e *Emulator) admit(w http.ResponseWriter, r *http.Request, tok tokenInfo) bool {
	now := e.clock.Now()
	e.mu.Lock()
	f := &e.faults
	latency := f.latency
	var status int
	var code, message string
	var retryAfter time.Duration
	switch {
	case now.Before(f.outageUntil):
		status, code, message = http.StatusServiceUnavailable, "serviceNotAvailable", "The service is temporarily unavailable."
	case f.failNext > 0:
		f.failNext--
		status, code, message = f.failStatus, statusCode(f.failStatus), "Injected failure."
	case f.throttleNext > 0:
		f.throttleNext--
		status, retryAfter = http.StatusTooManyRequests, f.throttleAfter
	}
	key := tok.tenant + "/" + tok.appID
	win := e.windows[key]
	if win == nil || !now.Before(win.start.Add(e.cfg.Throttle.Window)) {
		win = &window{start: now}
		e.windows[key] = win
	}
	win.count++
	if status == 0 && win.count > e.cfg.Throttle.Limit {
		status, retryAfter = http.StatusTooManyRequests, win.start.Add(e.cfg.Throttle.Window).Sub(now)
	}
	e.mu.Unlock()
	if latency > 0 {
		time.Sleep(latency)
	}
	switch status {
	case 0:
		return true
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
		writeGraphError(w, r, status, "TooManyRequests", "Please retry again later.", now)
	default:
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		writeGraphError(w, r, status, code, message, now)
	}
	return false
}

func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "InvalidArgument"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusNotFound:
		return "itemNotFound"
	case http.StatusServiceUnavailable:
		return "serviceNotAvailable"
	case http.StatusGatewayTimeout:
		return "gatewayTimeout"
	default:
		return "generalException"
	}
}

// FailNext makes the next n presence requests fail with status.
func (e *Emulator) FailNext(n, status int) {
	e.mu.Lock()
	e.faults.failNext, e.faults.failStatus = n, status
	e.mu.Unlock()
}

// ForceThrottle makes the next n presence requests answer 429 with the
// given Retry-After.
func (e *Emulator) ForceThrottle(n int, retryAfter time.Duration) {
	e.mu.Lock()
	e.faults.throttleNext, e.faults.throttleAfter = n, retryAfter
	e.mu.Unlock()
}

// Outage makes every presence request answer 503 for d.
func (e *Emulator) Outage(d time.Duration) {
	e.mu.Lock()
	e.faults.outageUntil = e.clock.Now().Add(d)
	e.mu.Unlock()
}

// SetLatency delays every presence request by d.
func (e *Emulator) SetLatency(d time.Duration) {
	e.mu.Lock()
	e.faults.latency = d
	e.mu.Unlock()
}
