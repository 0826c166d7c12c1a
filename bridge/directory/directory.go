// Package directory resolves the people events name (directory keys such as
// "ext:1001", UPNs, emails or Entra object ids) to Entra object ids: first
// through the configured directory, then through Graph, cached with a TTL.
package directory

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/presence-bridge/presence-bridge/adapters"
)

// ErrUnknownUser means the user can not be resolved, now or later.
var ErrUnknownUser = errors.New("unknown user")

// LookupFunc asks Graph for a user's object id by UPN or email. It returns
// an error wrapping ErrUnknownUser when Graph does not know the user.
type LookupFunc func(ctx context.Context, tenant, upn string) (string, error)

var objectID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsObjectID reports whether s looks like an Entra object id (a GUID).
func IsObjectID(s string) bool { return objectID.MatchString(s) }

// Directory resolves users. It is safe for concurrent use.
type Directory struct {
	entries map[string]string
	lookup  LookupFunc
	ttl     time.Duration
	now     func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	id      string
	expires time.Time
}

// New returns a Directory over the configured entries (key → UPN or object
// id); keys are matched case-insensitively.
func New(entries map[string]string, lookup LookupFunc, ttl time.Duration) *Directory {
	normalized := make(map[string]string, len(entries))
	for k, v := range entries {
		normalized[Normalize(k)] = strings.TrimSpace(v)
	}
	return &Directory{entries: normalized, lookup: lookup, ttl: ttl, now: time.Now, cache: map[string]cached{}}
}

// Normalize puts a key in the one form adapters emit (see
// adapters.NormalizeIdentity), so "EXT:1001" and "tel:+1 555 123 4567" in
// the configuration match what the vendors send.
func Normalize(key string) string { return adapters.NormalizeIdentity(key) }

// Resolve returns the object id of user in tenant.
func (d *Directory) Resolve(ctx context.Context, tenant, user string) (string, error) {
	target := user
	if mapped, ok := d.entries[Normalize(user)]; ok {
		target = mapped
	}
	if IsObjectID(target) {
		return strings.ToLower(target), nil
	}
	if !strings.Contains(target, "@") {
		return "", fmt.Errorf("%w: %q is not in the directory and is neither a UPN nor an object id", ErrUnknownUser, user)
	}
	upn := strings.ToLower(target)
	cacheKey := tenant + "/" + upn
	d.mu.Lock()
	c, hit := d.cache[cacheKey]
	d.mu.Unlock()
	if hit && d.now().Before(c.expires) {
		return c.id, nil
	}
	id, err := d.lookup(ctx, tenant, upn)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", upn, err)
	}
	if d.ttl > 0 {
		d.mu.Lock()
		d.cache[cacheKey] = cached{id: id, expires: d.now().Add(d.ttl)}
		d.mu.Unlock()
	}
	return id, nil
}
