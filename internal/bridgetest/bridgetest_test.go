package bridgetest_test

import (
	"testing"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/bridgetest"
)

// TestPartsMakeAConfiguration: the parts put together parse, and name
// the tenant, its application and the users as the constants say.
func TestPartsMakeAConfiguration(t *testing.T) {
	yaml := bridgetest.Header + "graph:\n" + bridgetest.Tenants("budget: 7") +
		bridgetest.Emulator(bridgetest.Alice, bridgetest.Bob) + "    admin: {writes: true}\n"
	cfg, err := config.Parse([]byte(yaml), t.TempDir())
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml)
	}
	tenant := cfg.Graph.Tenants[0]
	if tenant.ID != bridgetest.Tenant || tenant.ClientID != bridgetest.ClientID || tenant.ClientSecret != bridgetest.ClientSecret || tenant.Budget != 7 {
		t.Fatalf("tenant %+v", tenant)
	}
	em := cfg.Graph.Emulator
	if !em.Enabled || len(em.Tenants) != 1 || em.Tenants[0].Apps[0].ClientID != bridgetest.ClientID || !em.Admin.Writes {
		t.Fatalf("emulator %+v", em)
	}
	users := em.Tenants[0].Users
	if len(users) != 2 || users[0].ID != bridgetest.AliceID || users[1].ID != bridgetest.BobID || users[1].UserPrincipalName != "bob@contoso.example" {
		t.Fatalf("users %+v", users)
	}
}
