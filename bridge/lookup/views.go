// Package lookup answers "what is this person's Teams presence?" from the
// watcher's memory: a store of presence views (Views) that the watcher
// keeps current and long-polls wait on, and the HTTP API over it
// (GET /v1/presence/{user}, GET /v1/presence; see Register). The store
// knows nothing of HTTP.
package lookup

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/identity"
	"github.com/presence-bridge/presence-bridge/outputs"
)

// DefaultMaxWaiters is how many long-polls may wait at once unless
// Options say otherwise.
const DefaultMaxWaiters = 10_000

// Errors of the store.
var (
	// ErrNotWatched means nobody watched is known by the key.
	ErrNotWatched = errors.New("not watched")
	// ErrAmbiguous means the key names people watched in more than one
	// tenant, and no tenant was given.
	ErrAmbiguous = errors.New("watched in more than one tenant")
	// ErrTooManyWaiters means the cap on concurrent long-polls is reached.
	ErrTooManyWaiters = errors.New("too many waiting requests")
	// ErrClosed means the store was closed (the bridge is stopping).
	ErrClosed = errors.New("lookup closed")
	// ErrBadCursor means a List cursor is not one List returned.
	ErrBadCursor = errors.New("malformed cursor")
)

// Resolver resolves a directory key (such as "ext:1001") to the person it
// names: the tenant (empty when the key does not tell) and the person's
// object id or UPN. tenant is the tenant asked about, empty for any. It is
// called only for keys that are neither a UPN nor an object id watched,
// and must answer from the bridge's directory without calling Graph. An
// error wrapping identity.ErrUnknownUser means nobody is known by key.
type Resolver func(ctx context.Context, tenant, key string) (resolvedTenant, user string, err error)

// Options configure Views.
type Options struct {
	// Resolve resolves directory keys; nil resolves none.
	Resolve Resolver
	// MaxWaiters caps the concurrent calls of Wait; zero means
	// DefaultMaxWaiters.
	MaxWaiters int
}

// Views is the newest presence view of every watched person, in memory.
// It is safe for concurrent use.
type Views struct {
	resolve    Resolver
	maxWaiters int64
	waiting    atomic.Int64
	done       chan struct{}
	closeOnce  sync.Once

	mu sync.RWMutex
	// tenants holds each tenant's people by lowercased object id: an
	// object id is looked up tenant by tenant.
	tenants map[string]map[string]*entry
	count   int
	// names maps a lowercased UPN (one that is not the object id) to the
	// person it names; more holds the others when the same UPN is watched
	// in several tenants, which is rare. No slice per name.
	names map[string]*entry
	more  map[string][]*entry
	// sorted holds the people, in (tenant, id) order unless unsorted:
	// Set appends, List sorts.
	sorted   []*entry
	unsorted bool
	pairs    map[outputs.Pair]*outputs.Pair
}

// person identifies a watched person: tenant and lowercased object id.
type person struct{ tenant, id string }

func (p person) compare(q person) int {
	return cmp.Or(strings.Compare(p.tenant, q.tenant), strings.Compare(p.id, q.id))
}

// entry is one watched person's record: the newest view, kept compact
// (its tenant and lowercased id are its key, its pair is shared with
// everyone else's in the same pair, its ETag is the digest's bytes), and
// the last seen presence the watcher compares its reads with (Last): the
// watcher keeps no copy of its own.
type entry struct {
	tenant   string
	user, id string
	pair     *outputs.Pair
	origin   string
	sources  []string
	since    time.Time
	seenAt   time.Time
	seq      string
	etag     etag
	// changed is closed when the ETag changes; it is made by the first
	// waiter after a change and shared by all waiters of the person, so a
	// waiter costs the store nothing.
	changed chan struct{}
}

// etag is the digest an ETag quotes (ETag).
type etag [15]byte

func (e etag) String() string {
	var b [2 + 20]byte
	b[0], b[len(b)-1] = '"', '"'
	base64.RawURLEncoding.Encode(b[1:len(b)-1], e[:])
	return string(b[:])
}

// key is the person e is.
func (e *entry) key() person { return person{e.tenant, strings.ToLower(e.id)} }

