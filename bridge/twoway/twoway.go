// Package twoway runs the Teams side of the bridge: a watcher per tenant
// (each held by its own lease, "watch.<tenant>"), the lookup API's views
// they keep current, and the outputs every change is published to.
package twoway

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/history"
	"github.com/presence-bridge/presence-bridge/bridge/identity"
	"github.com/presence-bridge/presence-bridge/bridge/lease"
	"github.com/presence-bridge/presence-bridge/bridge/lookup"
	"github.com/presence-bridge/presence-bridge/bridge/metrics"
	"github.com/presence-bridge/presence-bridge/bridge/publish"
	"github.com/presence-bridge/presence-bridge/bridge/state"
	"github.com/presence-bridge/presence-bridge/bridge/watch"
	"github.com/presence-bridge/presence-bridge/bridge/writer"
	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/outputs"
	"github.com/presence-bridge/presence-bridge/outputs/catalog"
)

// Options are what the Teams side needs of the running bridge.
type Options struct {
	Config    *config.Config
	JetStream jetstream.JetStream
	// Graph returns a tenant's Graph client.
	Graph     func(tenant string) (*graphclient.Client, error)
	State     *state.Store
	Rules     state.Rules
	Directory watch.Resolver
	// Entries is the directory as last reloaded, whose people a watch of
	// users: directory watches; Config.Directory when nil.
	Entries func() map[string]string
	History history.Recorder
	// Leases is the lease bucket (lease.Open); Instance names this bridge
	// in it.
	Leases   jetstream.KeyValue
	Instance string
	// Views is the lookup API's store.
	Views *lookup.Views
	Clock watch.Clock
	Log   *slog.Logger
	// DeadLetter stores an output's dead letters (webhook) in the
	// dead-letter stream, where the dead-letter tools list and replay them.
	DeadLetter func(ctx context.Context, subject, source string, data []byte, reason string) error
}

// Teams is the running Teams side.
type Teams struct {
	watchers  map[string]*watch.Watcher
	publisher *publish.Publisher // nil without outputs
	cancel    context.CancelFunc
	done      sync.WaitGroup
}

// closeTimeout bounds how long Stop delivers what the outputs still hold.
const closeTimeout = 5 * time.Second

// readsInFlight bounds the presence reads in flight across all tenants,
// so that the answers held at once do not grow with the tenants (each
// watcher keeps its own budget and pace; a slow read delays the others'
// turn, and the reads that fell due meanwhile are made up).
const readsInFlight = 4

// Start opens what the watchers keep in JetStream and starts a watcher
// per tenant. A tenant whose watch is off still has a watcher: it reads
// the people the bridge holds a session for every
// presence.observe_interval, to notice statuses set by hand, and
// publishes nothing.
func Start(ctx context.Context, o Options) (*Teams, error) {
	cfg := o.Config
	var seen jetstream.KeyValue
	for _, t := range cfg.Graph.Tenants {
		if cfg.WatchOf(t.ID).Enabled {
			var err error
			if seen, err = watch.OpenSeen(ctx, o.JetStream, cfg.NATS.Replicas); err != nil {
				return nil, err
			}
			break
		}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t := &Teams{watchers: map[string]*watch.Watcher{}, cancel: cancel}
	if len(cfg.Outputs) > 0 {
		pub, err := publish.Open(ctx, cfg.Outputs, catalog.Deps{JetStream: o.JetStream, DeadLetter: o.DeadLetter, Logger: o.Log.With("component", "outputs")}, publish.Options{Logger: o.Log.With("component", "outputs")})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("outputs: %w", err)
		}
		t.publisher = pub
	}
	entries := o.Entries
	if entries == nil {
		entries = func() map[string]string { return cfg.Directory }
	}
	var sink sink
	if t.publisher != nil {
		sink.publisher = t.publisher
	}
	// The watchers judge a read's origins once they have every user state
	// written before it (watch.Options.StateStream).
	stateStream, err := o.JetStream.Stream(ctx, "KV_"+o.State.KV().Bucket())
	if err != nil {
		t.Stop()
		return nil, fmt.Errorf("user state stream: %w", err)
	}
	reads := watch.NewReads(readsInFlight)
	for _, tenant := range cfg.Graph.Tenants {
		g, err := o.Graph(tenant.ID)
		if err != nil {
			t.Stop()
			return nil, fmt.Errorf("watch tenant %s: %w", tenant.ID, err)
		}
		log := o.Log.With("tenant", tenant.ID)
		w, err := watch.New(watch.Options{
			Tenant:          tenant.ID,
			Watch:           cfg.WatchOf(tenant.ID),
			ObserveInterval: cfg.Presence.ObserveInterval,
			Graph:           g,
			State:           o.State,
			StateStream:     stateStream,
			Rules:           o.Rules,
			Seen:            seen,
			Directory:       o.Directory,
			DirectoryUsers:  func() []string { return directoryUsers(entries()) },
			EventUPN:        eventUPN(cfg.Sources),
			Views:           o.Views,
			Sink:            sink,
			History:         o.History,
			Hold: func(ctx context.Context, key string, work func(context.Context) error) {
				lease.New(o.Leases, key, o.Instance, cfg.Presence.LeaseTTL, nil, log).Hold(ctx, work)
			},
			Observe: writer.Observe{
				StatusMessages: len(cfg.Presence.StatusMessages.ByKind()) > 0,
				History:        o.History,
				Logger:         log,
			},
			BreakerFailures: cfg.Graph.Breaker.Failures,
			BreakerTimeout:  cfg.Graph.Breaker.OpenTimeout,
			Reads:           reads,
			Clock:           o.Clock,
			Logger:          log,
		})
		if err != nil {
			t.Stop()
			return nil, fmt.Errorf("watch tenant %s: %w", tenant.ID, err)
		}
		t.watchers[tenant.ID] = w
		t.done.Go(func() { w.Run(runCtx) })
	}
	return t, nil
}

