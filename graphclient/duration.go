package graphclient

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The range Graph accepts for setPresence's expirationDuration.
const (
	MinExpiration = 5 * time.Minute
	MaxExpiration = 4 * time.Hour
)

// FormatDuration writes d as an ISO 8601 duration of hours, minutes and
// seconds, such as PT5M, PT1H30M or PT4H, rounded to whole seconds. Zero
// and negative durations are PT0S.
func FormatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d <= 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteString("PT")
	for _, unit := range []struct {
		size time.Duration
		name string
	}{{time.Hour, "H"}, {time.Minute, "M"}, {time.Second, "S"}} {
		if n := d / unit.size; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + unit.name)
			d -= n * unit.size
		}
	}
	return b.String()
}

// expirationDuration checks a setPresence expiration and writes it for
// Graph: 0 is Graph's default of five minutes; anything outside 5m..4h is
// an error wrapping ErrInvalidExpiration.
func expirationDuration(d time.Duration) (string, error) {
	if d == 0 {
		d = MinExpiration
	}
	if d < MinExpiration || d > MaxExpiration {
		return "", fmt.Errorf("%w (got %s)", ErrInvalidExpiration, d)
	}
	return FormatDuration(d), nil
}