// view is the entry as a view.
func (e *entry) view() outputs.View {
	return outputs.View{User: e.user, ID: e.id, Tenant: e.tenant, Availability: e.pair.Availability, Activity: e.pair.Activity,
		Origin: e.origin, Sources: slices.Clone(e.sources), Since: e.since, SeenAt: e.seenAt, SequenceNumber: e.seq}
}

// maxPairs bounds the table of pairs the entries share; past it a new
// pair is kept by its entry alone.
const maxPairs = 1024

// pair returns the shared copy of p; vs.mu is held.
func (vs *Views) pair(p outputs.Pair) *outputs.Pair {
	if q, ok := vs.pairs[p]; ok {
		return q
	}
	q := &p
	if len(vs.pairs) < maxPairs {
		vs.pairs[p] = q
	}
	return q
}

// NewViews returns an empty store.
func NewViews(opts Options) *Views {
	if opts.MaxWaiters <= 0 {
		opts.MaxWaiters = DefaultMaxWaiters
	}
	return &Views{
		resolve:    opts.Resolve,
		maxWaiters: int64(opts.MaxWaiters),
		done:       make(chan struct{}),
		tenants:    map[string]map[string]*entry{},
		names:      map[string]*entry{},
		more:       map[string][]*entry{},
		pairs:      map[outputs.Pair]*outputs.Pair{},
	}
}

// ETag returns the strong entity tag of a view: a digest of its tenant,
// object id, sequenceNumber and pair. It changes when Graph's presence
// does, not when the watcher merely sees it again, and is the same across
// restarts for the same presence.
func ETag(v outputs.View) string { return digest(v).String() }

func digest(v outputs.View) etag {
	h := sha256.New()
	for _, s := range []string{v.Tenant, strings.ToLower(v.ID), v.SequenceNumber, v.Availability, v.Activity} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var d [sha256.Size]byte
	return etag(h.Sum(d[:0])[:15])
}

// Set stores v as the person's newest view. Waiters of the person wake
// when its ETag changes. A view that differs from the stored one only in
// seenAt (the watcher read the person again) moves seenAt alone: no ETag
// is worked out, nothing is allocated.
func (vs *Views) Set(v outputs.View) {
	k := person{v.Tenant, strings.ToLower(v.ID)}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	e := vs.entry(k)
	if e != nil && sameButSeen(e, v) {
		e.seenAt = v.SeenAt
		return
	}
	d := digest(v)
	if e == nil {
		e = &entry{tenant: v.Tenant, id: v.ID}
		people := vs.tenants[k.tenant]
		if people == nil {
			people = map[string]*entry{}
			vs.tenants[k.tenant] = people
		}
		people[k.id] = e
		vs.count++
		vs.sorted = append(vs.sorted, e)
		vs.unsorted = true
	}
	if oldUser, newUser := strings.ToLower(e.user), strings.ToLower(v.User); oldUser != newUser {
		if oldUser != "" && oldUser != k.id {
			vs.removeName(oldUser, e)
		}
		e.user = v.User
		if newUser != k.id {
			vs.addName(newUser, e)
		}
	}
	changed := e.pair == nil || e.etag != d
	e.user, e.id, e.pair, e.origin = v.User, v.ID, vs.pair(outputs.Pair{Availability: v.Availability, Activity: v.Activity}), v.Origin
	e.sources, e.since, e.seenAt, e.seq, e.etag = slices.Clone(v.Sources), v.Since, v.SeenAt, v.SequenceNumber, d
	if changed && e.changed != nil {
		close(e.changed)
		e.changed = nil
	}
}

// sameButSeen reports whether the view of e and v differ at most in
// SeenAt.
func sameButSeen(e *entry, v outputs.View) bool {
	return e.user == v.User && e.id == v.ID && e.pair.Availability == v.Availability &&
		e.pair.Activity == v.Activity && e.origin == v.Origin && slices.Equal(e.sources, v.Sources) &&
		e.since.Equal(v.Since) && e.seq == v.SequenceNumber
}

// Last is what the watcher last saw of a person: the pair, Graph's
// sequenceNumber and when the pair was first seen.
type Last struct {
	Pair     outputs.Pair
	Sequence string
	Since    time.Time
}

// Last returns what the store holds of person id (lowercased) of tenant
// as last seen: the watcher compares its reads with it, and keeps no copy
// of its own.
func (vs *Views) Last(tenant, id string) (Last, bool) {
	vs.mu.RLock()
	defer vs.mu.RUnlock()
	e := vs.entry(person{tenant, id})
	if e == nil {
		return Last{}, false
	}
	return Last{Pair: *e.pair, Sequence: e.seq, Since: e.since}, true
}

