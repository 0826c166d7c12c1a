package adapters

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"math"
	"strconv"
	"strings"
	"time"
)

// Sign returns the HMAC of msg under key with the hash h.
func Sign(h func() hash.Hash, key, msg []byte) []byte {
	mac := hmac.New(h, key)
	mac.Write(msg)
	return mac.Sum(nil)
}

// SignHex returns the lower-case hex HMAC of msg.
func SignHex(h func() hash.Hash, key, msg []byte) string {
	return hex.EncodeToString(Sign(h, key, msg))
}

// SignBase64 returns the standard base64 HMAC of msg.
func SignBase64(h func() hash.Hash, key, msg []byte) string {
	return base64.StdEncoding.EncodeToString(Sign(h, key, msg))
}

// Equal compares two signatures in constant time.
func Equal(got, want string) bool {
	return hmac.Equal([]byte(got), []byte(want))
}

// DefaultReplayWindow is how far a signed timestamp may be from now.
const DefaultReplayWindow = 5 * time.Minute

// CheckTimestamp parses a Unix timestamp header (seconds, or milliseconds
// when unit is time.Millisecond) and rejects it with a 401 when it is
// missing or further than window from now.
func CheckTimestamp(header string, unit time.Duration, now time.Time, window time.Duration) (time.Time, error) {
	if window <= 0 {
		window = DefaultReplayWindow
	}
	n, err := strconv.ParseInt(strings.TrimSpace(header), 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/int64(unit) {
		return time.Time{}, Unauthorized("missing or malformed signature timestamp")
	}
	at := time.Unix(0, n*int64(unit))
	if d := now.Sub(at); d > window || d < -window {
		return time.Time{}, Unauthorized("signature timestamp is %s away from now (window %s): stale or replayed", d.Round(time.Second).Abs(), window)
	}
	return at, nil
}

// MapStates merges a vendor's default state mapping with the configured
// overrides and checks that every target is a canonical call state.
func MapStates(defaults, overrides map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(defaults)+len(overrides))
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range overrides {
		if !contains(statesByType[TypeCall], v) && v != "" {
			return nil, BadRequest("states.%s: %q is not a call state (ringing, active, held, ended, or empty to ignore)", k, v)
		}
		out[k] = v
	}
	return out, nil
}
