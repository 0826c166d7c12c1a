package graphclient

import (
	"strconv"
	"strings"
	"time"
)

// FormatDuration writes d as an ISO 8601 duration such as PT15M or PT1H30M,
// to whole seconds.
func FormatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d <= 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteString("PT")
	if h := int64(d / time.Hour); h > 0 {
		b.WriteString(strconv.FormatInt(h, 10) + "H")
		d -= time.Duration(h) * time.Hour
	}
	if m := int64(d / time.Minute); m > 0 {
		b.WriteString(strconv.FormatInt(m, 10) + "M")
		d -= time.Duration(m) * time.Minute
	}
	if s := int64(d / time.Second); s > 0 {
		b.WriteString(strconv.FormatInt(s, 10) + "S")
	}
	return b.String()
}
