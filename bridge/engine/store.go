package engine

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// store keeps user states in a KV bucket and updates them with
// compare-and-set on the key's revision, so concurrent writers never lose
// each other's changes.
type store struct {
	kv jetstream.KeyValue
}

// tenantToken encodes a tenant id into one KV key token.
func tenantToken(tenant string) string { return hex.EncodeToString([]byte(strings.ToLower(tenant))) }

// userKey is the KV key of a user's state.
func userKey(tenant, userID string) string {
	return "u." + tenantToken(tenant) + "." + hex.EncodeToString([]byte(strings.ToLower(userID)))
}

// errConflict means the key changed between read and write.
var errConflict = errors.New("state changed concurrently")

// get returns the user's state and its revision (0 when there is none).
func (s *store) get(ctx context.Context, tenant, userID string) (UserState, uint64, error) {
	entry, err := s.kv.Get(ctx, userKey(tenant, userID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return UserState{Tenant: tenant, UserID: userID}, 0, nil
	}
	if err != nil {
		return UserState{}, 0, fmt.Errorf("read state of %s: %w", userID, err)
	}
	var st UserState
	if err := json.Unmarshal(entry.Value(), &st); err != nil {
		return UserState{}, 0, fmt.Errorf("decode state of %s: %w", userID, err)
	}
	return st, entry.Revision(), nil
}

// ErrStateTooLarge means a user's state would not fit under the size
// limit even with every claim evicted but the one the event is about: the
// event can never be stored, and retrying it changes nothing.
var ErrStateTooLarge = errors.New("user state too large")

// update reads the state, lets change modify it, and writes it back if
// change reports a change, retrying on conflicts.
// It returns the state and its revision as written (or as read, when
// nothing changed).
func (s *store) update(ctx context.Context, tenant, userID string, change func(*UserState) bool) (UserState, uint64, error) {
	return s.updateWithin(ctx, tenant, userID, 0, change, nil)
}

// updateWithin is update with a ceiling of limit bytes (none when zero)
// on the encoded state: while the state is larger, shrink is asked to make
// it smaller; when it can not, nothing is written and the error wraps
// ErrStateTooLarge. Any other failure to write is worth retrying.
func (s *store) updateWithin(ctx context.Context, tenant, userID string, limit int, change, shrink func(*UserState) bool) (UserState, uint64, error) {
	for attempt := 0; attempt < 100; attempt++ {
		st, rev, err := s.get(ctx, tenant, userID)
		if err != nil {
			return st, 0, err
		}
		if !change(&st) {
			return st, rev, nil
		}
		data, err := json.Marshal(st)
		for err == nil && limit > 0 && len(data) > limit {
			if shrink == nil || !shrink(&st) {
				return st, 0, fmt.Errorf("%w for %s: %d bytes encoded, over the limit of %d", ErrStateTooLarge, userID, len(data), limit)
			}
			data, err = json.Marshal(st)
		}
		if err != nil {
			return st, 0, fmt.Errorf("encode state of %s: %w", userID, err)
		}
		key := userKey(tenant, userID)
		if rev == 0 {
			rev, err = s.kv.Create(ctx, key, data)
		} else {
			rev, err = s.kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return st, rev, nil
		}
		if !isConflict(err) {
			return st, 0, fmt.Errorf("write state of %s: %w", userID, err)
		}
	}
	return UserState{}, 0, fmt.Errorf("write state of %s: %w", userID, errConflict)
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
}
