package watch

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/state"
)

// SeenBucket is the KV bucket of the last presence seen per watched
// person: one key per person, history 1, removed when they leave the
// watch. A restart or a takeover compares its first reads with it.
const SeenBucket = "PRESENCE_TEAMS_SEEN"

// OpenSeen creates or updates the bucket of last seen presences.
func OpenSeen(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: SeenBucket, Description: "The last Teams presence the watcher saw per person.",
		History: 1, Replicas: max(1, replicas), Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("seen bucket %s: %w", SeenBucket, err)
	}
	return kv, nil
}

// seenKeys is the KV filter of every key of tenant.
func seenKeys(tenant string) string { return "s." + state.TenantToken(tenant) + ".>" }

// seenKey is the KV key of person id in tenant.
func seenKey(tenant, id string) string {
	return "s." + state.TenantToken(tenant) + "." + hex.EncodeToString([]byte(id))
}

// seenRecord is a person's last seen presence as stored.
type seenRecord struct {
	Availability string    `json:"a"`
	Activity     string    `json:"c"`
	Sequence     string    `json:"q"`
	Since        time.Time `json:"t"`
}

// last is a person's last seen presence as loaded from SeenBucket, kept
// until the person is read: small, its pair shared with everyone else's
// in the same pair (Watcher.pair). After a read the lookup's view is the
// only record (Options.Views).
type last struct {
	pair  *adapters.Pair
	seq   string
	since time.Time
}

// maxPairs bounds the table of pairs a watcher shares between people;
// past it a new pair is kept by the person alone.
const maxPairs = 1024

// pair returns the shared copy of p, its values interned.
func (w *Watcher) pair(p adapters.Pair) *adapters.Pair {
	if q, ok := w.pairs[p]; ok {
		return q
	}
	q := &adapters.Pair{Availability: intern(p.Availability), Activity: intern(p.Activity)}
	if w.pairs == nil {
		w.pairs = map[adapters.Pair]*adapters.Pair{}
	}
	if len(w.pairs) < maxPairs {
		w.pairs[p] = q
	}
	return q
}

// loadSeen reads every last seen presence of the watcher's tenant.
func (wr *Watcher) loadSeen(ctx context.Context) (map[string]last, error) {
	kv, tenant := wr.opts.Seen, wr.opts.Tenant
	w, err := kv.Watch(ctx, seenKeys(tenant), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", SeenBucket, err)
	}
	defer func() { _ = w.Stop() }()
	out := map[string]last{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("load " + SeenBucket + ": the watch ended")
			}
			if e == nil {
				return out, nil
			}
			key := e.Key()
			raw, err := hex.DecodeString(key[strings.LastIndexByte(key, '.')+1:])
			var rec seenRecord
			if err != nil || json.Unmarshal(e.Value(), &rec) != nil {
				continue // not ours: left for the next leave to remove
			}
			out[string(raw)] = last{pair: wr.pair(adapters.Pair{Availability: rec.Availability, Activity: rec.Activity}), seq: rec.Sequence, since: rec.Since}
		}
	}
}

// known are the values Graph's pages document; a person's pair shares
// these strings instead of holding its own copies.
var known = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{"Available", "AvailableIdle", "AvailableInactive", "Away", "BeRightBack", "Busy", "BusyIdle",
		"DoNotDisturb", "InACall", "InAConferenceCall", "Inactive", "InAMeeting", "Offline", "OffWork", "OutOfOffice",
		"PresenceUnknown", "Presenting", "UrgentInterruptionsOnly"} {
		m[s] = s
	}
	return m
}()

func intern(s string) string {
	if k, ok := known[s]; ok {
		return k
	}
	return s
}
