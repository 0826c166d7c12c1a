package state

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/fault"
)

// Store keeps user states in a KV bucket and updates them with
// compare-and-set on the key's revision, so concurrent writers never lose
// each other's changes.
type Store struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	rules   Rules
	maxSize int
	clock   Clock
	recent  *recentStates
	writing *keyLocks
}

// Clock tells the time; tests use a fake one.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configure a Store.
type Options struct {
	// Bucket is the KV bucket of user states, default PRESENCE_STATE.
	Bucket   string
	Replicas int
	// Rules are the derivation's settings; Rules.MaxClaims defaults to
	// DefaultMaxClaims.
	Rules Rules
	// MaxStateSize caps a user's encoded state in bytes (default
	// DefaultMaxStateSize, and never more than the NATS server's maximum
	// payload less some room); see Apply.
	MaxStateSize int
	Clock        Clock
}

// Bounds on one user's state, whatever the sources send.
const (
	// DefaultMaxClaims is Rules.MaxClaims when unset.
	DefaultMaxClaims = 64
	// DefaultMaxStateSize is Options.MaxStateSize when unset: well under
	// NATS's default maximum payload of 1 MiB, and large enough for
	// DefaultMaxClaims claims of ordinary size.
	DefaultMaxStateSize = 64 << 10
)

// KeepClaims is how long claims are remembered after they stopped
// counting (ended calls, past meetings), so that a late event about them
// changes nothing.
const KeepClaims = time.Hour

// Open creates or updates the state bucket and returns a Store on it.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Store, error) {
	if opts.Bucket == "" {
		opts.Bucket = "PRESENCE_STATE"
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Rules.MaxClaims == 0 {
		opts.Rules.MaxClaims = DefaultMaxClaims
	}
	if opts.MaxStateSize == 0 {
		opts.MaxStateSize = DefaultMaxStateSize
	}
	if nc := js.Conn(); nc != nil {
		if room := int(nc.MaxPayload()) - 4<<10; room > 0 && opts.MaxStateSize > room {
			opts.MaxStateSize = room
		}
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: opts.Bucket, Description: "Per-user presence state.", History: 1, Replicas: opts.Replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("state bucket %s: %w", opts.Bucket, err)
	}
	return &Store{js: js, kv: kv, rules: opts.Rules, maxSize: opts.MaxStateSize, clock: opts.Clock, recent: newRecentStates(recentStatesMax), writing: newKeyLocks()}, nil
}

// WithKV returns a copy of s on another handle of its bucket, for tests
// that break a watch.
func (s *Store) WithKV(kv jetstream.KeyValue) *Store {
	c := *s
	c.kv = kv
	c.recent = newRecentStates(recentStatesMax)
	return &c
}

// KV is the bucket itself, for watching user keys and keeping a tenant's
// small records (such as a Graph pause) beside its users.
func (s *Store) KV() jetstream.KeyValue { return s.kv }

// TenantToken encodes a tenant id into one KV key token.
func TenantToken(tenant string) string { return hex.EncodeToString([]byte(strings.ToLower(tenant))) }

// UserKey is the KV key of a user's state.
func UserKey(tenant, userID string) string {
	tenant, userID = strings.ToLower(tenant), strings.ToLower(userID)
	var b strings.Builder
	b.Grow(3 + 2*len(tenant) + 2*len(userID))
	b.WriteString("u.")
	writeHex(&b, tenant)
	b.WriteByte('.')
	writeHex(&b, userID)
	return b.String()
}

// writeHex writes s in lower-case hex, as hex.EncodeToString does.
func writeHex(b *strings.Builder, s string) {
	const digits = "0123456789abcdef"
	for i := range len(s) {
		b.WriteByte(digits[s[i]>>4])
		b.WriteByte(digits[s[i]&0x0f])
	}
}

// UserKeys is the KV filter matching every user key of tenant.
func UserKeys(tenant string) string { return "u." + TenantToken(tenant) + ".>" }

// Incoming is an event as the apply stage hands it to Take: with when the
// bridge accepted it (JetStream stored it), zero when unknown.
type Incoming struct {
	Event    adapters.Event
	Accepted time.Time
}

// Apply is Take for events whose acceptance is unknown (they are not
// timed), for callers that need not know which changed nothing.
func (s *Store) Apply(ctx context.Context, tenant, userID string, events ...adapters.Event) error {
	in := make([]Incoming, len(events))
	for i, ev := range events {
		in[i].Event = ev
	}
	_, err := s.Take(ctx, tenant, userID, in...)
	return err
}

