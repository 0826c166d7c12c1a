package metrics

import (
	"context"

	"github.com/presence-bridge/presence-bridge/adapters/catalog"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/eventlog"
	"github.com/presence-bridge/presence-bridge/bridge/writer"
)

// FromConfig makes a bridge's metrics for cfg, labelled version and
// revision (see Options), with the configured sources and tenants as the
// only label values. At scrape time they read the consumer's backlog and
// the dead letters from the queue events returns, and the tenants' state
// from writers, which returns the writers' status, or nil while they do
// not run: every tenant is then reported not held.
//
// The Teams side's watch and outputs figures come from watch and
// outputs, nil while they do not run.
func FromConfig(cfg *config.Config, version, revision string, events func() Queue, writers func() []writer.TenantStatus,
	watch func() []WatchStatus, outputs func() []OutputStatus) *Metrics {
	o := Options{
		Version: version, Revision: revision,
		Consumer: func(ctx context.Context) (Consumer, error) {
			st, err := events().ConsumerState(ctx)
			return Consumer{Pending: st.Pending, AckPending: st.AckPending}, err
		},
		DeadLetters: func(ctx context.Context) (uint64, error) { return events().DeadLetterCount(ctx) },
	}
	o.Sources, o.ConnectOut = make([]string, len(cfg.Sources)), nil
	for i, s := range cfg.Sources {
		o.Sources[i] = s.Name
		if catalog.ConnectsOut(s.Type) {
			o.ConnectOut = append(o.ConnectOut, s.Name)
		}
	}
	o.Tenants = make([]string, len(cfg.Graph.Tenants))
	for i, t := range cfg.Graph.Tenants {
		o.Tenants[i] = t.ID
	}
	o.TenantState = func() []Tenant { return tenantStates(o.Tenants, writers()) }
	for _, out := range cfg.Outputs {
		o.Outputs = append(o.Outputs, out.Name)
	}
	o.WatchState, o.OutputState = watch, outputs
	return New(o)
}

// breakerStates maps writer.TenantStatus.Breaker to the metric's values.
var breakerStates = map[string]int{
	writer.BreakerStates[0]: BreakerClosed,
	writer.BreakerStates[1]: BreakerHalfOpen,
	writer.BreakerStates[2]: BreakerOpen,
}

// tenantStates converts the writers' status; every tenant not held while
// status is nil.
func tenantStates(tenants []string, status []writer.TenantStatus) []Tenant {
	if status == nil {
		out := make([]Tenant, len(tenants))
		for i, id := range tenants {
			out[i].ID = id
		}
		return out
	}
	out := make([]Tenant, len(status))
	for i, s := range status {
		out[i] = Tenant{
			ID: s.Tenant, LeaseHeld: s.Writing, Breaker: breakerStates[s.Breaker],
			BudgetRemaining: s.BudgetRemaining, Backlog: s.Backlog, Sessions: s.Sessions, ManualUsers: s.ManualUsers,
		}
	}
	return out
}

// Queue is what the metrics read of the event log at scrape time.
type Queue interface {
	ConsumerState(ctx context.Context) (eventlog.ConsumerState, error)
	DeadLetterCount(ctx context.Context) (uint64, error)
}
