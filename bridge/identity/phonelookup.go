package identity

import "github.com/presence-bridge/presence-bridge/bridge/config"

// PhoneLookups returns the directory's phone lookup (Options.PhoneLookup),
// behind lookups' breakers, and the tenants that turned it on
// (Options.PhoneTenants); nothing when none did. client returns a
// tenant's Graph client.
func PhoneLookups(tenants []config.Tenant, client func(tenant string) (UserFinder, error), lookups *Lookups) (LookupFunc, map[string]bool) {
	on, cfg := map[string]bool{}, map[string]config.PhoneLookup{}
	for _, t := range tenants {
		if t.PhoneLookup.Enabled {
			on[t.ID], cfg[t.ID] = true, t.PhoneLookup
		}
	}
	if len(on) == 0 {
		return nil, nil
	}
	return lookups.Through(Phones{Client: client, Config: cfg}.Find), on
}
