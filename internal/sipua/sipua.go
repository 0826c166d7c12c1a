// Package sipua is what the bridge's SIP user agents share: the
// adapters/sipdialog source, which subscribes to a PBX's dialogs, and the
// outputs/sip output, which publishes Teams presence to a presence
// server. It sends a request to one configured server and answers its
// digest challenge, reads granted lifetimes, and spaces retries.
package sipua

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// DialogPrefix starts the id of every dialog the bridge publishes itself
// (outputs/sip), so that a sipdialog source watching the same server
// ignores them instead of taking a Teams call for a PBX call.
const DialogPrefix = "teams-"

// Client sends requests to one SIP server.
type Client struct {
	// Client is the sipgo client requests go through.
	Client *sipgo.Client
	// Server is the host:port every request is sent to.
	Server string
	// Transport is udp or tcp.
	Transport string
	// User and Password answer 401/407 digest challenges; Password never
	// appears in an error.
	User, Password string
	// Timeout bounds one transaction, its challenge included.
	Timeout time.Duration
}

// Do sends req to the server and waits for its final answer, answering
// one digest challenge with the configured credentials.
func (c *Client) Do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req.SetDestination(c.Server)
	req.SetTransport(strings.ToUpper(c.Transport))
	res, err := c.Client.Do(ctx, req, sipgo.ClientRequestBuild)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.Method, err)
	}
	if (res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) && c.Password != "" {
		res, err = c.Client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: c.User, Password: c.Password})
		if err != nil {
			return nil, fmt.Errorf("%s with credentials: %w", req.Method, err)
		}
	}
	return res, nil
}

// Backoff is the delay before attempt n+1 after n failures: doubling from
// lo up to hi, with up to a quarter of it added at random so that many
// entities do not retry in step.
func Backoff(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if d > 0 {
		d += rand.N(d/4 + 1)
	}
	return d
}

// RefreshIn is when to refresh something granted for d: after two thirds
// of it, and at least a minute ahead for long lifetimes.
func RefreshIn(d time.Duration) time.Duration {
	return d - min(d/3, time.Minute+d/10)
}

// GrantedExpiry reads the lifetime a 2xx's Expires grants, or returns
// asked.
func GrantedExpiry(res *sip.Response, asked time.Duration) time.Duration {
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return asked
}

// Answer describes a failed request for logs: the error, or the status.
func Answer(res *sip.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	if res == nil {
		return "no answer"
	}
	return fmt.Sprintf("%d %s", res.StatusCode, res.Reason)
}

// UserToken reports whether s is a non-empty SIP user name (an extension
// or account) without escapes, at most 64 bytes.
func UserToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.!~*'+", r)) {
			return false
		}
	}
	return true
}

// Hostname reports whether s is a plausible host name or IP address
// (an IPv6 address with or without brackets).
func Hostname(s string) bool {
	if net.ParseIP(strings.Trim(s, "[]")) != nil {
		return true
	}
	if s == "" || len(s) > 253 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}
