package admin

import (
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	for _, c := range []struct {
		wait time.Duration
		want string
	}{{time.Millisecond, "1"}, {time.Second, "1"}, {1500 * time.Millisecond, "2"}, {6 * time.Second, "6"}} {
		if got := retryAfter(c.wait); got != c.want {
			t.Errorf("retryAfter(%s) = %s, want %s", c.wait, got, c.want)
		}
	}
}