// Take records events, in order, for the user and returns once the state
// is persisted, with one compare-and-set however many events there are;
// the caller acks them after that. It answers, for each event, why it
// changed nothing stored (ReasonOlder, ReasonDuplicate, ReasonSuperseded),
// "" for an event taken in. Older and duplicate events change nothing,
// but still count as a sign of life from their source and let a change
// Graph refused be tried again (a dead letter's replay).
//
// Each event taken in (superseded ones too: their effect travels in the
// later event's) is added to the state's Waiting with its acceptance, for
// the writer to time.
//
// The state stays bounded, so that every event costs about the same: old
// claims are pruned, at most Rules.MaxClaims are kept (see
// UserState.Evict), and more are evicted while the encoded state is over
// Options.MaxStateSize. The claim the last event is about is never
// evicted; when the state can not fit with it, Take returns an error
// wrapping ErrStateTooLarge, classified fault.Permanent (apply the events
// one at a time to learn which one). Any other error is worth retrying.
func (s *Store) Take(ctx context.Context, tenant, userID string, events ...Incoming) ([]string, error) {
	if len(events) == 0 {
		return nil, nil
	}
	// The state written is remembered as it is, without a copy (Take
	// hands it to nobody): so it takes no monotonic clock reading, and
	// nothing of the caller's events but copies.
	now := wall(s.clock.Now())
	events = slices.Clone(events)
	for i := range events {
		events[i].Event, events[i].Accepted = copyEvent(events[i].Event), wall(events[i].Accepted)
	}
	r := s.rules
	protect := claimID(events[len(events)-1].Event)
	reasons := make([]string, len(events))
	_, _, err := s.update(ctx, tenant, userID, s.maxSize, false, func(st *UserState) bool {
		st.Tenant, st.UserID = tenant, userID
		changed := false
		for i, in := range events {
			var c bool
			c, reasons[i] = applyEvent(st, in.Event, r, now)
			changed = c || changed
			if reasons[i] == "" {
				st.wait(in)
			}
		}
		markSuperseded(events, reasons)
		return changed
	}, func(st *UserState) bool {
		return st.Evict(r, now, st.Claims()-1, protect) > 0
	})
	if errors.Is(err, ErrStateTooLarge) {
		return nil, fault.Permanently("event not stored", err)
	}
	if err != nil {
		return nil, err
	}
	return reasons, nil
}

// wait adds an event taken in to Waiting, forgetting the oldest beyond
// MaxWaiting. Events of unknown acceptance are not timed.
func (s *UserState) wait(in Incoming) {
	if in.Accepted.IsZero() {
		return
	}
	if len(s.Waiting) >= MaxWaiting {
		s.Waiting = slices.Delete(s.Waiting, 0, len(s.Waiting)-MaxWaiting+1)
	}
	s.Waiting = append(s.Waiting, Waiting{Event: in.Event.Key(), Accepted: in.Accepted})
}

// markSuperseded gives ReasonSuperseded to each event taken in whose claim
// a later event of the batch took in again.
func markSuperseded(events []Incoming, reasons []string) {
	if len(events) < 2 {
		return // most batches: nothing to supersede
	}
	last := map[string]int{}
	for i, in := range events {
		if reasons[i] == "" {
			last[claimID(in.Event)] = i
		}
	}
	for i, in := range events {
		if reasons[i] == "" && last[claimID(in.Event)] != i {
			reasons[i] = ReasonSuperseded
		}
	}
}

// applyEvent is Take's change to a state read from the store: it records
// ev, prunes and evicts claims, and reports whether the state must be
// written and why ev changed no claim ("" when it did).
func applyEvent(s *UserState, ev adapters.Event, r Rules, now time.Time) (bool, string) {
	lastSeen := s.SourceSeen[ev.Source]
	reason := s.apply(ev, now)
	changed := reason == ""
	if !changed && s.Failed != nil {
		s.Failed = nil
		changed = true
	}
	forgot := s.Prune(r, now, KeepClaims)
	if r.MaxClaims > 0 {
		forgot += s.Evict(r, now, r.MaxClaims, claimID(ev))
	}
	return changed || forgot > 0 || now.Sub(lastSeen) > time.Minute, reason
}

// errConflict means the key changed between read and write.
var errConflict = errors.New("state changed concurrently")

// Get returns the user's state and its revision (0 when there is none).
func (s *Store) Get(ctx context.Context, tenant, userID string) (UserState, uint64, error) {
	return s.get(ctx, UserKey(tenant, userID), tenant, userID)
}

// get is Get of the user's key.
func (s *Store) get(ctx context.Context, key, tenant, userID string) (UserState, uint64, error) {
	entry, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return UserState{Tenant: tenant, UserID: userID}, 0, nil
	}
	if err != nil {
		return UserState{}, 0, fmt.Errorf("read state of %s: %w", userID, err)
	}
	st, err := decode(entry.Value(), userID)
	return st, entry.Revision(), err
}

