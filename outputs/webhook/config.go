package webhook

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Config is a webhook output's own settings (the `webhook:` block of an
// entry of `outputs:`); zero values take the defaults of SetDefaults.
type Config struct {
	// Name is the output's name, for errors, logs and the queue's bucket.
	Name string `yaml:"-"`
	// URL receives the POSTs: http or https.
	URL string `yaml:"url"`
	// Secret is one or more whsec_ secrets separated by spaces; every
	// request is signed with each (key rotation). SecretFile and
	// SecretEnv are the other places it may come from; the configuration
	// replaces them by their value.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	SecretEnv  string `yaml:"secret_env"`
	// Timeout bounds one request, the response's body included.
	Timeout time.Duration `yaml:"timeout"`
	// Concurrency is how many requests may be under way at once.
	Concurrency int `yaml:"concurrency"`
	// MaxAttempts is how many times a change is tried before it becomes a
	// dead letter; 0 takes the length of the Standard Webhooks schedule.
	MaxAttempts int `yaml:"max_attempts"`
	// MaxQueued is how many people may have a change waiting; past it the
	// one waiting longest is dropped.
	MaxQueued int `yaml:"max_queued"`
	// Replicas of the queue's bucket.
	Replicas int `yaml:"-"`
}

// The defaults.
const (
	DefaultTimeout     = 15 * time.Second
	DefaultConcurrency = 32
	DefaultMaxQueued   = 100_000
)

// SetDefaults fills the keys left out.
func (c *Config) SetDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = len(Schedule)
	}
	if c.MaxQueued == 0 {
		c.MaxQueued = DefaultMaxQueued
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
}

// Problems lists what is wrong with c, defaults applied, each starting
// with its key ("url: ..."). No problem quotes a secret.
func (c Config) Problems() []string {
	var p []string
	check := func(ok bool, key, format string, args ...any) {
		if !ok {
			p = append(p, key+": "+fmt.Sprintf(format, args...))
		}
	}
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		p = append(p, "url: required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		p = append(p, "url: must be an absolute http or https URL")
	case u.User != nil:
		p = append(p, "url: must not carry credentials (use the secret)")
	}
	if _, err := Secrets(c.Secret); err != nil {
		p = append(p, "secret: "+err.Error())
	}
	check(c.Timeout >= 100*time.Millisecond && c.Timeout <= 5*time.Minute, "timeout", "must be between 100ms and 5m (got %s)", c.Timeout)
	check(c.Concurrency >= 1 && c.Concurrency <= 1024, "concurrency", "must be between 1 and 1024 (got %d)", c.Concurrency)
	check(c.MaxAttempts >= 1 && c.MaxAttempts <= 100, "max_attempts", "must be between 1 and 100 (got %d)", c.MaxAttempts)
	check(c.MaxQueued >= 1 && c.MaxQueued <= 10_000_000, "max_queued", "must be between 1 and 10000000 (got %d)", c.MaxQueued)
	return p
}

// Secrets reads one or more whsec_ secrets separated by spaces into
// signers. Its errors say which secret (by position) is wrong, never what
// it holds.
func Secrets(s string) ([]*standardwebhooks.Webhook, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, fmt.Errorf("required (secret, secret_file or secret_env): one or more whsec_ secrets")
	}
	signers := make([]*standardwebhooks.Webhook, 0, len(fields))
	for i, f := range fields {
		raw, ok := strings.CutPrefix(f, "whsec_")
		if !ok {
			return nil, fmt.Errorf("secret %d of %d must start with whsec_", i+1, len(fields))
		}
		// The library takes any base64; Standard Webhooks secrets hold
		// 24 to 64 bytes.
		if n := decodedLen(raw); n < 24 || n > 64 {
			return nil, fmt.Errorf("secret %d of %d must be whsec_ and the base64 of 24 to 64 bytes", i+1, len(fields))
		}
		w, err := standardwebhooks.NewWebhook(f)
		if err != nil {
			return nil, fmt.Errorf("secret %d of %d is not valid base64 after whsec_", i+1, len(fields))
		}
		signers = append(signers, w)
	}
	return signers, nil
}

// decodedLen is how many bytes the base64 s holds, or -1.
func decodedLen(s string) int {
	if len(s)%4 != 0 {
		return -1
	}
	n := len(s) / 4 * 3
	n -= len(s) - len(strings.TrimRight(s, "="))
	return n
}
