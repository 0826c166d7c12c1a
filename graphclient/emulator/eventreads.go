package emulator

import "net/http"

// eventReadFaults are the faults injected into calendar event reads (GET
// /users/{id}/events/{id}) only, so that a test can slow or fail the
// reads without touching presence or lookups.
type eventReadFaults struct {
	// hold, while set, makes every read wait until it is closed.
	hold chan struct{}
	// held counts the reads waiting on hold now.
	held int
	// failNext reads answer failStatus.
	failNext   int
	failStatus int
}

// HoldEventReads makes every calendar event read wait, after its token is
// checked, until release is called (or the client gives up, or Close):
// Graph's latency on event reads, for as long as a test wants, without a
// race against a timer. HeldEventReads tells how many wait. release is
// idempotent.
func (e *Emulator) HoldEventReads() (release func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.faults.events.hold == nil {
		e.faults.events.hold = make(chan struct{})
	}
	hold := e.faults.events.hold
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.faults.events.hold == hold {
			close(hold)
			e.faults.events.hold = nil
		}
	}
}

// HeldEventReads is how many calendar event reads wait on HoldEventReads.
func (e *Emulator) HeldEventReads() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.faults.events.held
}

// FailEventReads makes the next n calendar event reads (after their token
// is checked) fail with status, 503 if status is not a 4xx or 5xx. n = 0
// cancels.
func (e *Emulator) FailEventReads(n, status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.events.failNext, e.faults.events.failStatus = max(0, n), failureStatus(status)
}

// releaseEventReads ends a hold; e.mu must be held.
func (e *Emulator) releaseEventReads() {
	if e.faults.events.hold != nil {
		close(e.faults.events.hold)
		e.faults.events.hold = nil
	}
}

// admitEventRead applies the event read faults to r: it waits out a hold
// and returns the injected failure, if any, to answer instead.
func (e *Emulator) admitEventRead(r *http.Request) *apiError {
	e.mu.Lock()
	hold := e.faults.events.hold
	if hold != nil {
		e.faults.events.held++
	}
	e.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
		}
		e.mu.Lock()
		e.faults.events.held--
		e.mu.Unlock()
		if r.Context().Err() != nil {
			return &apiError{status: http.StatusServiceUnavailable, code: "serviceNotAvailable", message: "The request was cancelled while held."}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if f := &e.faults.events; f.failNext > 0 {
		f.failNext--
		return injected(f.failStatus)
	}
	return nil
}