// Others returns the lowercased object ids of tenant's people for whom
// keep is false (the watcher's leavers); keep is called with the store
// locked for reading.
func (vs *Views) Others(tenant string, keep func(id string) bool) []string {
	vs.mu.RLock()
	defer vs.mu.RUnlock()
	var ids []string
	for id := range vs.tenants[tenant] {
		if !keep(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// entry returns the entry of k, nil when nobody; vs.mu is held.
func (vs *Views) entry(k person) *entry { return vs.tenants[k.tenant][k.id] }

// Delete forgets the person id of tenant, who left the watch; their
// waiters wake and find nobody.
func (vs *Views) Delete(tenant, id string) {
	k := person{tenant, strings.ToLower(id)}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	e := vs.entry(k)
	if e == nil {
		return
	}
	people := vs.tenants[k.tenant]
	delete(people, k.id)
	vs.count--
	if len(people) == 0 {
		delete(vs.tenants, k.tenant)
	}
	if u := strings.ToLower(e.user); u != k.id {
		vs.removeName(u, e)
	}
	vs.sorted = slices.DeleteFunc(vs.sorted, func(p *entry) bool { return p == e })
	if e.changed != nil {
		close(e.changed)
	}
}

func (vs *Views) addName(name string, e *entry) {
	first, ok := vs.names[name]
	switch {
	case !ok:
		vs.names[name] = e
	case first != e && !slices.Contains(vs.more[name], e):
		vs.more[name] = append(vs.more[name], e)
	}
}

func (vs *Views) removeName(name string, e *entry) {
	more := vs.more[name]
	if first, ok := vs.names[name]; ok && first == e {
		if len(more) == 0 {
			delete(vs.names, name)
			return
		}
		vs.names[name], more = more[0], more[1:]
	} else {
		more = slices.DeleteFunc(more, func(p *entry) bool { return p == e })
	}
	if len(more) == 0 {
		delete(vs.more, name)
		return
	}
	vs.more[name] = more
}

// Len returns how many people the store holds.
func (vs *Views) Len() int {
	vs.mu.RLock()
	defer vs.mu.RUnlock()
	return vs.count
}

// Get returns the view of the person key names in tenant (empty: any
// tenant), and its ETag. key is a UPN (any case), an object id or a
// directory key.
func (vs *Views) Get(ctx context.Context, tenant, key string) (outputs.View, string, error) {
	k, err := vs.find(ctx, tenant, key)
	if err != nil {
		return outputs.View{}, "", err
	}
	vs.mu.RLock()
	defer vs.mu.RUnlock()
	return vs.current(k, key)
}

// current returns the view of k; vs.mu is held.
func (vs *Views) current(k person, key string) (outputs.View, string, error) {
	e := vs.entry(k)
	if e == nil {
		return outputs.View{}, "", fmt.Errorf("%q: %w", key, ErrNotWatched)
	}
	return e.view(), e.etag.String(), nil
}

// find returns the person key names.
func (vs *Views) find(ctx context.Context, tenant, key string) (person, error) {
	key = strings.TrimSpace(key)
	k, err := vs.named(tenant, strings.ToLower(key))
	if !errors.Is(err, ErrNotWatched) || vs.resolve == nil || strings.Contains(key, "@") || identity.IsObjectID(key) {
		return k, err
	}
	rt, user, rerr := vs.resolve(ctx, tenant, key)
	if errors.Is(rerr, identity.ErrUnknownUser) {
		return person{}, err
	}
	if rerr != nil {
		return person{}, fmt.Errorf("resolve %q: %w", key, rerr)
	}
	if tenant != "" && rt != "" && rt != tenant {
		return person{}, err
	}
	return vs.named(cmp.Or(rt, tenant), strings.ToLower(user))
}

// named returns the person name (lowercased) names in tenant, or in the
// only tenant that watches them when tenant is empty.
func (vs *Views) named(tenant, name string) (person, error) {
	vs.mu.RLock()
	defer vs.mu.RUnlock()
	var buf [4]person
	found := buf[:0]
	add := func(k person) {
		if (tenant == "" || k.tenant == tenant) && !slices.Contains(found, k) {
			found = append(found, k)
		}
	}
	if tenant != "" {
		if vs.entry(person{tenant, name}) != nil {
			add(person{tenant, name})
		}
	} else {
		for t, people := range vs.tenants {
			if people[name] != nil {
				add(person{t, name})
			}
		}
	}
	if e, ok := vs.names[name]; ok {
		add(e.key())
		for _, e := range vs.more[name] {
			add(e.key())
		}
	}
	switch len(found) {
	case 0:
		return person{}, fmt.Errorf("%q: %w", name, ErrNotWatched)
	case 1:
		return found[0], nil
	}
	return person{}, fmt.Errorf("%q: %w", name, ErrAmbiguous)
}

// Wait waits until the ETag of the person key names in tenant differs
// from etag, ctx ends or the store closes, and then returns the view and
// ETag as Get does (the unchanged ones when ctx ended). It returns
// ErrTooManyWaiters when MaxWaiters calls already wait, ErrClosed once the
// store is closed, and ErrNotWatched when the person leaves the watch.
func (vs *Views) Wait(ctx context.Context, tenant, key, etag string) (outputs.View, string, error) {
	k, err := vs.find(ctx, tenant, key)
	if err != nil {
		return outputs.View{}, "", err
	}
	if vs.waiting.Add(1) > vs.maxWaiters {
		vs.waiting.Add(-1)
		return outputs.View{}, "", ErrTooManyWaiters
	}
	defer vs.waiting.Add(-1)
	for {
		select {
		case <-vs.done:
			return outputs.View{}, "", ErrClosed
		default:
		}
		vs.mu.Lock()
		v, now, err := vs.current(k, key)
		if err != nil || now != etag || ctx.Err() != nil {
			vs.mu.Unlock()
			return v, now, err
		}
		e := vs.entry(k)
		if e.changed == nil {
			e.changed = make(chan struct{})
		}
		changed := e.changed
		vs.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
		case <-vs.done:
			return outputs.View{}, "", ErrClosed
		}
	}
}

// Waiting returns how many calls of Wait are waiting.
func (vs *Views) Waiting() int { return int(vs.waiting.Load()) }

// Close wakes every waiter with ErrClosed, and makes later waits fail at
// once. Call it before shutting the HTTP server down, which otherwise
// waits for the long-polls.
func (vs *Views) Close() {
	vs.closeOnce.Do(func() { close(vs.done) })
}

// List returns up to limit views in (tenant, object id) order, of tenant
// only unless it is empty, starting after cursor (empty: from the start),
// and the cursor of the next page, empty after the last.
func (vs *Views) List(tenant, cursor string, limit int) ([]outputs.View, string, error) {
	from := person{tenant: tenant}
	after := false
	if cursor != "" {
		c, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		if c.compare(from) > 0 {
			from, after = c, true
		}
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.unsorted {
		slices.SortFunc(vs.sorted, func(a, b *entry) int { return a.key().compare(b.key()) })
		vs.unsorted = false
	}
	i, found := slices.BinarySearchFunc(vs.sorted, from, func(e *entry, k person) int { return e.key().compare(k) })
	if found && after {
		i++
	}
	var views []outputs.View
	for ; i < len(vs.sorted) && len(views) < limit; i++ {
		e := vs.sorted[i]
		if tenant != "" && e.tenant != tenant {
			break
		}
		views = append(views, e.view())
	}
	next := ""
	if i < len(vs.sorted) && (tenant == "" || vs.sorted[i].tenant == tenant) && len(views) > 0 {
		last := views[len(views)-1]
		next = encodeCursor(person{last.Tenant, strings.ToLower(last.ID)})
	}
	return views, next, nil
}

// maxCursor bounds a cursor's length: a tenant and an object id, encoded.
const maxCursor = 512

func encodeCursor(p person) string {
	return base64.RawURLEncoding.EncodeToString([]byte(p.tenant + "\x00" + p.id))
}

func decodeCursor(s string) (person, error) {
	if len(s) > maxCursor {
		return person{}, fmt.Errorf("%w: longer than %d bytes", ErrBadCursor, maxCursor)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return person{}, fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	tenant, id, ok := strings.Cut(string(b), "\x00")
	if !ok {
		return person{}, ErrBadCursor
	}
	return person{tenant, id}, nil
}
