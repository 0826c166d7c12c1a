package identity

import (
	"log/slog"

	"github.com/presence-bridge/presence-bridge/bridge/config"
)

// FromConfig builds cfg's directory and the lookups behind it: each
// tenant's lookup budget and breaker (for user, phone and calendar reads),
// user lookups through lookup and phone lookups through client for the
// tenants that configure them.
func FromConfig(cfg *config.Config, lookup LookupFunc, client func(tenant string) (UserFinder, error), log *slog.Logger) (*Directory, *Lookups) {
	lookups := NewLookups(cfg.Graph.Tenants, lookup, cfg.Graph.Breaker, log)
	phoneLookup, phoneTenants := PhoneLookups(cfg.Graph.Tenants, client, lookups)
	return New(Options{
		Entries:      cfg.Directory,
		Lookup:       lookups.Lookup,
		TTL:          cfg.Graph.UserCacheTTL,
		UnknownTTL:   cfg.Graph.UnknownUserTTL,
		PhoneLookup:  phoneLookup,
		PhoneTenants: phoneTenants,
	}), lookups
}
