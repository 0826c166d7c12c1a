// Package identity resolves the people events name (directory keys such as
// "ext:1001", UPNs, emails or Entra object ids) to Entra object ids: first
// through the configured directory, then through Graph, cached with a TTL.
package identity

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
	"github.com/presence-bridge/presence-bridge/internal/guid"
)

// ErrUnknownUser means the user can not be resolved, now or later.
var ErrUnknownUser = errors.New("unknown user")

// unknownUser is a permanent ErrUnknownUser whose message names the user
// and says why once: "unknown user: ext:2002: no user has this number".
func unknownUser(who, why, graphError string) *fault.Error {
	return &fault.Error{Class: fault.Permanent, Reason: "unknown user", GraphError: graphError, Err: unknownError(who + ": " + why)}
}

// unknownError is the text of an unknown user; it matches ErrUnknownUser
// without repeating its words.
type unknownError string

func (e unknownError) Error() string        { return string(e) }
func (e unknownError) Is(target error) bool { return target == ErrUnknownUser }

// LookupFunc asks Graph for a user's object id by UPN or email. It returns
// an error wrapping ErrUnknownUser when Graph does not know the user.
type LookupFunc func(ctx context.Context, tenant, upn string) (string, error)

// IsObjectID reports whether s looks like an Entra object id (a GUID).
// It runs for every event, so it is a plain loop rather than a regexp.
func IsObjectID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// Options configure a Directory.
type Options struct {
	// Entries maps directory keys to UPNs or object ids; keys are matched
	// case-insensitively.
	Entries map[string]string
	// Lookup asks Graph; it is called at most once at a time per user.
	Lookup LookupFunc
	// TTL is how long a resolved user is remembered; zero remembers none.
	TTL time.Duration
	// UnknownTTL is how long a user Graph does not know is remembered as
	// unknown, so that a stream of events about them is not a stream of
	// lookups; zero remembers none.
	UnknownTTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	// PhoneLookup asks Graph for the user a "tel:" or "ext:" key names
	// when the key is not in Entries; it is cached, shared and remembered
	// as unknown exactly as Lookup is. Nil turns phone lookups off.
	PhoneLookup LookupFunc
	// PhoneTenants are the tenants whose phone lookups are on.
	PhoneTenants map[string]bool
}

// Directory resolves users. It is safe for concurrent use.
type Directory struct {
	opts    Options
	entries atomic.Pointer[map[string]string]
	flights singleflight.Group

	mu        sync.Mutex
	cache     map[string]cached
	nextSweep time.Time
}

// cached is a lookup's outcome: an object id, or the error of an unknown
// user, until expires (Unix nanoseconds). An object id that is a
// lowercase GUID, as Graph gives them, is kept in its 16 bytes (guid)
// (isGUID) instead of a string in id: a cache of 100,000 people is a few
// megabytes smaller (issue 23).
type cached struct {
	guid    guid.GUID
	isGUID  bool
	id      string
	err     error
	expires int64
}

// objectID returns the id c holds.
func (c cached) objectID() string {
	if c.isGUID {
		return c.guid.String()
	}
	return c.id
}

// New returns a Directory.
func New(opts Options) *Directory {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Directory{opts: opts, cache: map[string]cached{}}
	d.Replace(opts.Entries)
	return d
}

// Replace swaps the configured entries for entries at once: a Resolve
// sees either the old directory or the new one, never a mix. Lookups
// already cached from Graph stay.
func (d *Directory) Replace(entries map[string]string) {
	normalized := make(map[string]string, len(entries))
	for k, v := range entries {
		normalized[Normalize(k)] = strings.TrimSpace(v)
	}
	d.entries.Store(&normalized)
}

// Normalize puts a key in the one form adapters emit (see
// adapters.NormalizeIdentity), so "EXT:1001" and "tel:+1 555 123 4567" in
// the configuration match what the vendors send.
func Normalize(key string) string { return adapters.NormalizeIdentity(key) }

