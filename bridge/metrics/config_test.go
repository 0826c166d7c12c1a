package metrics

import (
	"testing"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/writer"
)

// TestFromConfigTenants: while the writers do not run every configured
// tenant is reported not held; once they do, their status is converted,
// the breaker's state by name.
func TestFromConfigTenants(t *testing.T) {
	cfg := &config.Config{Graph: config.Graph{Tenants: []config.Tenant{{ID: "contoso.example"}, {ID: "fabrikam.example"}}}}
	var status []writer.TenantStatus
	m := FromConfig(cfg, "v1", "r1", nil, func() []writer.TenantStatus { return status }, nil, nil)
	got := m.opts.TenantState()
	if len(got) != 2 || got[0].ID != "contoso.example" || got[1].ID != "fabrikam.example" || got[0].LeaseHeld || got[1].LeaseHeld {
		t.Fatalf("tenants before the writers run = %+v, want both, not held", got)
	}
	status = []writer.TenantStatus{
		{Tenant: "contoso.example", Writing: true, Breaker: writer.BreakerStates[2], BudgetRemaining: 7, Backlog: 3, Sessions: 2, ManualUsers: 1},
		{Tenant: "fabrikam.example", Writing: true, Breaker: writer.BreakerStates[1]},
	}
	got = m.opts.TenantState()
	want := []Tenant{
		{ID: "contoso.example", LeaseHeld: true, Breaker: BreakerOpen, BudgetRemaining: 7, Backlog: 3, Sessions: 2, ManualUsers: 1},
		{ID: "fabrikam.example", LeaseHeld: true, Breaker: BreakerHalfOpen},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("tenants = %+v, want %+v", got, want)
	}
}
