package metrics

import (
	"github.com/presence-bridge/presence-bridge/adapters/catalog"
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/writer"
)

// FromConfig makes a bridge's metrics for cfg: o with the configured
// sources and tenants as the only label values, and the tenants' state
// read from writers at scrape time. writers returns the writers' status,
// or nil while they do not run: every tenant is then reported not held.
func FromConfig(cfg *config.Config, o Options, writers func() []writer.TenantStatus) *Metrics {
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