// Resolve returns the object id of user in tenant. Concurrent misses for
// the same user share one lookup.
func (d *Directory) Resolve(ctx context.Context, tenant, user string) (string, error) {
	target := user
	if mapped, ok := (*d.entries.Load())[Normalize(user)]; ok {
		target = mapped
	}
	if IsObjectID(target) {
		return strings.ToLower(target), nil
	}
	if !strings.Contains(target, "@") {
		if phone := Normalize(target); d.phoneLookups(tenant, phone) {
			return d.lookup(ctx, tenant, phone, d.opts.PhoneLookup)
		}
		return "", unknownUser(strconv.Quote(user), "not in the directory and neither a UPN nor an object id", "")
	}
	return d.lookup(ctx, tenant, strings.ToLower(target), d.opts.Lookup)
}

// phoneLookups tells whether key is a tel: or ext: key that tenant looks
// up through Graph.
func (d *Directory) phoneLookups(tenant, key string) bool {
	return d.opts.PhoneLookup != nil && d.opts.PhoneTenants[tenant] &&
		(strings.HasPrefix(key, "tel:") || strings.HasPrefix(key, "ext:"))
}

// lookup resolves name (a UPN or a phone key) in tenant through find,
// from the cache when it can; concurrent misses share one call.
func (d *Directory) lookup(ctx context.Context, tenant, name string, find LookupFunc) (string, error) {
	key := tenant + "/" + name
	if c, ok := d.cached(key); ok {
		return c.objectID(), c.err
	}
	v, err, _ := d.flights.Do(key, func() (any, error) {
		// A flight that ended just before this one began has filled the
		// cache: no second request.
		if c, ok := d.cached(key); ok {
			return c.objectID(), c.err
		}
		id, err := find(ctx, tenant, name)
		// A failure with a reason (an unknown user, a spent budget) names
		// the user already.
		if classified := (*fault.Error)(nil); err != nil && !(errors.As(err, &classified) && classified.Reason != "") {
			err = fmt.Errorf("resolve %s: %w", name, err)
		}
		d.remember(key, id, err)
		return id, err
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// cached returns the unexpired outcome remembered for key.
func (d *Directory) cached(key string) (cached, bool) {
	now := d.opts.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.cache[key]
	if !ok {
		return cached{}, false
	}
	if now.UnixNano() >= c.expires {
		delete(d.cache, key)
		return cached{}, false
	}
	return c, true
}

// remember keeps a resolved id for TTL and an unknown user for UnknownTTL;
// other failures are not kept. Expired entries are swept out at most once
// per the shorter TTL, so the cache holds only users seen recently.
func (d *Directory) remember(key, id string, err error) {
	ttl := d.opts.TTL
	if err != nil {
		ttl = 0
		if errors.Is(err, ErrUnknownUser) {
			ttl = d.opts.UnknownTTL
		}
	}
	now := d.opts.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !now.Before(d.nextSweep) {
		for k, c := range d.cache {
			if now.UnixNano() >= c.expires {
				delete(d.cache, k)
			}
		}
		d.nextSweep = now.Add(d.sweepEvery())
	}
	if ttl > 0 {
		c := cached{id: id, err: err, expires: now.Add(ttl).UnixNano()}
		if g, ok := guid.Parse(id); ok && err == nil {
			c.guid, c.isGUID, c.id = g, true, ""
		}
		d.cache[key] = c
	}
}

// sweepEvery is the shortest of the positive TTLs and a minute.
func (d *Directory) sweepEvery() time.Duration {
	every := time.Minute
	for _, ttl := range []time.Duration{d.opts.TTL, d.opts.UnknownTTL} {
		if ttl > 0 && ttl < every {
			every = ttl
		}
	}
	return every
}

// Len returns how many outcomes are cached, expired ones not yet swept
// included.
func (d *Directory) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.cache)
}
