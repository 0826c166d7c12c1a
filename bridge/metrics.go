package bridge

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-bridge/presence-bridge/adapters/catalog"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/metrics"
	"github.com/presence-bridge/presence-bridge/bridge/writer"
)

// newMetrics makes the bridge's metrics, with the configured sources and
// tenants as the only label values, reading the writers and JetStream at
// scrape time.
func (b *Bridge) newMetrics(cfg *config.Config) *metrics.Metrics {
	sources := make([]string, len(cfg.Sources))
	var connectOut []string
	for i, s := range cfg.Sources {
		sources[i] = s.Name
		if catalog.ConnectsOut(s.Type) {
			connectOut = append(connectOut, s.Name)
		}
	}
	tenants := make([]string, len(cfg.Graph.Tenants))
	for i, t := range cfg.Graph.Tenants {
		tenants[i] = t.ID
	}
	outputNames := make([]string, len(cfg.Outputs))
	for i, o := range cfg.Outputs {
		outputNames[i] = o.Name
	}
	return metrics.New(metrics.Options{
		Version:     b.version,
		Revision:    b.revision,
		Sources:     sources,
		ConnectOut:  connectOut,
		Tenants:     tenants,
		TenantState: b.tenantMetrics,
		Consumer: func(ctx context.Context) (metrics.Consumer, error) {
			st, err := b.events.ConsumerState(ctx)
			return metrics.Consumer{Pending: st.Pending, AckPending: st.AckPending}, err
		},
		DeadLetters: func(ctx context.Context) (uint64, error) { return b.events.DeadLetterCount(ctx) },
		Outputs:     outputNames,
		WatchState:  func() []metrics.WatchStatus { return b.teams.Load().WatchMetrics() },
		OutputState: func() []metrics.OutputStatus { return b.teams.Load().OutputMetrics() },
	})
}

// breakerStates maps writer.TenantStatus.Breaker to the metric's values.
var breakerStates = map[string]int{
	writer.BreakerStates[0]: metrics.BreakerClosed,
	writer.BreakerStates[1]: metrics.BreakerHalfOpen,
	writer.BreakerStates[2]: metrics.BreakerOpen,
}

// tenantMetrics reads the writers' status: every tenant not held here
// while the stages do not run.
func (b *Bridge) tenantMetrics() []metrics.Tenant {
	_, writers, _ := b.runningStages()
	if writers == nil {
		out := make([]metrics.Tenant, len(b.cfg.Graph.Tenants))
		for i, t := range b.cfg.Graph.Tenants {
			out[i].ID = t.ID
		}
		return out
	}
	status := writers.Status()
	out := make([]metrics.Tenant, len(status))
	for i, s := range status {
		out[i] = metrics.Tenant{
			ID: s.Tenant, LeaseHeld: s.Writing, Breaker: breakerStates[s.Breaker],
			BudgetRemaining: s.BudgetRemaining, Backlog: s.Backlog, Sessions: s.Sessions, ManualUsers: s.ManualUsers,
		}
	}
	return out
}

// replayIDPrefix starts the message id of a replayed dead letter
// (eventlog's ReplayDeadLetter).
const replayIDPrefix = "replay:"

// observeDelivery wraps the consumer's handler to count events JetStream
// delivers again, by source, and to record when each source's events were
// stored: events bus publishers put on NATS themselves pass no ingest, so
// the first delivery is where the bridge first sees them. A replayed dead
// letter is no new event of its source.
func (b *Bridge) observeDelivery(handle func(jetstream.Msg)) func(jetstream.Msg) {
	prefix := b.cfg.NATS.SubjectPrefix + "."
	return func(msg jetstream.Msg) {
		if md, err := msg.Metadata(); err == nil {
			source, _, _ := strings.Cut(strings.TrimPrefix(msg.Subject(), prefix), ".")
			switch {
			case md.NumDelivered > 1:
				b.metrics.Redelivered(source)
			case !strings.HasPrefix(msg.Headers().Get(jetstream.MsgIDHeader), replayIDPrefix):
				b.metrics.EventStored(source, md.Timestamp)
			}
		}
		handle(msg)
	}
}
