package eventlog

import (
	"log/slog"
	"sync"
	"time"
)

// refusalMemory is how long a write refused for lack of space keeps Ready
// failing when nothing else shows the store is full (an external server's
// own limit is not visible to clients).
const refusalMemory = 10 * time.Second

// refusalLogEvery is how often, at most, a store that stays full is logged
// again.
const refusalLogEvery = time.Minute

// refusals follows writes JetStream refuses for lack of space. It logs when
// refusals start and when writes succeed again, and in between only a
// count now and then, so a full store does not flood the log.
type refusals struct {
	mu     sync.Mutex
	reason string // empty while writes succeed
	since  time.Time
	last   time.Time
	logged time.Time
	count  int // refusals since logged
}

// refused notes a refused write.
func (r *refusals) refused(log *slog.Logger, reason string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.reason == "":
		log.Warn("JetStream refuses writes for lack of space; ingest answers 503 until space returns", "reason", reason)
		r.since, r.logged, r.count = now, now, 0
	case now.Sub(r.logged) >= refusalLogEvery:
		log.Warn("JetStream still refuses writes for lack of space", "reason", reason, "refused", r.count, "since", r.since)
		r.logged, r.count = now, 0
	}
	r.reason, r.last = reason, now
	r.count++
}

// stored notes a successful write, which ends a run of refusals.
func (r *refusals) stored(log *slog.Logger, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reason == "" {
		return
	}
	log.Info("JetStream takes writes again", "full_for", now.Sub(r.since).Round(time.Second))
	r.reason = ""
}

// recent returns the reason of a refusal within refusalMemory, if any.
func (r *refusals) recent(now time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reason != "" && now.Sub(r.last) < refusalMemory {
		return r.reason
	}
	return ""
}
