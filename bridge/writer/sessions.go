package writer

import (
	"hash/fnv"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// Keep-alives are driven by deadlines. A session becomes due for a
// refresh between a half and two thirds of its expiration (refreshAt: a
// point fixed per user, so sessions set together do not all come due
// together) and is then refreshed whenever no change waits; once less
// than a sixth of its expiration is left, plus the time the budget needs
// to send every due keep-alive (urgent), the keep-alives go ahead of the
// changes, earliest expiry first, so a stream of changes never lets a
// session lapse. What that costs is bounded by sessionCapacity, which the
// writer logs when it starts and warns about once when more sessions are
// live (sessionCount).

// urgentShare: a session's keep-alive goes ahead of every change once
// less than 1/urgentShare of its expiration is left, plus the time the
// budget needs to send the keep-alives due.
const urgentShare = 6

// refreshAt is when a session told becomes due for a refresh: between a
// half and two thirds of the expiration, at a point fixed by the user id.
func refreshAt(userID string, told *state.Told, expiration time.Duration) time.Time {
	h := fnv.New32a()
	h.Write([]byte(userID))
	spread := time.Duration(float64(expiration/6) * float64(h.Sum32()%1024) / 1024)
	return told.At.Add(expiration/2 + spread)
}

// expiresAt is when the session told expires.
func expiresAt(told *state.Told, expiration time.Duration) time.Time {
	if told.Expires.IsZero() {
		return told.At.Add(expiration)
	}
	return told.Expires
}

// urgent reports whether keep-alives can wait no longer at now: the
// earliest of due keep-alives expires at expiry, closer than the time a
// budget of perSecond calls a second needs to send them and one more,
// plus a sixth of the expiration to spare.
func urgent(now, expiry time.Time, due int, perSecond float64, expiration time.Duration) bool {
	send := time.Duration(float64(due+1) / perSecond * float64(time.Second))
	return !now.Before(expiry.Add(-send - expiration/urgentShare))
}

// hasSession reports whether Graph holds an app session for st's user.
func hasSession(st state.UserState) bool { return st.Told != nil && st.Told.Pair != nil }

// toldPair is the pair Graph was told, nil for none.
func toldPair(t *state.Told) *adapters.Pair {
	if t == nil {
		return nil
	}
	return t.Pair
}

// sessionCount counts the users Graph holds an app session for (live)
// against how many the budget keeps alive (capacity).
type sessionCount struct {
	live, capacity int
	warned         bool
}

// change counts a user's session going from had to has; it reports true
// once, the first time more sessions are live than the capacity.
func (c *sessionCount) change(had, has bool) (warn bool) {
	if had {
		c.live--
	}
	if has {
		c.live++
	}
	if c.live > c.capacity && !c.warned {
		c.warned = true
		return true
	}
	return false
}
