package sipdialog

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/internal/sipua"
)

// MaxEntities bounds the entities one source subscribes to.
const MaxEntities = 2000

// Config is one sipdialog source, secrets already resolved.
type Config struct {
	// PBX is the host:port every request is sent to (the registrar and
	// the subscription server, or an outbound proxy in front of them).
	PBX string `yaml:"pbx"`
	// Transport is udp (the default) or tcp.
	Transport string `yaml:"transport"`
	// Listen is the local host:port the bridge receives NOTIFYs on.
	Listen string `yaml:"listen"`
	// ContactHost is the host the PBX reaches the bridge at, when it is
	// not Listen's host (a wildcard address, NAT).
	ContactHost string `yaml:"contact_host"`
	// Domain is the SIP domain of the bridge's account and of entities
	// given as bare extensions; the PBX's host by default.
	Domain string `yaml:"domain"`
	// User is the bridge's SIP user name (From, Contact, digest user
	// name); "presence-bridge" by default.
	User string `yaml:"user"`
	// Password answers 401/407 digest challenges. It never appears in
	// logs or errors.
	Password string `yaml:"password"`
	// Register makes the bridge REGISTER as User before subscribing.
	Register bool `yaml:"register"`
	// RegisterExpiry is the registration lifetime asked for; 10m by
	// default.
	RegisterExpiry time.Duration `yaml:"register_expiry"`
	// SubscribeExpiry is the subscription lifetime asked for; 10m by
	// default, at least 10s. Subscriptions are refreshed before the
	// lifetime the PBX grants runs out.
	SubscribeExpiry time.Duration `yaml:"subscribe_expiry"`
	// KeepaliveInterval is how often one subscription, each in turn, is
	// refreshed ahead of time to check that the PBX still holds it: a PBX
	// that restarted answers 481, one that went away does not answer, and
	// then every subscription is refreshed (and, where lost, subscribed
	// again). 30s by default, at least 1s.
	KeepaliveInterval time.Duration `yaml:"keepalive_interval"`
	// RequestTimeout bounds one SIP transaction; 10s by default.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Backoff spaces the attempts to win back a lost subscription or
	// registration: from Min (1s by default) doubling up to Max (2m).
	Backoff Backoff `yaml:"backoff"`
	// LapseAfter is how many failed attempts to win back a lost
	// subscription the bridge makes before it ends the entity's open calls;
	// 1 by default.
	LapseAfter int `yaml:"lapse_after"`
	// Entities are the extensions or URIs watched.
	Entities []Entity `yaml:"entities"`
}

// Backoff bounds the delay between attempts.
type Backoff struct {
	Min time.Duration `yaml:"min"`
	Max time.Duration `yaml:"max"`
}

// Entity is one watched extension and the person it belongs to.
type Entity struct {
	// Entity is a SIP URI (sip:1001@pbx.example) or a bare extension
	// (1001), which is taken in Config.Domain.
	Entity string `yaml:"entity"`
	// User is the person, as events name them: a UPN, or a directory key.
	// By default "ext:<number>" for a numeric extension, else the
	// normalised URI.
	User string `yaml:"user"`
}

