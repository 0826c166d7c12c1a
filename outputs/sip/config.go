package sip

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/presence-bridge/presence-bridge/internal/sipua"
)

// MaxPeople bounds the people one output publishes for.
const MaxPeople = 100000

// Config is a sip output's own settings (the `sip:` block of an entry of
// `outputs:`), secrets resolved; zero values take the defaults of
// SetDefaults.
type Config struct {
	// Name is the output's name, for errors and logs.
	Name string `yaml:"-"`
	// Server is the host:port of the presence server (or an outbound
	// proxy in front of it) every PUBLISH is sent to.
	Server string `yaml:"server"`
	// Transport is udp (the default) or tcp.
	Transport string `yaml:"transport"`
	// Domain is the SIP domain of extensions given bare and of the
	// bridge's From; the server's host by default.
	Domain string `yaml:"domain"`
	// User is the bridge's SIP user name (From, digest user name);
	// "presence-bridge" by default.
	User string `yaml:"user"`
	// Password answers 401/407 digest challenges. It never appears in
	// logs, errors or metrics.
	Password string `yaml:"password"`
	// Expires is the publication lifetime asked for (10m by default, at
	// least 10s); each publication is refreshed before it runs out.
	Expires time.Duration `yaml:"expires"`
	// Dialog publishes Event: dialog too, so that busy-lamp keys light for
	// Teams calls; on by default.
	Dialog *bool `yaml:"dialog"`
	// People maps a person (UPN or Entra object id, as the watcher names
	// them) to an extension or SIP URI. By default the directory's ext:
	// keys, each to the person it names.
	Extensions map[string]string `yaml:"extensions"`
	// Mapping replaces entries of DefaultMapping.
	Mapping map[string]Rule `yaml:"mapping"`
	// RequestTimeout bounds one SIP transaction; 5s by default.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Backoff spaces the attempts after a failed publication: from Min
	// (1s by default) doubling up to Max (2m).
	Backoff Backoff `yaml:"backoff"`
}

// Backoff bounds the delay between attempts.
type Backoff struct {
	Min time.Duration `yaml:"min"`
	Max time.Duration `yaml:"max"`
}

// String leaves the password out, should a Config be printed.
func (c Config) String() string {
	c.Password = ""
	type plain Config
	return fmt.Sprintf("%+v", plain(c))
}

// SetDefaults fills the keys left out.
func (c *Config) SetDefaults() {
	if c.Transport == "" {
		c.Transport = "udp"
	}
	if c.Domain == "" {
		c.Domain, _, _ = net.SplitHostPort(c.Server)
	}
	if c.User == "" {
		c.User = "presence-bridge"
	}
	if c.Expires == 0 {
		c.Expires = 10 * time.Minute
	}
	if c.Dialog == nil {
		on := true
		c.Dialog = &on
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.Backoff.Min == 0 {
		c.Backoff.Min = time.Second
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = 2 * time.Minute
	}
}

// Problems lists what is wrong with c, defaults applied, each starting
// with its key ("server: ..."). It never quotes the password.
func (c Config) Problems() []string {
	var p []string
	check := func(ok bool, key, format string, args ...any) {
		if !ok {
			p = append(p, key+": "+fmt.Sprintf(format, args...))
		}
	}
	host, port, err := net.SplitHostPort(c.Server)
	n, perr := strconv.Atoi(port)
	check(err == nil && perr == nil && n > 0 && n <= 65535 && sipua.Hostname(host), "server", "must be host:port of the presence server (got %q)", clipText(c.Server))
	check(c.Transport == "udp" || c.Transport == "tcp", "transport", "must be udp or tcp (got %q)", clipText(c.Transport))
	check(sipua.Hostname(c.Domain), "domain", "must be a host name or address (got %q)", clipText(c.Domain))
	check(sipua.UserToken(c.User), "user", "must be a SIP user name (letters, digits, -_.!~*'+)")
	check(c.Expires >= 10*time.Second && c.Expires <= 24*time.Hour, "expires", "must be between 10s and 24h (got %s)", c.Expires)
	check(c.RequestTimeout > 0 && c.RequestTimeout <= time.Minute, "request_timeout", "must be between 0s and 1m (got %s)", c.RequestTimeout)
	check(c.Backoff.Min > 0 && c.Backoff.Max >= c.Backoff.Min, "backoff", "needs 0 < min <= max")
	check(len(c.Extensions) <= MaxPeople, "extensions", "at most %d", MaxPeople)
	keys := make([]string, 0, len(c.Extensions))
	for k := range c.Extensions {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	seen := map[string]string{}
	for _, k := range keys {
		at := "extensions." + k
		if k == "" || len(k) > 256 {
			p = append(p, fmt.Sprintf("extensions: a person's name must be 1 to 256 bytes (got %q)", clipText(k)))
			continue
		}
		uri, err := c.entity(c.Extensions[k])
		if err != nil {
			p = append(p, at+": "+err.Error())
			continue
		}
		if other, ok := seen[uri.String()]; ok {
			p = append(p, fmt.Sprintf("%s: %s is already extensions.%s", at, uri.String(), other))
		}
		seen[uri.String()] = k
	}
	p = append(p, mappingProblems(c.Mapping)...)
	return p
}

// entity reads an extension or a sip: URI.
func (c Config) entity(s string) (sip.Uri, error) {
	var uri sip.Uri
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return uri, fmt.Errorf("is empty")
	case len(s) > maxEntity:
		return uri, fmt.Errorf("longer than %d bytes", maxEntity)
	case strings.HasPrefix(strings.ToLower(s), "sip:"):
		if err := sip.ParseUri(s, &uri); err != nil || !sipua.UserToken(uri.User) || !sipua.Hostname(uri.Host) {
			return uri, fmt.Errorf("%q is not a sip:user@host URI", clipText(s))
		}
		return sip.Uri{Scheme: "sip", User: uri.User, Host: uri.Host, Port: uri.Port}, nil
	case sipua.UserToken(s):
		return sip.Uri{Scheme: "sip", User: s, Host: c.Domain}, nil
	default:
		return uri, fmt.Errorf("%q is neither a SIP URI nor an extension", clipText(s))
	}
}