// ErrStateTooLarge means a user's state would not fit under the size
// limit even with every claim evicted but the one the event is about: the
// event can never be stored, and retrying it changes nothing.
var ErrStateTooLarge = errors.New("user state too large")

// Update reads the state, lets change modify it, and writes it back if
// change reports a change, retrying on conflicts.
// It returns the state and its revision as written (or as read, when
// nothing changed).
func (s *Store) Update(ctx context.Context, tenant, userID string, change func(*UserState) bool) (UserState, uint64, error) {
	return s.UpdateWithin(ctx, tenant, userID, 0, change, nil)
}

// UpdateWithin is Update with a ceiling of limit bytes (none when zero)
// on the encoded state: while the state is larger, shrink is asked to make
// it smaller; when it can not, nothing is written and the error wraps
// ErrStateTooLarge. Any other failure to write is worth retrying.
//
// It starts from the state this Store last read or wrote for the user,
// when it has one, instead of reading it: the compare-and-set still fails
// when anyone changed the state since, and the state is then read. A
// decision to write nothing is only ever taken on a state just read. So
// change may run more than once, and must change nothing but the state
// it is given (nor write a state itself). Writes of one key in this
// process take turns, so that they do not refuse each other.
func (s *Store) UpdateWithin(ctx context.Context, tenant, userID string, limit int, change, shrink func(*UserState) bool) (UserState, uint64, error) {
	return s.update(ctx, tenant, userID, limit, true, change, shrink)
}

// update is UpdateWithin. With keep false the caller never looks at the
// state returned (its maps may be the remembered state's own), and change
// puts in it no monotonic clock reading and nothing the caller keeps: the
// state is then remembered without a copy.
func (s *Store) update(ctx context.Context, tenant, userID string, limit int, keep bool, change, shrink func(*UserState) bool) (UserState, uint64, error) {
	key := UserKey(tenant, userID)
	unlock, err := s.writing.lock(ctx, key)
	if err != nil {
		return UserState{}, 0, fmt.Errorf("write state of %s: %w", userID, err)
	}
	defer unlock()
	for attempt := 0; attempt < 100; attempt++ {
		var st UserState
		var rev uint64
		var err error
		recent := false
		if attempt == 0 {
			st, rev, recent = s.recent.get(key)
		}
		if !recent {
			st, rev, err = s.get(ctx, key, tenant, userID)
		}
		if err != nil {
			s.recent.drop(key)
			return st, 0, err
		}
		if !change(&st) {
			if recent {
				continue // decide on what is stored, not on what was
			}
			if rev > 0 {
				s.recent.put(key, rev, st, keep)
			}
			return st, rev, nil
		}
		data, err := encode(st)
		for err == nil && limit > 0 && len(data) > limit {
			if shrink == nil || !shrink(&st) {
				return st, 0, fmt.Errorf("%w for %s: %d bytes encoded, over the limit of %d", ErrStateTooLarge, userID, len(data), limit)
			}
			data, err = encode(st)
		}
		if err != nil {
			return st, 0, fmt.Errorf("encode state of %s: %w", userID, err)
		}
		w := s.recent.begin(key, data, st, keep)
		if rev == 0 {
			rev, err = s.kv.Create(ctx, key, data)
		} else {
			rev, err = s.kv.Update(ctx, key, data, rev)
		}
		s.recent.end(key, w, rev, err == nil)
		if err == nil {
			return st, rev, nil
		}
		if !isConflict(err) {
			return st, 0, fmt.Errorf("write state of %s: %w", userID, err)
		}
	}
	return UserState{}, 0, fmt.Errorf("write state of %s: %w", userID, errConflict)
}

// Recent returns the state of key as this Store last read or wrote it
// when that was at revision rev, or when data, the value stored at rev,
// is byte for byte a write of this Store not yet answered (ok): a watcher
// of the bucket in the same process need not decode it again. remembered
// is the revision it holds, 0 when none: a watcher given an older one
// knows a newer one is on its way.
//
// The state is the one the Store remembers, not a copy: the caller may
// keep it but must not change it, nor anything it points to (copy a map
// before deleting from it).
func (s *Store) Recent(key string, rev uint64, data []byte) (st UserState, remembered uint64, ok bool) {
	return s.recent.getAt(key, rev, data)
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
}

// Forget deletes the user's state if it is still at revision rev; a state
// changed since is kept, and that is no error.
func (s *Store) Forget(ctx context.Context, tenant, userID string, rev uint64) error {
	key := UserKey(tenant, userID)
	s.recent.drop(key)
	err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if err != nil && !isConflict(err) {
		return fmt.Errorf("forget state of %s: %w", userID, err)
	}
	return nil
}