// Status is every tenant's watch, ordered by tenant.
func (t *Teams) Status() []watch.Status {
	if t == nil {
		return nil
	}
	var all []watch.Status
	for _, id := range slices.Sorted(maps.Keys(t.watchers)) {
		all = append(all, t.watchers[id].Status())
	}
	return all
}

// Reload lists the watched people again (a new directory, a new group).
func (t *Teams) Reload() {
	if t == nil {
		return
	}
	for _, w := range t.watchers {
		w.Reload()
	}
}

// Stop stops every watcher and waits for them, releasing their leases,
// then delivers what the outputs still hold (for a few seconds at most)
// and closes them.
func (t *Teams) Stop() {
	if t == nil {
		return
	}
	t.cancel()
	t.done.Wait()
	if t.publisher != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		_ = t.publisher.Close(ctx) // it logs what it could not deliver
	}
}

// WatchMetrics is every tenant's watch as the metrics and the status
// page show it.
func (t *Teams) WatchMetrics() []metrics.WatchStatus {
	var all []metrics.WatchStatus
	for _, s := range t.Status() {
		all = append(all, metrics.WatchStatus{
			Tenant: s.Tenant, Watched: s.People, CycleSeconds: s.CycleSeconds,
			BudgetUsed: s.BudgetUsed, Budget: s.Budget, Stretched: s.Stretched,
			LastRead: s.LastRead, Reads: s.Reads,
		})
	}
	return all
}

// OutputMetrics is every output's health and figures.
func (t *Teams) OutputMetrics() []metrics.OutputStatus {
	if t == nil || t.publisher == nil {
		return nil
	}
	var all []metrics.OutputStatus
	for _, s := range t.publisher.Stats() {
		all = append(all, metrics.OutputStatus(s))
	}
	return all
}

// directoryUsers are the people the directory names, each once.
func directoryUsers(directory map[string]string) []string {
	users := slices.Collect(maps.Values(directory))
	slices.Sort(users)
	return slices.Compact(users)
}

// eventUPN returns what names an event's person by UPN or email, after
// the identity hints of the event's source: the name the apply stage
// resolved the person by, so the lookup API finds someone watched only
// because an event named them by their UPN too, with no call to Graph.
func eventUPN(sources []config.Source) func(adapters.Event) string {
	hints := make(map[string]adapters.IdentityHints, len(sources))
	for _, s := range sources {
		hints[s.Name] = s.Identity
	}
	return func(ev adapters.Event) string {
		name := strings.ToLower(hints[ev.Source].Apply(ev.User))
		if !strings.Contains(name, "@") || identity.IsObjectID(name) {
			return ""
		}
		return name
	}
}

// sink hands the changes the watchers see to the outputs; the watchers
// keep the lookup's views themselves (watch.Options.Views).
type sink struct {
	publisher interface {
		Publish(outputs.Change)
		Left(tenant, id string)
	}
}

func (s sink) Changed(_ context.Context, c outputs.Change) {
	if s.publisher != nil {
		s.publisher.Publish(c)
	}
}

func (sink) Seen(outputs.View) {}

func (s sink) Left(tenant, id string) {
	if s.publisher != nil {
		s.publisher.Left(tenant, id) // the sip output removes its publications
	}
}

// DirectoryResolver resolves the lookup API's directory keys (such as
// ext:1001) from the configured directory, never through Graph: a key the
// directory does not name is an unknown user.
func DirectoryResolver(directory func() map[string]string) lookup.Resolver {
	return func(_ context.Context, _ string, key string) (string, string, error) {
		if upn, ok := directory()[key]; ok {
			return "", upn, nil
		}
		return "", "", fmt.Errorf("%s: %w", key, identity.ErrUnknownUser)
	}
}
