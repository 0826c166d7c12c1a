package bridge

import (
	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/bridge/identity"
)

// phoneLookups returns the directory's phone lookup, behind the user
// lookups' breakers, and the tenants that turned it on; nothing when none
// did.
func (b *Bridge) phoneLookups(lookups *identity.Lookups) (identity.LookupFunc, map[string]bool) {
	on, cfg := map[string]bool{}, map[string]config.PhoneLookup{}
	for _, t := range b.cfg.Graph.Tenants {
		if t.PhoneLookup.Enabled {
			on[t.ID], cfg[t.ID] = true, t.PhoneLookup
		}
	}
	if len(on) == 0 {
		return nil, nil
	}
	phones := identity.Phones{
		Client: func(tenant string) (identity.UserFinder, error) {
			c, err := b.graph.Client(tenant)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		Config: cfg,
	}
	return lookups.Through(phones.Find), on
}
