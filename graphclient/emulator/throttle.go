package emulator

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// limiter is one of Graph's presence throttling budgets: per application
// per tenant, at most limit requests in each fixed window. A window opens
// with the first request after the previous one closed and covers
// [start, start+window): a request exactly at start+window opens the next
// window. Every request counts, throttled ones included, as in Graph. The
// closed windows are kept (the last maxWindowHistory per application) so
// that tests can see how many requests each window held.
type limiter struct {
	limit   int
	window  time.Duration
	windows map[string]*fixedWindow // open window, by tenant + "/" + client id
	history []ThrottleWindow        // closed windows, oldest first
}

type fixedWindow struct {
	start     time.Time
	count     int
	throttled int
}

// maxWindowHistory bounds the closed windows a limiter keeps: at 30 s
// windows, over eight hours of one application's requests.
const maxWindowHistory = 1000

// ThrottleWindow is one fixed throttling window of one application in one
// tenant: the requests it counted (throttled ones included) and how many
// of them were refused with 429.
type ThrottleWindow struct {
	Tenant    string    `json:"tenant"`
	ClientID  string    `json:"clientId"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Requests  int       `json:"requests"`
	Throttled int       `json:"throttled"`
}

func newLimiter(t Throttle) *limiter {
	return &limiter{limit: t.Limit, window: t.Window, windows: map[string]*fixedWindow{}}
}

// take counts one request of key at now. Over the limit it returns false
// and how long until the window closes.
func (l *limiter) take(key string, now time.Time) (ok bool, wait time.Duration) {
	w := l.windows[key]
	if w == nil || !now.Before(w.start.Add(l.window)) || now.Before(w.start) {
		if w != nil {
			l.close(key, w)
		}
		w = &fixedWindow{start: now}
		l.windows[key] = w
	}
	w.count++
	if w.count <= l.limit {
		return true, 0
	}
	w.throttled++
	return false, w.start.Add(l.window).Sub(now)
}

// close moves a window into the history.
func (l *limiter) close(key string, w *fixedWindow) {
	l.history = append(l.history, l.view(key, w))
	if over := len(l.history) - maxWindowHistory*max(1, len(l.windows)); over > 0 {
		l.history = append(l.history[:0:0], l.history[over:]...)
	}
}

func (l *limiter) view(key string, w *fixedWindow) ThrottleWindow {
	tenant, client, _ := strings.Cut(key, "/")
	return ThrottleWindow{Tenant: tenant, ClientID: client, Start: w.start, End: w.start.Add(l.window), Requests: w.count, Throttled: w.throttled}
}

// all returns the closed windows and the open ones, ordered by start.
func (l *limiter) all() []ThrottleWindow {
	out := append([]ThrottleWindow{}, l.history...)
	for key, w := range l.windows {
		out = append(out, l.view(key, w))
	}
	sortWindows(out)
	return out
}

func sortWindows(ws []ThrottleWindow) {
	slices.SortStableFunc(ws, func(a, b ThrottleWindow) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Tenant+"/"+a.ClientID, b.Tenant+"/"+b.ClientID)
	})
}

// budgetKey names an application in a tenant for the limiters.
func budgetKey(tenant, clientID string) string { return strings.ToLower(tenant) + "/" + clientID }

// isPresenceRead tells whether a throttled request is a presence read
// (GET presence, the presence list, getPresencesByUserId), which has its
// own budget apart from the presence actions (setPresence and the rest).
func isPresenceRead(method, path string) bool {
	return method == "GET" || strings.HasSuffix(path, "/getPresencesByUserId")
}

// ReadWindows returns the throttling windows of the presence reads
// (GET presence, the presence list, getPresencesByUserId) so far, closed
// and open, ordered by start: how many read requests each application
// made in each window of each tenant. Reset and SetReadThrottle start
// them afresh.
func (e *Emulator) ReadWindows() []ThrottleWindow {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.readThrottle.all()
}

// WriteWindows is ReadWindows for the presence actions (setPresence,
// clearPresence and the others).
func (e *Emulator) WriteWindows() []ThrottleWindow {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.throttle.all()
}

// SetReadThrottle replaces the presence read budget (read_throttle), per
// application per tenant; its windows start afresh.
func (e *Emulator) SetReadThrottle(t Throttle) error {
	if err := t.check("read_throttle"); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.readThrottle = newLimiter(t)
	return nil
}

// SetWriteThrottle replaces the presence action budget (throttle), per
// application per tenant; its windows start afresh.
func (e *Emulator) SetWriteThrottle(t Throttle) error {
	if err := t.check("throttle"); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.throttle = newLimiter(t)
	return nil
}

// Throttles returns the read and write budgets in force.
func (e *Emulator) Throttles() (reads, writes Throttle) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Throttle{e.readThrottle.limit, e.readThrottle.window}, Throttle{e.throttle.limit, e.throttle.window}
}

// check validates a budget, naming it by key.
func (t Throttle) check(key string) error {
	var problems []string
	if t.Limit < 1 {
		problems = append(problems, key+".limit: must be positive")
	}
	if t.Window <= 0 {
		problems = append(problems, key+".window: must be positive")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// retryAfterSeconds writes a Retry-After value for wait: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(wait time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
}

// retryAfterExact writes wait as seconds with the fraction kept, such as
// 2.128, the way Graph's throttling documentation shows it.
func retryAfterExact(wait time.Duration) string {
	if wait <= 0 {
		return "0"
	}
	return strconv.FormatFloat(wait.Seconds(), 'f', -1, 64)
}

// errThrottled is Graph's 429 answer.
func errThrottled(retryAfter string) *apiError {
	return &apiError{status: 429, code: "TooManyRequests", message: "Please retry again later.", retryAfter: retryAfter}
}

// throttleView is one budget as GET /_emulator/throttle shows it.
type throttleView struct {
	Limit   int              `json:"limit"`
	Window  string           `json:"window"`
	Windows []ThrottleWindow `json:"windows"`
}

// adminThrottle serves GET /_emulator/throttle: both budgets with every
// window they counted.
func (e *Emulator) adminThrottle(w http.ResponseWriter, _ *http.Request) {
	reads, writes := e.Throttles()
	writeJSON(w, http.StatusOK, map[string]throttleView{
		"reads":  {Limit: reads.Limit, Window: reads.Window.String(), Windows: e.ReadWindows()},
		"writes": {Limit: writes.Limit, Window: writes.Window.String(), Windows: e.WriteWindows()},
	})
}

// adminSetThrottle serves POST /_emulator/throttle:
// {"reads":{"limit":N,"window":"30s"},"writes":{…}}; a budget left out
// stays, one given starts fresh windows.
func (e *Emulator) adminSetThrottle(w http.ResponseWriter, r *http.Request) {
	type budget struct {
		Limit  int          `json:"limit"`
		Window jsonDuration `json:"window"`
	}
	var body struct {
		Reads  *budget `json:"reads"`
		Writes *budget `json:"writes"`
	}
	if err := decodeAdmin(r, &body); err != nil {
		writeError(w, r, err)
		return
	}
	var errs []error
	if b := body.Reads; b != nil {
		errs = append(errs, Throttle{b.Limit, time.Duration(b.Window)}.check("reads"))
	}
	if b := body.Writes; b != nil {
		errs = append(errs, Throttle{b.Limit, time.Duration(b.Window)}.check("writes"))
	}
	if err := errors.Join(errs...); err != nil {
		writeError(w, r, badRequest("BadRequest", "%s", err.Error()))
		return
	}
	if b := body.Reads; b != nil {
		_ = e.SetReadThrottle(Throttle{b.Limit, time.Duration(b.Window)}) // checked above
	}
	if b := body.Writes; b != nil {
		_ = e.SetWriteThrottle(Throttle{b.Limit, time.Duration(b.Window)})
	}
	e.adminThrottle(w, r)
}
