package emulator

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// maxDuration bounds what ParseDuration accepts, so that no input
// overflows time.Duration: ten years is far past any Graph limit.
const maxDuration = 10 * 366 * 24 * time.Hour

var errDurationSyntax = errors.New("not an ISO 8601 duration")

// ParseDuration reads an Edm.Duration, the ISO 8601 subset OData uses,
// such as PT15M, PT1H30M, P1D or P0DT0H5M0.5S: P, then optional days (D),
// then optionally T and hours (H), minutes (M) and seconds (S, the only
// unit that may have a fraction). Years, months and weeks (P1Y, P1M, P1W)
// are not Edm.Durations and are errors, as in Graph. Designators are upper
// case, at least one component is required, and negative durations and
// durations over ten years are errors.
func ParseDuration(s string) (time.Duration, error) {
	d, err := parseISODuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w", s, err)
	}
	return d, nil
}

func parseISODuration(s string) (time.Duration, error) {
	if len(s) < 2 || s[0] != 'P' {
		return 0, errDurationSyntax
	}
	dateUnits := []struct {
		designator byte
		seconds    float64
	}{{'D', 86400}}
	timeUnits := []struct {
		designator byte
		seconds    float64
	}{{'H', 3600}, {'M', 60}, {'S', 1}}
	total, components := 0.0, 0
	i, unit, inTime, timeComponents := 1, 0, false, 0
	for i < len(s) {
		if s[i] == 'T' {
			if inTime {
				return 0, errDurationSyntax
			}
			inTime, unit = true, 0
			i++
			continue
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		whole := s[start:i]
		fraction := ""
		if i < len(s) && s[i] == '.' {
			i++
			fstart := i
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				i++
			}
			fraction = s[fstart:i]
			if fraction == "" {
				return 0, errDurationSyntax
			}
		}
		if whole == "" || i >= len(s) || len(whole) > 12 || len(fraction) > 9 {
			return 0, errDurationSyntax
		}
		designator := s[i]
		i++
		var perUnit float64
		found := false
		if inTime {
			for unit < len(timeUnits) {
				u := timeUnits[unit]
				unit++
				if u.designator == designator {
					perUnit, found = u.seconds, true
					break
				}
			}
		} else {
			for unit < len(dateUnits) {
				u := dateUnits[unit]
				unit++
				if u.designator == designator {
					perUnit, found = u.seconds, true
					break
				}
			}
		}
		if !found || (fraction != "" && !(inTime && designator == 'S')) {
			return 0, errDurationSyntax
		}
		n := 0.0
		for _, c := range whole {
			n = n*10 + float64(c-'0')
		}
		if fraction != "" {
			scale := 0.1
			for _, c := range fraction {
				n += float64(c-'0') * scale
				scale /= 10
			}
		}
		total += n * perUnit
		components++
		if inTime {
			timeComponents++
		}
	}
	if components == 0 || (inTime && timeComponents == 0) {
		return 0, errDurationSyntax
	}
	if math.IsNaN(total) || total > maxDuration.Seconds() {
		return 0, errors.New("longer than ten years")
	}
	return time.Duration(math.Round(total * float64(time.Second))), nil
}

// FormatDuration writes d as the ISO 8601 duration Graph would, such as
// PT15M or PT1H30M5.5S.
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return "PT0S"
	}
	out := "PT"
	if h := d / time.Hour; h > 0 {
		out += fmt.Sprintf("%dH", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		out += fmt.Sprintf("%dM", m)
		d -= m * time.Minute
	}
	if d > 0 {
		out += strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S"
	}
	return out
}