// withDefaults returns c with its defaults filled in.
func (c Config) withDefaults() Config {
	if c.Transport == "" {
		c.Transport = "udp"
	}
	c.Transport = strings.ToLower(c.Transport)
	if c.Domain == "" {
		c.Domain, _, _ = net.SplitHostPort(c.PBX)
	}
	if c.User == "" {
		c.User = "presence-bridge"
	}
	if c.RegisterExpiry == 0 {
		c.RegisterExpiry = 10 * time.Minute
	}
	if c.SubscribeExpiry == 0 {
		c.SubscribeExpiry = 10 * time.Minute
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = 30 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Backoff.Min == 0 {
		c.Backoff.Min = time.Second
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = 2 * time.Minute
	}
	if c.LapseAfter == 0 {
		c.LapseAfter = 1
	}
	return c
}

// validate checks c after defaults, naming the key of every problem.
func (c Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if err := hostPort(c.PBX); err != nil {
		bad("pbx", "%v", err)
	}
	if c.Transport != "udp" && c.Transport != "tcp" {
		bad("transport", "must be udp or tcp, not %q", clip(c.Transport))
	}
	if err := hostPort(c.Listen); err != nil {
		bad("listen", "%v", err)
	} else if host, _, _ := net.SplitHostPort(c.Listen); c.ContactHost == "" && (host == "" || net.ParseIP(host).IsUnspecified()) {
		bad("contact_host", "needed when listen has no specific address (%q)", c.Listen)
	}
	if !sipua.UserToken(c.User) {
		bad("user", "must be a SIP user name (letters, digits, -_.!~*'+)")
	}
	if c.Domain == "" || !sipua.Hostname(c.Domain) {
		bad("domain", "must be a host name or address")
	}
	if c.ContactHost != "" && !sipua.Hostname(c.ContactHost) {
		bad("contact_host", "must be a host name or address")
	}
	if c.Register && c.RegisterExpiry < 10*time.Second {
		bad("register_expiry", "must be at least 10s")
	}
	if c.SubscribeExpiry < 10*time.Second {
		bad("subscribe_expiry", "must be at least 10s")
	}
	if c.KeepaliveInterval < time.Second {
		bad("keepalive_interval", "must be at least 1s")
	}
	if c.RequestTimeout < 0 {
		bad("request_timeout", "must not be negative")
	}
	if c.Backoff.Min < 0 || c.Backoff.Max < c.Backoff.Min {
		bad("backoff", "needs 0 <= min <= max")
	}
	if c.LapseAfter < 0 {
		bad("lapse_after", "must not be negative")
	}
	if len(c.Entities) == 0 {
		bad("entities", "must list at least one extension or URI")
	}
	if len(c.Entities) > MaxEntities {
		bad("entities", "at most %d", MaxEntities)
	}
	seen := make(map[string]bool)
	for i, e := range c.Entities {
		key := fmt.Sprintf("entities[%d]", i)
		uri, err := c.entityURI(e.Entity)
		if err != nil {
			bad(key+".entity", "%v", err)
			continue
		}
		if seen[uri.String()] {
			bad(key+".entity", "%s is listed twice", uri.String())
		}
		seen[uri.String()] = true
		if len(e.User) > adapters.MaxUserLength {
			bad(key+".user", "longer than %d", adapters.MaxUserLength)
		}
	}
	return errors.Join(errs...)
}

// entityURI reads an entity: a sip: or sips: URI, or an extension taken
// in the configured domain.
func (c Config) entityURI(s string) (sip.Uri, error) {
	var uri sip.Uri
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return uri, errors.New("is empty")
	case len(s) > maxAttr:
		return uri, fmt.Errorf("longer than %d", maxAttr)
	case strings.HasPrefix(strings.ToLower(s), "sip:") || strings.HasPrefix(strings.ToLower(s), "sips:"):
		if err := sip.ParseUri(s, &uri); err != nil || uri.Host == "" || uri.User == "" || !sipua.UserToken(uri.User) || !sipua.Hostname(uri.Host) {
			return uri, fmt.Errorf("%q is not a sip:user@host URI", clip(s))
		}
		return uri, nil
	case sipua.UserToken(s):
		return sip.Uri{Scheme: "sip", User: s, Host: c.Domain}, nil
	default:
		return uri, fmt.Errorf("%q is neither a SIP URI nor an extension", clip(s))
	}
}

// userOf is the person an entity's events name.
func userOf(e Entity, uri sip.Uri) string {
	if e.User != "" {
		return e.User
	}
	if _, err := strconv.ParseUint(uri.User, 10, 64); err == nil {
		return "ext:" + uri.User
	}
	return adapters.NormalizeIdentity("sip:" + uri.User + "@" + uri.Host)
}

func hostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", clip(s))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has no valid port", clip(s))
	}
	if host != "" && !sipua.Hostname(host) {
		return fmt.Errorf("%q has no valid host", clip(s))
	}
	return nil
}
