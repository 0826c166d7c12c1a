package writer

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// gate holds a tenant's Graph calls back while Graph asks for it: after
// a 429 until its Retry-After has passed, then one call probes alone
// until Graph answers a call sent after the pause with anything but a
// 429; and while Graph refuses the whole tenant (a missing permission or
// consent, a token it does not accept), when one call probes each time
// the wait is over, the wait doubling after every refused probe. The
// writer's loop owns it; only the refusal is read from other goroutines
// (Pool.TenantPaused).
type gate struct {
	pausedUntil time.Time
	refusal     atomic.Pointer[refusal]
	// probeEvery is the wait before the next probe of a refused tenant,
	// from probeFirst doubling up to probeMax.
	probeEvery, probeFirst, probeMax time.Duration
	log                              *slog.Logger
}

// refusal is why and until when a refused tenant's calls wait.
type refusal struct {
	reason string
	until  time.Time
}

// allows reports whether the gate lets a call start at now, with
// inFlight calls under way: none during a
// 429's pause and, once it is over, one probe alone until Graph answers
// it; while the tenant is refused, only one probe once the wait is over.
func (g *gate) allows(now time.Time, inFlight int) bool {
	if !g.pausedUntil.IsZero() && (now.Before(g.pausedUntil) || inFlight > 0) {
		return false
	}
	if r := g.refusal.Load(); r != nil && (now.Before(r.until) || inFlight > 0) {
		return false
	}
	return true
}

// pause holds every call back until until; it reports whether that
// lengthened the pause.
func (g *gate) pause(until time.Time) bool {
	if !until.After(g.pausedUntil) {
		return false
	}
	g.pausedUntil = until
	return true
}

// answered takes in Graph's answer, other than a 429, to a call sent at
// sent (zero: unknown): an answer to a call sent once the pause was over
// ends it.
func (g *gate) answered(sent time.Time) {
	if !sent.IsZero() && !sent.Before(g.pausedUntil) {
		g.pausedUntil = time.Time{}
	}
}

// refuse takes in a refusal of the tenant at now: the calls wait
// probeFirst, then one call probes; each refused probe doubles the wait
// up to probeMax. The reason is logged once, when the refusal starts.
// Answers to calls sent before the wait began change nothing.
func (g *gate) refuse(now time.Time, err error) {
	r := g.refusal.Load()
	switch {
	case r == nil:
		g.probeEvery = g.probeFirst
		g.log.Error("graph refuses the tenant (missing permission or consent, or a token it does not accept); calls paused, desired states kept",
			"err", err, "probe_in", g.probeEvery)
	case now.Before(r.until):
		return
	default:
		g.probeEvery = min(2*g.probeEvery, g.probeMax)
		g.log.Debug("graph still refuses the tenant", "err", err, "probe_in", g.probeEvery)
	}
	g.refusal.Store(&refusal{reason: err.Error(), until: now.Add(g.probeEvery)})
}

// accepted ends a refusal once Graph takes a call in again.
func (g *gate) accepted() {
	if g.refusal.Swap(nil) != nil {
		g.log.Info("graph accepts the tenant's calls again")
	}
}

// refused returns why and until when the tenant's calls wait for a
// refusal; the reason is empty when they do not. Safe on any goroutine.
func (g *gate) refused() (reason string, until time.Time) {
	if r := g.refusal.Load(); r != nil {
		return r.reason, r.until
	}
	return "", time.Time{}
}
